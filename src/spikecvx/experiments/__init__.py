"""Experiments: presets and TOML configs, the resumable grid runner, reports and plots."""

from .cells import METHODS, run_cell
from .options import METHOD_OPTION_KEYS, check_cell
from .presets import PRESETS, expand, load_config
from .report import tables, write_report
from .runner import load_results, run_cells

__all__ = ["METHODS", "METHOD_OPTION_KEYS", "check_cell", "run_cell", "PRESETS", "expand", "load_config",
           "tables", "write_report", "load_results", "run_cells"]
