"""Training: surrogate gradients, parameter reconstruction and the methods built on them."""

from .estimator import SpikingClassifier
from .heads import Head, head_slices, smooth_heads
from .methods import fine_tune, fit_cvx, fit_sg, fit_sg_cvx
from .reconstruct import path_norm_objective, reconstruct
from .sg import path_norm, sg_init, train_sg

__all__ = [
    "SpikingClassifier", "Head", "head_slices", "smooth_heads", "fine_tune", "fit_cvx", "fit_sg",
    "fit_sg_cvx",
    "path_norm_objective", "reconstruct", "path_norm", "sg_init", "train_sg",
]
