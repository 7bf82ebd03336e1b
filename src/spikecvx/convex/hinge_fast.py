"""Certified hinge + L1 by row generation on a persistent dual simplex LP (HiGHS), warm-started.

Problem, for each output column c (the outputs of hinge + elementwise L1 are independent):

    min_w  sum_i s_i max(0, 1 - y_ic x_i w) + reg * ||w||_1,      s_i = count_i / sum(count)

over the distinct (row, label) pairs, solved through its dual LP

    max_a  sum_i s_i a_i   s.t.  |sum_i s_i y_ic x_ij a_i| <= reg for every column j,  0 <= a <= 1,

whose solution is the hinge multiplier alpha and whose row multipliers are the coefficients w.

Why this is fast (see docs/design/hinge.md for measurements):

* **Row generation with a kept basis.** The LP holds the dual constraints of a working set of
  dictionary columns only. After each solve one product D^T (y alpha s) over all columns finds
  every violated constraint (a primal column of negative reduced cost); the most violated are
  added (``addRows``) and HiGHS's dual simplex resumes from the previous basis, which stays dual
  feasible, so it needs only the pivots that the new rows bring.
* **Warm start along a path.** ``info["state"]`` holds the LP of each output; passed to the next
  call with a smaller reg, only the row bounds change and the old basis stays dual feasible; near
  the small-reg end of a path (where the solution stops moving) it is often still optimal.
* **Complemented dense columns**, one interior-point solve for cold starts on most columns, and a
  least-squares polish of w onto the margin equations (see ``_DualLP`` and ``_polish``).
* **The vertex identified instead of pivoted to** (``hinge_vertex``): on cold starts on most
  columns, and when the warm simplex needs more than ``WARM_PIVOTS`` pivots, a dense interior
  point method ranks the support and margin rows, a small dense simplex (``hinge_repair``)
  repairs that pattern to the optimal vertex, and the vertex is kept only if its certificate is
  tight; its basis then becomes the LP's (``_DualLP.set_vertex``, applied when the LP next runs).

The certificate is computed here in float64 over every row and column of the full problem, from
W and alpha scaled into the dual constraint, exactly as the working-set solver does (see
``docs/method.md``); it does not trust the LP solver.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_int, check_positive, check_real_array
from .hinge_programs import lp_scale
from .hinge_vertex import dense_rows, identify_ipm, repair_pattern
from .matrix import DesignMatrix

_LP_TOL = 1e-10  # HiGHS primal / dual feasibility tolerances
_IPM_MIN_COLUMNS = 500  # a cold start with at least this many (and half of all) columns violated uses the IPM
# dual simplex pivots per output and value, from a kept basis, before the vertex is identified by
# the dense interior point method instead (``hinge_vertex``); the simplex resumes if that fails.
# After a value solved by a vertex (the path is in its moving part) none: the repair of that
# vertex (``VERTEX_REPAIR_PIVOTS``), then the identifier, before HiGHS sets its basis
WARM_PIVOTS = 1000
# after a value solved by a vertex, the next value first repairs that vertex's pattern with at
# most this many pivots (``hinge_repair``; at the small-reg end of a path it is often optimal as
# it is); the simplex takes over if that fails
VERTEX_REPAIR_PIVOTS = 30
# a vertex from ``hinge_vertex`` is accepted when its relative gap over the distinct rows is at most
# this (or tol, if smaller); a correct vertex has rounding-error gaps (1e-14 - 1e-13 on the benchmarks)
VERTEX_ACCEPT = 1e-11
# the dense identifier holds the distinct rows x all columns in float64: at most this many entries
VERTEX_MAX_ENTRIES = 2**24


def _new_highs():
    """A quiet ``highspy.Highs`` (the banner its first construction prints to the C-level stdout is
    swallowed), set for exact solves on one thread."""
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    for key, value in (("output_flag", False), ("solver", "simplex"), ("threads", 1),
                       ("primal_feasibility_tolerance", _LP_TOL), ("dual_feasibility_tolerance", _LP_TOL),
                       ("ipm_optimality_tolerance", _LP_TOL)):
        h.setOptionValue(key, value)
    return h


@dataclass
class HingeState:
    """Reusable LPs of a hinge + L1 problem (one per output), for warm starts along a path.

    Valid only for the same D, Y and counts it was built with; ``solve_hinge_l1`` compares a
    fingerprint of the three and starts afresh when they differ. It also keeps the merged rows."""

    key: tuple
    lps: list
    first: np.ndarray  # a representative row of each distinct (row, label) pair
    inverse: np.ndarray  # the pair of each row
    s: np.ndarray  # weight of each pair: merged counts / sum(counts)
    Du: DesignMatrix  # the distinct rows, in D's own dtype
    # per output and call: (route, HiGHS simplex pivots, interior point iterations, repair pivots)
    log: list = field(default_factory=list)


def _fingerprint(M: DesignMatrix, Y: np.ndarray, counts: np.ndarray) -> tuple:
    """Shapes and hashes of the data a ``HingeState`` is tied to."""
    parts = (M.D.data, M.D.indices, M.D.indptr) if M.sparse else (np.ascontiguousarray(M.D),)
    return (M.n, M.p, Y.shape[1], *(hash(np.asarray(a).tobytes()) for a in parts),
            hash(Y.tobytes()), hash(counts.tobytes()))


def _distinct(M: DesignMatrix, Y: np.ndarray, counts: np.ndarray):
    """Distinct (row, label) pairs: (rows index of a representative, inverse, merged counts)."""
    X = np.ascontiguousarray(M.D.toarray() if M.sparse else M.D)
    X = np.where(X == 0, 0, X) if X.dtype.kind == "f" else X  # -0.0 and 0.0 are the same row
    keys = np.concatenate([X.view(np.uint8).reshape(M.n, -1), (Y > 0).view(np.uint8)], axis=1)
    _, first, inverse = np.unique(keys.view(np.dtype((np.void, keys.shape[1])))[:, 0],
                                  return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    merged = np.bincount(inverse, weights=counts, minlength=len(first))
    return first, inverse, merged


def _check_inputs(D, Y, reg, tol, warm_start, counts):
    M = DesignMatrix(D)
    check_real_array("Y", Y)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != M.n:
        raise ValueError(f"Y must be (n,) or (n, C) with n = {M.n} rows of D, got shape {np.shape(Y)}")
    if not np.isin(Y, (-1.0, 1.0)).all():
        raise ValueError("Y must hold labels in {-1, +1}")
    check_positive("reg", reg)
    check_positive("tol", tol)
    if counts is None:
        counts = np.ones(M.n)
    else:
        check_real_array("counts", counts)
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (M.n,) or not np.isfinite(counts).all() or (counts < 0).any() or counts.sum() <= 0:
            raise ValueError(f"counts must be {M.n} finite non-negative numbers, not all zero")
    C = Y.shape[1]
    if warm_start is not None:
        check_real_array("warm_start", warm_start)
        W0 = np.asarray(warm_start, dtype=np.float64)
        if W0.size != M.p * C or not np.isfinite(W0).all():
            raise ValueError(f"warm_start must hold {M.p * C} finite numbers ((P, C) = ({M.p}, {C})), "
                             f"got shape {np.shape(warm_start)}")
        warm_start = W0.reshape(M.p, C)
    return M, Y, counts, warm_start


def certificate(D, Y, W, alpha, reg, counts=None) -> dict:
    """Duality gap of hinge + L1 in float64 over all of D, from W and multipliers alpha in [0, 1].

    U = -Y * alpha * s (s_i = count_i / sum(count)) is scaled into ||D^T U||_inf <= reg; the dual
    value is then scale * sum(s * alpha). Returns primal, dual, gap, rel_gap (gap / max(1, primal))."""
    M = DesignMatrix(D)
    Y = np.asarray(Y, dtype=np.float64).reshape(M.n, -1)
    W = np.asarray(W, dtype=np.float64).reshape(M.p, -1)
    alpha = np.asarray(alpha, dtype=np.float64).reshape(M.n, -1)
    if (alpha < 0).any() or (alpha > 1).any():
        raise ValueError("alpha must lie in [0, 1]")
    s = np.ones(M.n) if counts is None else np.asarray(counts, dtype=np.float64)
    s = (s / s.sum())[:, None]
    primal = float(np.sum(s * np.maximum(0.0, 1.0 - Y * M.matmul(W)))) + reg * float(np.abs(W).sum())
    U = -Y * alpha * s
    top = float(np.abs(M.rmatmul(U)).max())
    scale = min(1.0, reg / top) if top > 0 else 1.0
    dual = scale * float(np.sum(s * alpha))
    gap = primal - dual
    return dict(primal=primal, dual=dual, gap=gap, rel_gap=gap / max(1.0, abs(primal)), scale=scale)


def solve_hinge_l1(D, Y, reg: float, tol: float = 1e-6, warm_start: np.ndarray | None = None,
                   counts: np.ndarray | None = None, state: HingeState | None = None,
                   max_rounds: int = 200, max_add: int = 50):
    """Hinge + elementwise L1, solved exactly and certified:  min_W sum_i s_i sum_c
    max(0, 1 - Y_ic (D W)_ic) + reg * ||W||_1  with s_i = counts_i / sum(counts) (default 1 / n).
    Data whose largest entry lies far from 1 are solved rescaled by a power of two
    (``hinge_programs.lp_scale``), which changes nothing but the LP's numbers.

    Args:
        D: (n, P) design matrix (dense of any real dtype, or scipy sparse).
        Y: (n,) or (n, C) labels in {-1, +1}; C > 1 is one-vs-rest (each column its own problem).
        reg: regularisation strength (> 0).
        tol: target for gap / max(1, |primal|), certified over all of D.
        warm_start: (P, C) or (P,) coefficients whose support seeds the working set.
        counts: (n,) non-negative sample multiplicities (weights).
        state: ``info["state"]`` of a previous call on the same D, Y, counts (a path): the LPs and
            their bases are reused.
        max_rounds: row-generation rounds per output (``converged`` says whether they sufficed).
        max_add: most columns (dual rows) added per round in the first half of the rounds, the
            most violated ones (fewer keep the LP small, more save rounds); in the second half
            every violated column is added.

    Returns:
        (W (P, C), alpha (n, C) in [0, 1], info) where U = -Y * alpha * s, scaled by
        ``info["scale"]``, is the feasible dual point, and info also holds primal, dual, gap,
        rel_gap, converged, rounds (in all), output_rounds (per output), pivots, working_set,
        time and the reusable ``state``.
    """
    t0 = time.perf_counter()
    M, Y, counts, warm_start = _check_inputs(D, Y, reg, tol, warm_start, counts)
    check_int("max_rounds", max_rounds)
    check_int("max_add", max_add)
    if state is not None and not isinstance(state, HingeState):
        raise TypeError(f"state must be the info['state'] of a previous call, got {type(state).__name__}")
    reg = float(reg)
    data = M.D.data if M.sparse else M.D
    k = lp_scale(None, float(np.abs(data).max()) if data.size else 0.0)
    if k != 1.0:
        # data far from unit scale, rescaled by a power of two (exact): x -> x / k, w -> k w,
        # reg -> reg / k leaves the objective, the optimum and the multipliers unchanged
        W0 = None if warm_start is None else warm_start * k
        W, alpha, info = solve_hinge_l1(M.D / k, Y, reg / k, tol, W0, counts, state, max_rounds, max_add)
        return W / k, alpha, info
    n, C = Y.shape
    key = _fingerprint(M, Y, counts)
    if state is None or state.key != key:
        first, inverse, cu = _distinct(M, Y, counts)
        state = HingeState(key, [None] * C, first, inverse, cu / cu.sum(), DesignMatrix(M.D[first]))
    first, inverse, s, Du = state.first, state.inverse, state.s, state.Du  # s: pair weights
    Yu = Y[first]

    W = np.zeros((M.p, C))
    alpha_u = np.zeros((len(first), C))
    rounds = pivots = 0
    output_rounds = []
    G_all = Du.rmatmul(Yu * s[:, None])  # D^T (y s): the dual constraint at alpha = 1
    accept = min(tol, VERTEX_ACCEPT)
    dense_ok = len(first) * M.p <= VERTEX_MAX_ENTRIES
    for c in range(C):
        lp = state.lps[c]
        if lp is None:
            lp = state.lps[c] = _DualLP(Du, Yu[:, c], s)
        if lp.reg != reg:
            lp.set_reg(reg)
        method, found, budget, used, ipm_its, fixes = "simplex", None, None, 0, 0, 0
        route = "vertex"
        if not lp.size:  # seed: the warm start's support and the columns most violated at W = 0
            g = np.abs(G_all[:, c])
            violated = np.flatnonzero(g > reg)
            if len(violated) >= max(_IPM_MIN_COLUMNS, M.p // 2):
                # most columns would enter: the vertex is identified by the dense interior point
                # method (hinge_vertex) or, failing that, HiGHS's interior point method with
                # crossover solves once on every column (docs/design/hinge.md)
                found = _identify(Du, Yu[:, c], s, reg, accept, lp) if dense_ok else None
                ipm_its += found[2] if found else 0
                fixes += found[3] if found else 0
                if found is not None and found[0] is not None:
                    seed = set()
                else:
                    seed, method = set(np.flatnonzero(g > 0).tolist()), "ipm"
            else:
                top = np.argsort(-g)[: min(M.p, 100)]
                seed = set(top[g[top] > reg].tolist())
            if warm_start is not None:
                seed |= set(np.flatnonzero(warm_start[:, c]).tolist())
            if found is None or found[0] is None:
                lp.add(sorted(seed))
        elif dense_ok:  # a kept basis: the simplex, unless it needs many pivots; after a value
            # solved by a vertex (the path is in its moving part), that vertex repaired, else the
            # identifier at once
            budget = WARM_PIVOTS
            if lp.vertex is not None:  # the last value's vertex, repaired for this value
                A = dense_rows(Du, Yu[:, c], s)  # y * X, for the repair and the identifier
                found = _repair_last(Du, Yu[:, c], s, reg, accept, lp, A)
                fixes += found[3]
                route = "repair"
                if found[0] is None:  # not repaired: the identifier at once, no simplex budget
                    found = _identify(Du, Yu[:, c], s, reg, accept, lp, A)
                    ipm_its += found[2]
                    fixes += found[3]
                    route, budget = "vertex", None  # if it fails, the simplex runs to the end
        r = 0
        if found is not None and found[0] is not None:
            W[:, c], a, corr = found[0], found[1], None
            state.log.append((route, 0, ipm_its, fixes))
        else:
            for r in range(max_rounds):
                rounds += 1
                lp.limit = None if budget is None else budget - used
                w_lp, a, piv = lp.run(method if r == 0 else "simplex")
                pivots += piv
                used += piv
                if lp.limit is not None and lp.limited:
                    budget = lp.limit = None  # the simplex runs to the end if the vertex fails
                    found = _identify(Du, Yu[:, c], s, reg, accept, lp)
                    ipm_its += found[2]
                    fixes += found[3]
                    if found[0] is not None:
                        break
                    w_lp, a, piv = lp.run("simplex")
                    pivots += piv
                    used += piv
                corr = np.abs(Du.rmatmul((Yu[:, c] * a * s)[:, None])[:, 0])  # |D^T U| / scale
                viol = corr - reg
                viol[lp.cols] = -np.inf
                bad = np.flatnonzero(viol > 1e-9 * reg)
                if len(bad) == 0 or r == max_rounds - 1:
                    break
                # the most violated first; in the second half of the rounds every violated column, so
                # that the rounds suffice (column generation with everything at once, as the
                # working-set solver does)
                if len(bad) > max_add and 2 * (r + 1) < max_rounds:
                    bad = bad[np.argpartition(-viol[bad], max_add - 1)[:max_add]]
                lp.add(np.sort(bad))
            if found is not None and found[0] is not None:
                W[:, c], a = found[0], found[1]
                state.log.append(("simplex+vertex", used, ipm_its, fixes))
            else:
                W[lp.cols, c] = w_lp
                W[:, c] = _polish(Du, Yu[:, c], s, a, W[:, c], reg, float(corr.max()))
                state.log.append(("simplex", used, ipm_its, fixes))
                lp.vertex = None
        output_rounds.append(r + 1)
        alpha_u[:, c] = a

    alpha = alpha_u[inverse]
    cert = certificate(M.D, Y, W, alpha, reg, counts)
    info = dict(cert, converged=cert["rel_gap"] <= tol, rounds=rounds, output_rounds=output_rounds,
                pivots=pivots, time=time.perf_counter() - t0, state=state,
                working_set=[lp.size for lp in state.lps])
    return W, alpha, info


def _identify(Du: DesignMatrix, y, s, reg, accept, lp: _DualLP, A=None):
    """The vertex by ``hinge_vertex.identify_ipm``: (w, alpha, interior point iterations, repair
    pivots), w None when it did not certify. A certified vertex becomes the LP's basis when the LP
    next runs, for the simplex's warm start at the next value of a path. A: ``dense_rows``."""
    found = identify_ipm(Du, y, s, reg, accept, A=A)
    if not found.ok:
        return None, None, found.iterations, found.pivots
    lp.set_vertex(*found.pattern)
    return found.w, found.alpha, found.iterations, found.pivots


