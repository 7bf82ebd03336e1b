"""Compiled inner loop: coordinate descent on the quadratic model of a proximal Newton step.

Coordinate descent is the algorithm of choice here because binary dictionaries are badly
conditioned (non-negative columns share one dominant singular direction): a full-gradient method
must step by 1 / ||D||^2, which stalls, whereas each coordinate step uses only its own column's
curvature. The loop is compiled with numba (cached on disk), as a pure-Python loop over
coordinates would be a hundred times slower.

The loop does not know which penalty it minimises: it receives the penalty's compiled proximal
operator (a numba function of signature ``PROX_SIGNATURE``) and its parameters as a float array.
Both functions carry explicit signatures, so the kernel is compiled once, cached on disk, and
calls whichever proximal operator it is given.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

# Reassociation lets LLVM vectorise the per-column sums (the certificate is computed elsewhere,
# in plain float64, so the order of these additions does not affect what is reported).
_FAST = {"reassoc", "contract", "nsz", "arcp"}

#: prox(z, lo, hi, curv, reg, params): replace z[lo:hi] (one entry, or one whole row for a group
#: penalty) by  argmin_w  curv / 2 ||w - z[lo:hi]||^2 + reg * omega(w), in place.
PROX_SIGNATURE = types.void(types.float64[::1], types.intp, types.intp, types.float64, types.float64,
                            types.float64[::1])

# Curvatures at or below this are treated as zero (an empty column): the coefficient is set to 0.
_MIN_CURVATURE = 1e-300

_F64_2D_ANY = types.Array(types.float64, 2, "A")


def _kernel_signature(x_dtype, x_layout: str):
    return types.int64(
        types.FunctionType(PROX_SIGNATURE),  # prox
        types.float64[::1],  # params
        types.Array(x_dtype, 2, x_layout),  # X
        types.float64[:, ::1],  # G
        types.float64[:, ::1],  # H
        _F64_2D_ANY, _F64_2D_ANY, _F64_2D_ANY,  # W, dW, R
        types.float64, types.boolean, types.boolean, types.int64, types.float64,  # reg .. tol
        types.Array(types.boolean, 2, "C"),  # screened
    )


# X is Fortran-ordered float64, or uint8 (a binary dictionary kept compact); a single row or
# column is also C-contiguous, which numba types as "C".
_KERNEL_SIGNATURES = [_kernel_signature(dtype, layout) for dtype in (types.float64, types.uint8)
                      for layout in ("F", "C")]


@njit(cache=True, fastmath=_FAST)
def _grad_curv(x, g, h, r, s, coupled, group):
    """Column x's gradient and curvature of one class's model: contiguous vectors, no branches."""
    gsum = 0.0
    csum = 0.0
    if coupled and group:
        for i in range(x.shape[0]):
            xi = np.float64(x[i])  # x may be uint8: the products are taken in float64
            gsum += xi * (g[i] + h[i] * (r[i] - s[i]))
            csum += xi * xi * h[i]
    elif coupled:
        for i in range(x.shape[0]):
            xi = np.float64(x[i])
            gsum += xi * (g[i] + h[i] * (r[i] - s[i]))
            csum += xi * xi * (h[i] * (1.0 - h[i]))
    else:
        for i in range(x.shape[0]):
            xi = np.float64(x[i])
            gsum += xi * (g[i] + h[i] * r[i])
            csum += xi * xi * h[i]
    return gsum, csum


@njit(cache=True, fastmath=_FAST)
def _update(x, delta, h, r, s, coupled):
    """r += x * delta (and s += x * delta * h in the coupled case)."""
    if coupled:
        for i in range(x.shape[0]):
            d = np.float64(x[i]) * delta
            r[i] += d
            s[i] += d * h[i]
    else:
        for i in range(x.shape[0]):
            r[i] += np.float64(x[i]) * delta


@njit(_KERNEL_SIGNATURES, cache=True)
def quadratic_model_cd(prox, params, X, G, H, W, dW, R, reg, group, coupled, max_epochs, tol, screened):
    """Minimise over dW the model of F(X (W + dW)) + reg * Omega(W + dW) around W:

        (1/n) sum_i [G_i . R_i + R_i^T H_i R_i / 2] + reg * Omega(W + dW),   R = X dW,

    by cyclic coordinate descent. X: (n, p) Fortran-ordered, float64 or uint8; G: (n, C) per-sample
    gradients; W, dW: (p, C); R: (n, C) kept equal to X @ dW.
    Per-sample curvature H_i: diag(H[i]) when ``coupled`` is False; when True, H holds softmax
    probabilities p_i and H_i = diag(p_i) - p_i p_i^T (the exact multinomial Hessian).
    ``prox`` (with ``params``) is the penalty's proximal operator. ``screened`` (p, C), or (p, 1)
    for a group penalty: entries the sweeps leave alone while they are zero (the caller screens
    out entries whose gradient is far inside the zero set; the outer duality gap still checks
    every entry, so screening can cost iterations, never correctness). Elementwise penalties
    (``group`` False) minimise entry by entry exactly; group penalties take a block step with a
    curvature that majorises the block (so every step decreases the model). ``max_epochs`` bounds
    the full sweeps (between them, up to 4 cheap sweeps over the nonzero entries). Returns the
    full sweeps run.
    """
    n, p = X.shape
    C = G.shape[1]
    # class-major copies, so each class's pass over a column reads contiguous memory
    Gt = np.ascontiguousarray(G.T)
    Ht = np.ascontiguousarray(H.T)
    Rt = np.ascontiguousarray(R.T)
    S = np.zeros(n)  # S_i = p_i . R_i (coupled case)
    if coupled:
        for i in range(n):
            for c in range(C):
                S[i] += H[i, c] * R[i, c]
    grad = np.empty(C)
    curv = np.empty(C)
    new = np.empty(C)
    inv_n = 1.0 / n
    # glmnet-style active-set cycling: a full sweep, then sweeps over the nonzero entries only
    # until they settle, then a full sweep again; the full sweeps decide convergence.
    cs = C if not group else 1  # elementwise: one entry at a time; group: the whole row
    active = np.ones((p, cs), dtype=np.bool_)
    full = True
    n_full = 0
    n_active = 0
    for _ in range(max_epochs * 5):
        max_change = 0.0
        max_scale = 0.0
        for j in range(p):
            for k in range(cs):
                if not full and not active[j, k]:
                    continue
                lo = k if not group else 0
                hi = k + 1 if not group else C
                if screened[j, k]:
                    zero = True
                    for c in range(lo, hi):
                        if W[j, c] + dW[j, c] != 0.0:
                            zero = False
                    if zero:
                        active[j, k] = False
                        continue
                x = X[:, j]
                for c in range(lo, hi):
                    grad[c], curv[c] = _grad_curv(x, Gt[c], Ht[c], Rt[c], S, coupled, group)
                a_blk = 0.0
                for c in range(lo, hi):
                    grad[c] *= inv_n
                    curv[c] *= inv_n
                    a_blk = max(a_blk, curv[c])
                if a_blk <= _MIN_CURVATURE:
                    for c in range(lo, hi):
                        new[c] = 0.0
                else:
                    for c in range(lo, hi):
                        new[c] = W[j, c] + dW[j, c] - grad[c] / a_blk
                    prox(new, lo, hi, a_blk, reg, params)
                nonzero = False
                for c in range(lo, hi):
                    if new[c] != 0.0:
                        nonzero = True
                active[j, k] = nonzero
                for c in range(lo, hi):
                    delta = new[c] - (W[j, c] + dW[j, c])
                    scale = np.sqrt(max(curv[c], a_blk if group else 0.0))
                    max_scale = max(max_scale, abs(new[c]) * scale)
                    if delta == 0.0:
                        continue
                    dW[j, c] += delta
                    max_change = max(max_change, abs(delta) * scale)
                    _update(x, delta, Ht[c], Rt[c], S, coupled)
        settled = max_change <= tol * max(max_scale, 1e-12)
        if full:
            n_full += 1
            if settled or n_full >= max_epochs:
                break
            full = False
            n_active = 0
        else:
            n_active += 1
            full = settled or n_active >= 4
    R[:] = Rt.T
    return n_full
