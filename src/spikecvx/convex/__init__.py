"""Certified sparse-GLM engine: losses, penalties, solvers, duality gaps, regularisation paths.

It knows nothing about spikes: any real (n, P) matrix works.
"""

from .datafits import DATAFITS
from .penalties import PENALTIES
from .solver import LOSSES, SolveResult, reg_max, solve

__all__ = ["DATAFITS", "PENALTIES", "LOSSES", "SolveResult", "reg_max", "solve"]
