"""Training: parameter reconstruction and the methods built on it."""

from .methods import fit_cvx
from .reconstruct import path_norm_objective, reconstruct

__all__ = ["fit_cvx", "path_norm_objective", "reconstruct"]
