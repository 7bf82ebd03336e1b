"""The hinge losses' working-set problems, solved exactly as linear / second-order cone programs.

Hinge + L1 is a linear program (HiGHS, through highspy); hinge + group L1 with several outputs a
second-order cone program (Clarabel). Both work over the distinct samples (spike dictionaries
repeat rows) and return the constraint multipliers, which give the dual point of the
certificate, so the outer working-set loop is column generation.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import scipy.sparse as sp

# Working sets of at least this many columns go to HiGHS's interior point method (with crossover),
# smaller ones to its dual simplex: the simplex wins on small LPs, the interior point method on
# large dense ones (see docs/design/convex.md).
IPM_MIN_COLUMNS = 500
# Feasibility / optimality tolerances of the exact solvers: far below any gap the outer loop asks
# for, so the multipliers are exact to round-off.
LP_TOL = 1e-10
SOCP_TOL = 1e-11
# Columns whose largest entry lies outside [1 / LP_SCALE_LIMIT, LP_SCALE_LIMIT] are rescaled by a
# power of two before the LP (exact in floating point); HiGHS's absolute tolerances and its
# infinite bound (1e20) otherwise make such LPs fail.
LP_SCALE_LIMIT = 2.0**20


def distinct_rows(X, Y):
    """Distinct (x_i, y_i) pairs of a working-set problem: (X_u, Y_u, counts, inverse).

    Identical samples have identical hinge terms, so an LP over the distinct pairs, each slack
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
    """Hinge + group L1 on a working set as a second-order cone program, solved by Clarabel.

    Variables: W (p x C), t (p) with ||W_j||_2 <= t_j, slacks xi (n x C) >= 0 with
    xi_ic >= 1 - Y_ic x_i W_c; minimise sum_i s_i sum_c xi_ic + reg * sum t, with s the sample
    ``weights`` (summing to 1; default 1/n). The multipliers z_ic of the hinge rows lie in
    [0, s_i] and give the dual alpha = z / s. Identical samples are merged first (``distinct_rows``).
    """
    import clarabel

    scale = lp_scale(X)  # the same exact rescaling as ``hinge_lp``
    if scale != 1.0:
        W, alpha = hinge_socp(X / scale, Y, reg / scale, weights)
        return W / scale, alpha
    n_all = X.shape[0]
    X, Y, _, inverse = distinct_rows(X, Y)
    n, p = X.shape
    C = Y.shape[1]
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
    sw = _pair_weights(n_all, weights, inverse, n)
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


def _quiet_highs():
    """A ``highspy.Highs`` instance; the licence banner its first construction prints to the C-level
    stdout is swallowed so that it does not break progress bars."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)



def lp_scale(X: np.ndarray) -> float:
    """1, or the power of two nearest to max |X| when that lies outside the range HiGHS handles."""
    top = float(np.abs(X).max()) if X.size else 0.0
    if top == 0.0 or 1.0 / LP_SCALE_LIMIT <= top <= LP_SCALE_LIMIT:
        return 1.0
    return float(2.0 ** np.round(np.log2(top)))


def lp_method(p: int) -> str:
    """HiGHS's dual simplex for small working sets, its interior point method for large ones."""
    return "ipm" if p >= IPM_MIN_COLUMNS else "simplex"


def hinge_lp(X, Y, reg, weights=None):
    """Hinge + L1 on a working set as one LP per output column, solved exactly by HiGHS.

    min sum_i s_i xi_i + reg * sum(w+ + w-)  s.t.  xi_i >= 1 - y_i x_i (w+ - w-),  w+, w-, xi >= 0,
    with s the sample ``weights`` (summing to 1; default 1/n). The constraint multipliers
    mu_i in [0, s_i] give the dual alpha_i = mu_i / s_i. Identical samples
    are merged first (``distinct_rows``). HiGHS is called through highspy; ``lp_method`` picks
    the algorithm by size (crossover after the interior point method gives a vertex, hence exact
    multipliers). Data far from unit scale are first rescaled by a power of two (``lp_scale``):
    x -> x / s, w -> s w, reg -> reg / s leaves the LP's optimum and multipliers unchanged.
    """
    import highspy

    scale = lp_scale(X)
    if scale != 1.0:
        W, alpha = hinge_lp(X / scale, Y, reg / scale, weights)
        return W / scale, alpha
    n_all = X.shape[0]
    X, Y, _, inverse = distinct_rows(X, Y)
    n, p = X.shape
    sw = _pair_weights(n_all, weights, inverse, n)
    C = Y.shape[1]
    W = np.zeros((p, C))
    alpha = np.zeros((n, C))
    nv = 2 * p + n
    lp = highspy.HighsLp()  # everything but the constraint matrix is shared by the output columns
    lp.num_col_, lp.num_row_ = nv, n
    lp.col_cost_ = np.concatenate([np.full(2 * p, reg), sw])
    lp.col_lower_, lp.col_upper_ = np.zeros(nv), np.full(nv, highspy.kHighsInf)
    lp.row_lower_, lp.row_upper_ = np.full(n, -highspy.kHighsInf), -np.ones(n)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    slack = -sp.identity(n, format="csc")
    for c in range(C):
        yX = sp.csc_matrix(Y[:, c : c + 1] * X)
        A = sp.hstack([-yX, yX, slack], format="csc")
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = A.indptr, A.indices, A.data
        h = _quiet_highs()
        for key, value in (("output_flag", False), ("solver", lp_method(p)), ("run_crossover", "on"),
                           ("primal_feasibility_tolerance", LP_TOL), ("dual_feasibility_tolerance", LP_TOL),
                           ("ipm_optimality_tolerance", LP_TOL), ("threads", 1)):
            h.setOptionValue(key, value)
        h.passModel(lp)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            status = h.modelStatusToString(h.getModelStatus())
            raise ValueError(f"HiGHS could not solve the hinge LP ({status}): reg={reg:.3g} against D's "
                             f"columns of up to {np.abs(X).max():.3g} lies beyond the LP solver's "
                             f"tolerance ({LP_TOL:g}); use a larger reg")
        sol = h.getSolution()
        x = np.asarray(sol.col_value)
        W[:, c] = x[:p] - x[p : 2 * p]
        alpha[:, c] = np.clip(-np.asarray(sol.row_dual) / sw, 0.0, 1.0)
    return W, alpha[inverse]
