"""Certified sparse-GLM engine: losses, penalties, solvers, duality gaps, regularisation paths.

It knows nothing about spikes: any real (n, P) matrix works.
"""

from .certificate import SolveResult
from .datafits import DATAFITS
from .path import decision_function, path, predict, reg_grid, select, validation_score
from .penalties import L1, PENALTIES, ElasticNet, GroupL1, Penalty
from .solver import LOSSES, reg_max, solve

__all__ = [
    "DATAFITS", "PENALTIES", "LOSSES", "SolveResult", "reg_max", "solve", "path", "reg_grid",
    "predict", "decision_function", "select", "validation_score", "Penalty", "L1", "GroupL1", "ElasticNet",
]
