"""The keys a cell may hold and the checks of their values, applied before anything runs.

A cell holds ``task``, ``method``, ``seed``, its task's grid key, ``net`` (keyword arguments of
``ParallelSNN``), the keys its task reads (``TaskSpec.cell_keys``) and the method options below.
Any other key is an error: a misspelt key would otherwise be ignored silently.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable

from .._validation import check_choice, check_int, check_positive, check_real
from ..convex import PENALTIES
from ..dictionary import WITNESS_KINDS
from ..snn import ParallelSNN
from ..tasks import TASKS
from ..train import METHODS as _TRAIN_METHODS
from ..train.methods import NET_GRID_KEYS
from ..train.search import GENERATORS


def _reals(name: str, value) -> list[float]:
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError(f"{name} must be a non-empty list of numbers, got {type(value).__name__}")
    return [check_positive(name, v) for v in value]


def _ints(name: str, value, minimum: int = 1) -> list[int]:
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError(f"{name} must be a non-empty list of integers, got {type(value).__name__}")
    return [check_int(name, v, minimum=minimum) for v in value]


def _grid(name: str, value) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a table of lists, got {type(value).__name__}")
    for k, v in value.items():
        if k not in NET_GRID_KEYS:
            raise ValueError(f"{name}.{k} is not tunable; expected keys among {NET_GRID_KEYS}")
        if not isinstance(v, (list, tuple)) or not v:
            raise TypeError(f"{name}.{k} must be a non-empty list, got {type(v).__name__}")


def _generators(name: str, value) -> None:
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError(f"{name} must be a non-empty list of generator names {GENERATORS}, "
                        f"got {type(value).__name__}")
    for v in value:
        check_choice(name, v, GENERATORS)


def _optional_int(name: str, value) -> None:
    if value is not None:
        check_int(name, value)


# The options of the training methods that a cell may set (read by ``cells._train``), each with
# the check of its value. Options that the train layer's method registry adds are accepted too and
# checked against the type of their default (see ``_REGISTRY_DEFAULTS``).
METHOD_OPTIONS: dict[str, Callable[[str, object], object]] = {
    "n_regs": check_int,
    "min_ratio": check_positive,
    "grid": _grid,
    "witness_scale": check_positive,
    "tol": check_positive,
    "epochs": check_int,
    "lrs": _reals,
    "batch_size": _optional_int,
    "weight_decay": lambda name, v: check_positive(name, v, allow_zero=True),
    "ft_lrs": _reals,
    "penalty": lambda name, v: check_choice(name, v, PENALTIES),
    "witness": lambda name, v: check_choice(name, v, WITNESS_KINDS),
    "path_norm_reg": lambda name, v: check_positive(name, v, allow_zero=True),
    # witness search (cvx-search, sg-cvx-search)
    "reg_ratio": check_positive,
    "search_rounds": check_int,
    "search_candidates": check_int,
    "search_steps": lambda name, v: check_int(name, v, minimum=0),
    "search_seconds": check_positive,
    "max_add": check_int,
    "generators": _generators,
}
_REGISTRY_DEFAULTS = {k: v for m in _TRAIN_METHODS.values() for k, v in m.options.items()
                      if k not in METHOD_OPTIONS}
METHOD_OPTION_KEYS = frozenset(METHOD_OPTIONS) | frozenset(_REGISTRY_DEFAULTS)

# ParallelSNN arguments a cell's ``net`` may not set: the data, the heads and the task fix them,
# and --device places the network.
_NET_FIXED = {"self", "d_in", "n_out", "seed", "dtype", "device", "readout_at"}
NET_KEYS = {name: p.default for name, p in inspect.signature(ParallelSNN.__init__).parameters.items()
            if name not in _NET_FIXED}


def _like_default(name: str, value, default) -> None:
    """Check ``value`` against the type of a default: int, float, string or list of ints."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {type(value).__name__}")
    elif isinstance(default, int):
        check_int(name, value, minimum=0 if default == 0 else 1)
    elif isinstance(default, float):
        check_real(name, value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    elif isinstance(default, list):
        _ints(name, value)


def _check_net(net, where: str) -> None:
    if not isinstance(net, dict):
        raise TypeError(f"{where}: net must be a table of network settings ({', '.join(NET_KEYS)}), "
                        f"got {type(net).__name__} {net!r}")
    for k, v in net.items():
        if k not in NET_KEYS:
            fixed = " (set by the task / the command line)" if k in _NET_FIXED else ""
            raise ValueError(f"{where}: unknown network key net.{k}{fixed}; expected one of "
                             f"{sorted(NET_KEYS)}")
        default = NET_KEYS[k]
        if isinstance(default, numbers.Real) and not isinstance(default, bool):
            try:
                (check_int if isinstance(default, int) else check_real)(f"net.{k}", v)
            except (TypeError, ValueError) as err:
                raise type(err)(f"{where}: net.{k} = {v!r}: {err}") from None
        elif isinstance(default, str) and not isinstance(v, str):
            raise TypeError(f"{where}: net.{k} = {v!r}: net.{k} must be a string")
    try:  # the network's own checks (ranges, choices, widths divisible by branches), on a tiny input
        ParallelSNN(d_in=1, n_out=1, **net)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: net = {net!r}: {err}") from None


def check_cell(cell, methods: tuple[str, ...]) -> None:
    """Raise ValueError / TypeError naming the key unless ``cell`` is a valid experiment cell."""
    if not isinstance(cell, dict):
        raise TypeError(f"a cell must be a dict, got {type(cell).__name__}")
    task = cell.get("task")
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(f"cell task must be one of {sorted(TASKS)}, got {task!r}")
    spec = TASKS[task]
    where = f"[{task}]"
    method = cell.get("method")
    if not isinstance(method, str) or method not in methods:
        raise ValueError(f"{where}: method must be one of {methods}, got {method!r}")
    for key in ("seed", spec.grid_key, "net"):
        if key not in cell:
            raise ValueError(f"{where}: the cell needs {key!r}")
    allowed = {"task", "method", "seed", spec.grid_key, "net"} | set(spec.cell_keys) | METHOD_OPTION_KEYS
    for key, value in cell.items():
        if key not in allowed:
            known = ", ".join(sorted(allowed - {"task", "method", "seed"}))
            raise ValueError(f"{where}: unknown key {key!r}; this task takes {known}")
        try:
            if key == "seed":
                check_int("seed", value, minimum=0)
            elif key == spec.grid_key:
                spec.check_grid(value)
            elif key in spec.cell_keys:
                _like_default(key, value, spec.cell_keys[key])
            elif key in METHOD_OPTIONS:
                METHOD_OPTIONS[key](key, value)
            elif key in _REGISTRY_DEFAULTS:
                _like_default(key, value, _REGISTRY_DEFAULTS[key])
        except (TypeError, ValueError) as err:
            raise type(err)(f"{where}: {key} = {value!r}: {err}") from None
    _check_net(cell["net"], where)
