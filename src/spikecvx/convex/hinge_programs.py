"""Hinge + group L1 with several outputs: the working-set problem as a second-order cone program.

Solved exactly over the distinct samples (spike dictionaries repeat rows), by ``hinge_group``
(a dense interior point method, then Newton's method on the optimality conditions of the pattern
it finds, certified to relative gap 1e-11) or, when that does not certify, by Clarabel. Both
return the constraint multipliers, which give the dual point of the certificate, so the outer
working-set loop is column generation. Hinge + L1 (and group L1 with one output, the same
problem) is a linear program, solved by ``hinge_fast``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .hinge_group import solve_hinge_group

# Working sets of at least this many columns (and more than half of all) become every column:
# an interior-point solve on most columns costs about what all of them cost.
IPM_MIN_COLUMNS = 500
# Programs of at least this many entries (distinct rows x columns x outputs) go to ``hinge_group``
# first; on smaller ones Clarabel is as fast (docs/design/hinge.md).
GROUP_IPM_MIN_ENTRIES = 10_000
# Tolerances of the exact solver: far below any gap the outer loop asks for, so the multipliers
# are exact to round-off.
SOCP_TOL = 1e-11
# Columns whose largest entry lies outside [1 / LP_SCALE_LIMIT, LP_SCALE_LIMIT] are rescaled by a
# power of two before a conic or linear program (exact in floating point); the solvers' absolute
# tolerances (and HiGHS's infinite bound, 1e20) otherwise make such programs fail.
LP_SCALE_LIMIT = 2.0**20


def distinct_rows(X, Y):
    """Distinct (x_i, y_i) pairs of a working-set problem: (X_u, Y_u, counts, inverse).

    Identical samples have identical hinge terms, so a program over the distinct pairs, each slack
    costing the pair's summed weight, has the same optimum with fewer rows; the multiplier of a
    pair is shared by its samples (alpha_i = mu / weight, in [0, 1]), a valid dual for every sample.
    Spike dictionaries repeat rows often (FIRST-LAST-XOR at T = 6 has at most 64 distinct
    inputs), and fewer working-set columns make more rows equal.
    """
    keys = np.ascontiguousarray(np.concatenate([X, Y], axis=1))
    _, first, inverse, counts = np.unique(keys.view(np.dtype((np.void, keys.shape[1] * 8)))[:, 0],
                                          return_index=True, return_inverse=True, return_counts=True)
    return X[first], Y[first], counts.astype(np.float64), inverse.ravel()


def _pair_weights(n: int, weights, inverse, m: int) -> np.ndarray:
    """Summed sample weights of the m distinct pairs (weights default to 1/n each)."""
    s = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
    return np.bincount(inverse, weights=s, minlength=m)


def hinge_socp(X, Y, reg, weights=None):
    """Hinge + group L1 on a working set as a second-order cone program: (W, alpha).

    Variables: W (p x C), t (p) with ||W_j||_2 <= t_j, slacks xi (n x C) >= 0 with
    xi_ic >= 1 - Y_ic x_i W_c; minimise sum_i s_i sum_c xi_ic + reg * sum t, with s the sample
    ``weights`` (summing to 1; default 1/n). The multipliers z_ic of the hinge rows lie in
    [0, s_i] and give the dual alpha = z / s. Identical samples are merged first (``distinct_rows``);
    ``hinge_group.solve_hinge_group`` solves the program, Clarabel when it returns None.
    """
    import clarabel

    scale = lp_scale(X)  # x -> x / s, w -> s w, reg -> reg / s: the same optimum and multipliers
    if scale != 1.0:
        W, alpha = hinge_socp(X / scale, Y, reg / scale, weights)
        return W / scale, alpha
    n_all = X.shape[0]
    X, Y, _, inverse = distinct_rows(X, Y)
    n, p = X.shape
    C = Y.shape[1]
    sw = _pair_weights(n_all, weights, inverse, n)
    found = solve_hinge_group(X, Y, sw, reg) if n * p * C >= GROUP_IPM_MIN_ENTRIES else None
    if found is not None:
        return found[0], found[1][inverse]
    nW, nxi = p * C, n * C
    rows, cols, vals = [], [], []
    for c in range(C):  # hinge rows: -Y_ic x_i W_c - xi_ic <= -1
        blk = sp.coo_matrix(-Y[:, c : c + 1] * X)
        rows += [blk.row * C + c, np.arange(n) * C + c]
        cols += [blk.col * C + c, nW + p + np.arange(n) * C + c]
        vals += [blk.data, -np.ones(n)]
    rows.append(nxi + np.arange(nxi))  # xi >= 0
    cols.append(nW + p + np.arange(nxi))
    vals.append(-np.ones(nxi))
    base = 2 * nxi  # one cone (t_j, W_j) of size C + 1 per row j
    j = np.arange(p)
    rows += [base + j * (C + 1)] + [base + j * (C + 1) + 1 + c for c in range(C)]
    cols += [nW + j] + [j * C + c for c in range(C)]
    vals += [-np.ones(p)] * (C + 1)
    m = base + p * (C + 1)
    nvar = nW + p + nxi
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, nvar))
    b = np.concatenate([-np.ones(nxi), np.zeros(nxi + p * (C + 1))])
    q = np.concatenate([np.zeros(nW), np.full(p, reg), np.repeat(sw, C)])
    cones = [clarabel.NonnegativeConeT(2 * nxi)] + [clarabel.SecondOrderConeT(C + 1)] * p
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = SOCP_TOL
    sol = clarabel.DefaultSolver(sp.csc_matrix((nvar, nvar)), q, A, b, cones, settings).solve()
    if not str(sol.status).endswith(("Solved", "AlmostSolved")):
        raise ValueError(f"Clarabel could not solve the hinge + group L1 program ({sol.status}) at "
                         f"reg={reg:.3g} with D's columns of up to {np.abs(X).max():.3g}; use a larger reg")
    W = np.asarray(sol.x[:nW]).reshape(p, C)
    alpha = np.clip(np.asarray(sol.z[:nxi]).reshape(n, C) / sw[:, None], 0.0, 1.0)
    return W, alpha[inverse]


def lp_scale(X: np.ndarray, top: float | None = None) -> float:
    """1, or the power of two nearest to max |X| (``top`` if given) when that lies outside the
    range the LP / SOCP solvers handle."""
    if top is None:
        top = float(np.abs(X).max()) if X.size else 0.0
    if top == 0.0 or 1.0 / LP_SCALE_LIMIT <= top <= LP_SCALE_LIMIT:
        return 1.0
    return float(2.0 ** np.round(np.log2(top)))


