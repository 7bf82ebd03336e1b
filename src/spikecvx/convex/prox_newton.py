"""Proximal Newton for the smooth losses on a working set of columns.

Each iteration minimises the quadratic model of the loss plus the penalty by compiled coordinate
descent (``_kernels``), takes an Armijo backtracking step on the true objective, and extrapolates
the iterates (Anderson acceleration); for penalties that are linear on each sign orthant (L1) a
Newton step on the support with the signs fixed finishes the job. The per-sample Hessians are
exact, including the coupled softmax one.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._kernels import quadratic_model_cd
from .certificate import DualTracker, anderson

# Coordinate-descent sweeps on the quadratic model per Newton iteration: enough to find the
# support, few enough that the model is rebuilt before its curvature goes stale.
MODEL_EPOCHS = 10
# Stopping tolerance of those sweeps, relative to the coefficient scale: the outer loop's dual gap
# decides convergence, so the model is solved essentially exactly.
MODEL_TOL = 1e-12
# Armijo sufficient-decrease fraction and the number of halvings before the step is given up.
ARMIJO_C = 1e-4
MAX_HALVINGS = 40
# A model decrease smaller than this (relative to the objective) is round-off: stop.
MIN_RELATIVE_DECREASE = 1e-16
# Iterates kept for Anderson extrapolation.
ANDERSON_DEPTH = 5
# Step sizes tried for the support Newton candidate (projected onto W's orthant).
SUPPORT_NEWTON_STEPS = (1.0, 0.5, 0.25)
# Up to this many support coefficients the Hessian is formed and factorised; beyond it,
# conjugate gradients with Hessian-vector products (memory and O(s^3) cost).
DENSE_NEWTON_MAX = 2000
MAX_CG = 50
# Conjugate gradients stop when the squared residual fell by this factor.
CG_REL_RESIDUAL_SQ = 1e-24
# Diagonal added to the formed Hessian, relative to its mean diagonal, so Cholesky succeeds on a
# singular (rank-deficient support) Hessian.
HESSIAN_RIDGE = 1e-12


def prox_newton(X, Y, W, fit, pen, reg, tol_abs, max_iter=2000, epochs=MODEL_EPOCHS, depth=ANDERSON_DEPTH):
    """Working-set problem by proximal Newton + coordinate descent, with Anderson acceleration.

    Each iteration runs a few coordinate-descent epochs on the quadratic model (exact for the
    squared loss) and a backtracking line search; every ``depth`` iterations the last iterates
    are extrapolated (Anderson acceleration of CD, Bertrand & Massias 2021) and the result kept
    if it lowers the objective, which cures most of the slowness of CD on correlated columns.
    Stops when the working-set duality gap is below ``tol_abs``.
    """
    n = X.shape[0]
    W = np.array(W, dtype=np.float64)
    Z = X @ W
    tracker = DualTracker(fit, pen, reg, Y)
    coupled = fit.coupled
    objective = lambda Z_, W_: fit.value(Z_, Y) + reg * pen.value(W_)  # noqa: E731
    history = [W]
    obj = objective(Z, W)
    for _ in range(max_iter):
        G, H = fit.grad_hess(Z, Y)
        if obj - tracker.update(G / n, lambda U: X.T @ U) <= tol_abs:
            break
        H = fit.model_curvature(Z, H)
        dW = np.zeros_like(W)
        R = np.zeros_like(Z)
        quadratic_model_cd(pen.prox, pen.params, X, np.ascontiguousarray(G), np.ascontiguousarray(H),
                           W, dW, R, reg, pen.group, coupled, epochs, MODEL_TOL)
        decrease = float(np.sum(G * R)) / n + reg * (pen.value(W + dW) - pen.value(W))
        if decrease >= -MIN_RELATIVE_DECREASE * max(1.0, abs(obj)):
            break
        t = 1.0
        for _ in range(MAX_HALVINGS):
            Wn, Zn = W + t * dW, Z + t * R
            new = objective(Zn, Wn)
            if new <= obj + ARMIJO_C * t * decrease:
                break
            t *= 0.5
        else:
            break
        W, Z, obj = Wn, Zn, new
        if pen.orthant_linear:  # Newton step on the support with the signs fixed (exact for squared)
            W_sn = support_newton(X, G, H, W - t * dW, W, reg, coupled)
            if W_sn is not None:
                # projected step: entries whose sign would flip stop at zero, so the candidate
                # stays in W's orthant, where the L1 term is linear; backtrack if it does not help
                for step in SUPPORT_NEWTON_STEPS:
                    cand = W + step * (W_sn - W)
                    cand[np.sign(cand) != np.sign(W)] = 0.0
                    Z_c = X @ cand
                    new = objective(Z_c, cand)
                    if new < obj:
                        W, Z, obj = cand, Z_c, new
                        break
        history = (history + [W])[-(depth + 1):]
        if len(history) == depth + 1:
            W_acc = anderson(history)
            if W_acc is not None:
                Z_acc = X @ W_acc
                new = objective(Z_acc, W_acc)
                if new < obj:
                    W, Z, obj = W_acc, Z_acc, new
                history = [W]
    return W


def support_newton(X, G, H, W0, W, reg, coupled, max_cg=MAX_CG, dense_max=DENSE_NEWTON_MAX):
    """Minimiser of the L1 quadratic model (built at W0) over the support of W with its signs fixed.

    Once coordinate descent has found the support, this solve finishes the job in one step (exactly
    for the squared loss). Up to ``dense_max`` support coefficients the Hessian is formed and
    factorised (2 n s^2 flops; CD alone crawls here because binary columns share one dominant
    direction); beyond that, conjugate gradients with Hessian-vector products. Both keep the
    coupled softmax Hessian (diag(p) - p p^T per sample) exact. The caller keeps the result only
    if it lowers the true objective.
    """
    n = X.shape[0]
    mask = W != 0
    if not mask.any():
        return None

    def hess_vec(V):
        R = X @ V
        HR = H * R - H * np.sum(H * R, axis=1, keepdims=True) if coupled else H * R
        return (X.T @ HR) / n * mask

    # gradient of the model at W: G taken at W0 plus curvature times (W - W0)
    grad = (X.T @ G) / n + hess_vec(W - W0) + reg * np.sign(W)
    grad *= mask
    rows, cls = np.nonzero(mask)
    if len(rows) <= dense_max:
        step = np.zeros_like(W)
        step[rows, cls] = dense_newton_step(X, H, rows, cls, grad[rows, cls], coupled)
        return W - step
    step = np.zeros_like(W)
    r = grad.copy()
    d = r.copy()
    rr = float(np.sum(r * r))
    stop = CG_REL_RESIDUAL_SQ * max(rr, 1e-300)
    for _ in range(max_cg):
        if rr <= stop:
            break
        Hd = hess_vec(d)
        dHd = float(np.sum(d * Hd))
        if dHd <= 0:
            break
        a = rr / dHd
        step += a * d
        r -= a * Hd
        rr_new = float(np.sum(r * r))
        d = r + (rr_new / rr) * d
        rr = rr_new
    return W - step


def dense_newton_step(X, H, rows, cls, grad, coupled):
    """Solve hess @ step = grad for the support entries (rows[k], cls[k]), hess formed explicitly.

    Entries are grouped by class so the per-class blocks A_c^T diag(H_c) A_c are contiguous (the
    only non-zero blocks unless ``coupled``, where the softmax term -(A*P)^T (A*P) fills the rest).
    The products and the factorisation go through numpy's BLAS/LAPACK, as the rest of the solver
    does: scipy may ship a second OpenBLAS with its own thread pool, and alternating between the
    two pools makes them contend on few cores (see docs/design/convex.md). Only the O(s^2)
    triangular solves are scipy's.
    """
    n = X.shape[0]
    order = np.argsort(cls, kind="stable")
    rows, cls = rows[order], cls[order]
    A = np.asfortranarray(X[:, rows], dtype=np.float64)
    AQ = A * H[:, cls]
    s = len(rows)
    hess = (AQ.T @ AQ) / -n if coupled else np.zeros((s, s))
    bounds = np.flatnonzero(np.diff(np.concatenate([[-1], cls, [-1]])))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        hess[lo:hi, lo:hi] += (AQ[:, lo:hi].T @ A[:, lo:hi]) / n
    diag = np.diag_indices(s)
    hess[diag] += HESSIAN_RIDGE * max(1.0, float(np.sum(hess[diag])) / s)
    try:
        L = np.linalg.cholesky(hess)
        step = scipy.linalg.cho_solve((L, True), grad[order], check_finite=False)
    except np.linalg.LinAlgError:  # not positive definite numerically
        step = np.linalg.lstsq(hess, grad[order], rcond=None)[0]
    out = np.empty(s)
    out[order] = step
    return out