def _repair_last(Du: DesignMatrix, y, s, reg, accept, lp: _DualLP, A=None):
    """The last value's vertex repaired for this reg (``hinge_vertex.repair_pattern``, at most
    ``VERTEX_REPAIR_PIVOTS`` pivots): (w, alpha, 0, repair pivots), w None when it did not
    certify (the LP's routes follow)."""
    S, M = lp.vertex
    found = repair_pattern(Du, y, s, reg, S, M, accept, VERTEX_REPAIR_PIVOTS, A)
    if not found.ok:
        return None, None, 0, found.pivots
    lp.set_vertex(*found.pattern)
    return found.w, found.alpha, 0, found.pivots


def _polish(Du: DesignMatrix, y, s, a, w, reg, top, rel: float = 1e-12) -> np.ndarray:
    """w moved onto the margin equations y_i x_i w = 1 of the rows with 0 < alpha_i < 1.

    The LP solver's multipliers and values are exact only to its feasibility tolerances (1e-10);
    complementary slackness says every optimal w meets these equations on its support, so one
    least-squares correction (the smallest one) recovers the vertex to rounding error. Kept only
    if it lowers the objective; skipped when the output's gap is already below ``rel``.
    ``top``: max_j |sum_i s_i a_i y_i x_ij|, for the dual value."""

    def objective(v):
        margins = y * Du.matmul(v[:, None])[:, 0]
        return float(s @ np.maximum(0.0, 1.0 - margins)) + reg * float(np.abs(v).sum())

    primal = objective(w)
    dual = min(1.0, reg / top) * float(s @ a) if top > 0 else float(s @ a)
    support = np.flatnonzero(w)
    margin = np.flatnonzero((a > 1e-9) & (a < 1 - 1e-9))
    if primal - dual <= rel * max(1.0, primal) or not len(support) or not len(margin):  # nothing to gain
        return w
    A = y[margin, None] * Du.columns(support)[margin]
    step = np.linalg.lstsq(A, 1.0 - A @ w[support], rcond=None)[0]
    cand = w.copy()
    cand[support] += step
    if np.all(np.sign(cand[support]) == np.sign(w[support])) and objective(cand) < primal:
        return cand
    return w


