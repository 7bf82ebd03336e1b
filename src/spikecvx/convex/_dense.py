"""Dense linear algebra the interior point methods share (``hinge_vertex``, ``hinge_group``): BLAS
``syrk``, a Cholesky factorisation that shifts the diagonal as little as it must, the step to the
boundary of the non-negative orthant, and a context that limits the BLAS threads."""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

_controller = None


def cholesky(K: np.ndarray):
    """Cholesky factor (``scipy.linalg.cho_factor``) of a symmetric positive semi-definite K, with
    the smallest diagonal shift (relative 1e-14, 1e-12, ...) that lets it through: the normal
    matrices of an interior point method lose rank near the optimum."""
    shift = 1e-14 * float(np.abs(np.diag(K)).max())
    for _ in range(6):
        try:
            return sla.cho_factor(K, check_finite=False)
        except np.linalg.LinAlgError:
            K[np.diag_indices_from(K)] += shift
            shift *= 100
    raise np.linalg.LinAlgError("normal matrix not positive definite")


def syrk(B: np.ndarray, rows: bool) -> np.ndarray:
    """B B^T (rows) or B^T B in B's precision, upper triangle filled (what the Cholesky
    factorisation reads)."""
    from scipy.linalg.blas import dsyrk, ssyrk

    Bf = np.asfortranarray(B)  # no copy when B is in Fortran order
    return (ssyrk if B.dtype == np.float32 else dsyrk)(1.0, Bf, trans=0 if rows else 1)


def max_step(vs, dvs) -> float:
    """Largest step t in [0, 1] keeping every v + t dv non-negative (an interior point method's
    step to the boundary of the non-negative orthant)."""
    t = 1.0
    for v, dv in zip(vs, dvs):
        neg = dv < 0
        if neg.any():
            t = min(t, float((-v[neg] / dv[neg]).min()))
    return t


def blas_limit(threads: int):
    """Context that runs the BLAS (numpy's and scipy's) on at most ``threads`` threads
    (threadpoolctl, loaded on first use)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=threads, user_api="blas")
