"""Dense linear algebra the interior point methods share (``hinge_vertex``, ``hinge_group``): BLAS
``syrk``, a Cholesky factorisation that shifts the diagonal as little as it must, the step to the
boundary of the non-negative orthant, iterative refinement, and a context that limits the BLAS
threads."""

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


def refine(solve_once, residual, r: np.ndarray, tol: float, steps: int) -> tuple[np.ndarray, float]:
    """Iterative refinement of x = solve_once(r) (an approximate solver, e.g. single-precision
    factors) against ``residual(r, x)`` (the exact operator): corrected by solve_once(residual)
    while that shrinks the residual, at most ``steps`` times. Returns x and its largest residual."""
    x = solve_once(r)
    res = residual(r, x)
    for _ in range(steps):
        if np.abs(res).max() <= tol:
            break
        cand = x + solve_once(res)
        res_c = residual(r, cand)
        if np.abs(res_c).max() >= np.abs(res).max():
            break
        x, res = cand, res_c
    return x, float(np.abs(res).max())


def blas_limit(threads: int):
    """Context that runs the BLAS (numpy's and scipy's) on at most ``threads`` threads
    (threadpoolctl, loaded on first use)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=threads, user_api="blas")