class _DualLP:
    """The dual LP of one output, scaled by k = 1 / max(s):

        max  sum_i k s_i a_i   s.t.  |sum_i k s_i y_i x_ij a_i| <= k reg  (j in ``cols``),  0 <= a <= 1,

    whose solution is alpha and whose row multipliers are -w. Column generation in the primal is
    row generation here, and a new reg moves the row bounds: either way the kept basis stays dual
    feasible and HiGHS's dual simplex resumes from it.

    Dense dictionary columns are stored complemented: a column whose most frequent value v != 0
    occurs in more rows than 0 does is written x_j = v - (v - x_j), with (v - x_j) sparser, and
    its share v * sum_i k s_i y_i a_i of the row goes through one free variable q equal to that
    sum (one extra equality row, row 0). Spike dictionaries have many columns that fire on most
    inputs, and the cost of a simplex pivot follows the non-zeros of the LP.
    LP columns: a (n), q; rows: the q row, then one ranged row per column in ``cols``."""

    def __init__(self, Du: DesignMatrix, y: np.ndarray, s: np.ndarray) -> None:
        import highspy

        self.Du, self.cols, self.reg = Du, [], None
        self.pending = None  # a vertex basis to set before the next solve (``set_vertex``)
        self.vertex = None  # (S, M) of the last value's vertex, while the LP has not moved past it
        self.limit, self.limited = None, False  # simplex pivot limit of ``run``, and whether it stopped it
        self.k = 1.0 / s.max()
        self.sy = s * self.k * y
        self.n = len(y)
        self.highs = _new_highs()
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.n + 1, 1
        lp.col_cost_ = np.concatenate([-s * self.k, [0.0]])
        lp.col_lower_ = np.concatenate([np.zeros(self.n), [-inf]])
        lp.col_upper_ = np.concatenate([np.ones(self.n), [inf]])
        lp.row_lower_, lp.row_upper_ = np.zeros(1), np.zeros(1)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.array([0, self.n + 1], dtype=np.int32)
        lp.a_matrix_.index_ = np.arange(self.n + 1, dtype=np.int32)
        lp.a_matrix_.value_ = np.concatenate([self.sy, [-1.0]])
        self.highs.passModel(lp)

    def add(self, js) -> None:
        """Append the dual constraint rows of dictionary columns ``js`` (those the LP lacks: a
        column's constraint appears once, so each LP row maps to one coefficient)."""
        have = set(self.cols)
        js = [j for j in dict.fromkeys(int(j) for j in js) if j not in have]
        if not js:
            return
        X = self.Du.columns(np.asarray(js))
        starts, index, value = [], [], []
        nnz = 0
        for k in range(X.shape[1]):
            x = X[:, k]
            vals, freq = np.unique(x, return_counts=True)
            v = vals[np.argmax(freq)]
            if v != 0 and freq.max() > np.count_nonzero(x == 0):  # complemented: x = v - (v - x)
                rows = np.flatnonzero(x != v)
                idx, val = np.append(rows, self.n), np.append(-self.sy[rows] * (v - x[rows]), v)
            else:
                idx = np.flatnonzero(x)
                val = self.sy[idx] * x[idx]
            starts.append(nnz)
            index.append(idx)
            value.append(val)
            nnz += len(idx)
        b = self.reg * self.k
        m = len(js)
        self.highs.addRows(m, np.full(m, -b), np.full(m, b), nnz, np.asarray(starts, dtype=np.int32),
                           np.concatenate(index).astype(np.int32), np.concatenate(value))
        self.cols = self.cols + js

    def set_reg(self, reg: float) -> None:
        self.reg = reg
        m = len(self.cols)
        if m:
            b = reg * self.k
            self.highs.changeRowsBounds(m, np.arange(1, m + 1, dtype=np.int32), np.full(m, -b), np.full(m, b))

    @property
    def size(self) -> int:
        """Dual constraint rows of the LP, counting those a pending vertex basis adds."""
        if self.pending is None:
            return len(self.cols)
        return len(set(self.cols) | {int(j) for j in self.pending[0]})

    def set_vertex(self, S, sign, M, L) -> None:
        """Make the basis of the vertex with pattern (S, sign, M, L) the LP's when it next runs
        (``run``): a value solved by the vertex alone never pays HiGHS's ``setBasis`` and first
        factorisation."""
        self.pending = (S, sign, M, L)
        self.vertex = (np.asarray(S), np.asarray(M))

    def _apply_vertex(self, S, sign, M, L) -> None:
        """Make the basis of the vertex with support S (signs ``sign``), margin rows M
        (alpha basic) and rows L at alpha = 1 the LP's basis: the dual constraints of S are
        active, at the bound of their sign (|S| = |M|: ``hinge_repair`` returns square bases).
        Adds the constraints of S that the LP lacks. If HiGHS refuses the basis, the LP keeps the
        one it had."""
        import highspy

        S, sign, M = np.asarray(S), np.asarray(sign), np.asarray(M)
        assert len(S) == len(M), "a vertex basis is square"
        have = set(self.cols)
        self.add(sorted(int(j) for j in S if int(j) not in have))
        pos = {j: r + 1 for r, j in enumerate(self.cols)}
        B = highspy.HighsBasisStatus
        col = np.full(self.n + 1, int(B.kLower))
        col[np.asarray(L, dtype=np.int64)] = int(B.kUpper)
        row = np.full(len(self.cols) + 1, int(B.kBasic))
        row[0] = int(B.kLower)  # the q equality
        col[M.astype(np.int64)] = int(B.kBasic)
        col[self.n] = int(B.kBasic)  # q, free
        for j, sg in zip(S, sign):
            row[pos[int(j)]] = int(B.kUpper if sg > 0 else B.kLower)
        basis = highspy.HighsBasis()
        basis.col_status = [B(int(v)) for v in col]
        basis.row_status = [B(int(v)) for v in row]
        basis.valid = True
        self.highs.setBasis(basis)

    def run(self, method: str = "simplex"):
        """Solve (dual simplex, from the kept basis when there is one, or the interior point method with
        crossover); returns (w for self.cols, alpha, simplex pivots). The simplex stops after
        ``self.limit`` pivots when that is set, and ``self.limited`` says whether it did."""
        h = self.highs
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._apply_vertex(*pending)
        h.setOptionValue("solver", method)
        h.setOptionValue("run_crossover", "on")
        h.setOptionValue("simplex_strategy", 1)
        limit = 2**31 - 1 if self.limit is None else max(1, int(self.limit))
        h.setOptionValue("simplex_iteration_limit", limit)
        sol = _solve(h, self.limit is not None)
        a = np.clip(np.asarray(sol.col_value)[: self.n], 0.0, 1.0)
        w = -np.asarray(sol.row_dual)[1:]
        self.limited = h.getModelStatus() != _optimal()
        return w, a, int(h.getInfo().simplex_iteration_count)


def _optimal():
    import highspy

    return highspy.HighsModelStatus.kOptimal


def _solve(h, limited: bool = False):
    import highspy

    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal and not (
            limited and status == highspy.HighsModelStatus.kIterationLimit):
        raise RuntimeError(f"HiGHS failed on the hinge LP: {h.modelStatusToString(status)}")
    return h.getSolution()
