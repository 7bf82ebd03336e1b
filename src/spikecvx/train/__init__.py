"""Training: the methods (CVX, SG, SG-CVX, the hybrids and the witness searches), their typed
reports, the estimator.

Start with ``SpikingClassifier`` (scikit-learn) or ``METHODS[name].fit``; the fit functions
(``fit_cvx``, ``fit_sg``, ``fit_sg_cvx``, ``fine_tune``, ``train_sg``, ``fit_search``) are the same
methods with their options as keyword arguments. Each returns ``(network, FitReport)``. Helpers such as
``head_slices``, ``smooth_heads`` and ``sg_init`` stay importable from their modules.
"""

from .estimator import SpikingClassifier
from .heads import Head, default_heads
from .methods import fine_tune, fit_cvx, fit_sg, fit_sg_cvx
from .reconstruct import path_norm_objective, reconstruct
from .registry import METHODS, Method, get_method
from .report import (
    Certificate,
    DictionarySize,
    FitReport,
    HeadFit,
    PathPoint,
    SearchFit,
    SearchRound,
    SGFit,
    SGRun,
)
from .search import fit_search
from .sg import path_norm, train_sg

__all__ = [
    "SpikingClassifier", "METHODS", "Method", "get_method",
    "fit_cvx", "fit_sg", "fit_sg_cvx", "fine_tune", "train_sg", "fit_search", "reconstruct",
    "Head", "default_heads",
    "FitReport", "HeadFit", "Certificate", "PathPoint", "DictionarySize", "SGFit", "SGRun",
    "SearchFit", "SearchRound",
    "path_norm", "path_norm_objective",
]
