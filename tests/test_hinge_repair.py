"""The dense primal simplex repair of hinge + L1 vertices (hinge_repair.repair) and its use in
hinge_vertex / hinge_fast: from an empty, exact, perturbed or singular pattern it reaches the LP
engine's and CVXPY's optimum with a certificate checked by hand; out of budget or on an unsafe
pivot it gives up and the LP engine answers."""

import numpy as np
import pytest
from hinge_cases import (
    DEGENERATE_CASES,
    binary_problem,
    certificate_by_hand,
    cvxpy_objective,
    degenerate_problem,
)

from spikecvx.convex import hinge_fast as hf
from spikecvx.convex import hinge_repair as hr
from spikecvx.convex import hinge_vertex as hv
from spikecvx.convex import reg_max
from spikecvx.convex.matrix import DesignMatrix

pytest.importorskip("cvxpy")


def _lp_primal(D, y, reg, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(hf, "VERTEX_MAX_ENTRIES", 0)  # HiGHS's LPs alone
        return hf.solve_hinge_l1(D, y, reg, tol=1e-9)[2]["primal"]


def _problem(D, y):
    return y[:, None] * D.astype(np.float64), np.full(len(y), 1.0 / len(y))


def _optimal_pattern(D, y, reg):
    found = hv.identify_ipm(DesignMatrix(D), y, np.full(len(y), 1.0 / len(y)), reg, accept=1e-11)
    assert found.ok
    return found.pattern


@pytest.mark.parametrize("seed,frac", [(0, 5), (1, 30), (2, 300)])
def test_from_an_empty_pattern_the_simplex_reaches_the_optimum(seed, frac, monkeypatch):
    """w = 0 with every row inside the margin is a basis: the repair is then a whole primal
    simplex, and must land on the LP engine's optimum with a tight certificate."""
    D, y = binary_problem(150, 80, seed)
    reg = reg_max(D, y, "hinge") / frac
    A, s = _problem(D, y)
    got = hr.repair(A, s, reg, [], [], accept=1e-11, max_pivots=5000)
    assert got.ok and got.reason == "optimal" and got.pivots > 0
    primal, gap = certificate_by_hand(D, y, got.w, got.alpha, reg)
    assert 0 <= gap <= 1e-11 * max(1.0, primal)
    assert primal == pytest.approx(_lp_primal(D, y, reg, monkeypatch), rel=1e-9)
    assert primal == pytest.approx(cvxpy_objective(D, y, reg), rel=1e-5)
    S, sign, M, L = got.pattern
    assert len(S) == len(M)  # a basis
    assert np.all(got.w[S] * sign >= 0) and np.count_nonzero(got.w) <= len(S)
    assert np.allclose(y[M] * (D[M].astype(float) @ got.w), 1.0, atol=1e-10)
    assert np.all(y[L] * (D[L].astype(float) @ got.w) <= 1 + 1e-10)


def test_the_optimal_pattern_needs_no_pivot_and_a_perturbed_one_is_repaired(monkeypatch):
    D, y = binary_problem(200, 100, 3)
    reg = reg_max(D, y, "hinge") / 30
    A, s = _problem(D, y)
    S, _, M, _ = _optimal_pattern(D, y, reg)
    exact = hr.repair(A, s, reg, S, M, accept=1e-11)
    assert exact.ok and exact.pivots == 0
    ref = _lp_primal(D, y, reg, monkeypatch)
    rng = np.random.default_rng(0)
    for swap in (1, 2, 3):  # support columns and margin rows swapped for wrong ones
        out_S = rng.choice(S, swap, replace=False)
        in_S = rng.choice(np.setdiff1d(np.arange(D.shape[1]), S), swap, replace=False)
        out_M = rng.choice(M, swap, replace=False)
        in_M = rng.choice(np.setdiff1d(np.arange(len(y)), M), swap, replace=False)
        S2 = np.union1d(np.setdiff1d(S, out_S), in_S)
        M2 = np.union1d(np.setdiff1d(M, out_M), in_M)
        got = hr.repair(A, s, reg, S2, M2, accept=1e-11, max_pivots=5000)
        assert got.ok and got.pivots > 0
        primal, gap = certificate_by_hand(D, y, got.w, got.alpha, reg)
        assert gap <= 1e-11 * max(1.0, primal)
        assert primal == pytest.approx(ref, rel=1e-9)
    # elements only removed, or only added (|S| != |M|: made square first)
    for S2, M2 in ((S[2:], M), (S, np.union1d(M, in_M))):
        got = hr.repair(A, s, reg, S2, M2, accept=1e-11, max_pivots=5000)
        assert got.ok and got.pivots > 0
        assert certificate_by_hand(D, y, got.w, got.alpha, reg)[0] == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("case", DEGENERATE_CASES)
def test_degenerate_instances(case, monkeypatch):
    D, y = degenerate_problem(case)
    reg = reg_max(D, y, "hinge") / 40
    A, s = _problem(D, y)
    ref = _lp_primal(D, y, reg, monkeypatch)
    # the starting pattern: every column and row (singular: the repair picks a regular block)
    S_all, M_all = np.arange(D.shape[1]), np.arange(len(y))
    for S, M in (([], []), (S_all, M_all)):
        got = hr.repair(A, s, reg, S, M, accept=1e-11, max_pivots=5000)
        assert got.ok, got.reason
        S_, _, M_, _ = got.pattern
        assert np.linalg.matrix_rank(A[np.ix_(M_, S_)]) == len(S_) == len(M_)
        primal, gap = certificate_by_hand(D, y, got.w, got.alpha, reg)
        assert gap <= 1e-11 * max(1.0, primal)
        assert primal == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_out_of_budget_or_unsafe_the_repair_gives_up(monkeypatch):
    D, y = binary_problem(150, 80, 5)
    reg = reg_max(D, y, "hinge") / 30
    A, s = _problem(D, y)
    short = hr.repair(A, s, reg, [], [], accept=1e-11, max_pivots=5)
    assert not short.ok and short.reason == "budget" and short.pivots == 5 and short.pattern is None
    monkeypatch.setattr(hr, "PIVOT_TOL", 1e3)  # every pivot element refused as too small
    unsafe = hr.repair(A, s, reg, [], [], accept=1e-11)
    assert not unsafe.ok and unsafe.reason == "unsafe" and unsafe.pivots == 0


def test_a_repair_that_gives_up_leaves_the_solve_to_the_lp(monkeypatch):
    D, y = binary_problem(160, 80, 6)
    reg = reg_max(D, y, "hinge") / 30
    ref = _lp_primal(D, y, reg, monkeypatch)
    monkeypatch.setattr(hf, "_IPM_MIN_COLUMNS", 0)  # the cold start goes to the identifier
    monkeypatch.setattr(hr, "PIVOT_TOL", 1e3)  # no pivot allowed: only an exact pattern would do
    monkeypatch.setattr(hv, "RANK", np.inf)  # ... and the ranked patterns are empty: never exact
    W, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9)
    route, pivots, iterations, repair_pivots = info["state"].log[-1]
    assert route == "simplex" and iterations > 0 and repair_pivots == 0
    assert info["primal"] == pytest.approx(ref, rel=1e-9)
    primal, gap = certificate_by_hand(D, y, W[:, 0], alpha[:, 0], reg)
    assert gap <= 1e-9 * max(1.0, primal)


def test_identifier_route_is_pinned(monkeypatch):
    """A cold start on most columns: interior point iterations, then the repair certifies; no
    HiGHS pivot, and the basis is handed to the LP only when the LP runs next."""
    D, y = binary_problem(300, 150, 11)
    reg = reg_max(D, y, "hinge") / 30
    ref = _lp_primal(D, y, reg, monkeypatch)
    monkeypatch.setattr(hf, "_IPM_MIN_COLUMNS", 0)
    found = []

    def recorded(*args, **kwargs):
        found.append(hv.identify_ipm(*args, **kwargs))
        return found[-1]

    monkeypatch.setattr(hf, "identify_ipm", recorded)
    W, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9)
    route, pivots, iterations, repair_pivots = info["state"].log[-1]
    assert route == "vertex" and pivots == 0 and info["pivots"] == 0 and iterations > 0
    assert len(found) == 1 and found[0].ok and found[0].repairs >= 1 and iterations == found[0].iterations
    assert repair_pivots == found[0].pivots and info["rel_gap"] <= 1e-11
    lp = info["state"].lps[0]
    assert lp.pending is not None and not lp.cols  # setBasis deferred
    assert info["working_set"][0] == np.count_nonzero(lp.pending[0] >= 0)
    assert info["primal"] == pytest.approx(ref, rel=1e-9)
    # the same value again: the last vertex's pattern is optimal as it is (no pivot, no LP)
    _, _, again = hf.solve_hinge_l1(D, y, reg, tol=1e-9, state=info["state"])
    assert info["state"].log[-1] == ("repair", 0, 0, 0) and lp.pending is not None
    assert again["primal"] == pytest.approx(ref, rel=1e-9)
    # without it, the LP starts from the vertex's basis, which is optimal: no simplex pivot
    lp.vertex = None
    _, _, third = hf.solve_hinge_l1(D, y, reg, tol=1e-9, state=info["state"])
    assert info["state"].log[-1][:2] == ("simplex", 0) and lp.pending is None and lp.cols
    assert third["primal"] == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("case", ["repair", "identifier", "lp"])
def test_the_next_value_of_a_path_repairs_the_last_vertex(case, monkeypatch):
    """Along a path the last value's vertex is a primal feasible basis for the next reg: repaired
    within its budget it is the answer (route "repair"); otherwise the identifier runs at once,
    and if that fails too, HiGHS's simplex from the vertex's basis. Each the LP engine's optimum."""
    D, y = binary_problem(300, 150, 12)
    top = reg_max(D, y, "hinge")
    regs = [top / 30, top / 31]
    refs = [_lp_primal(D, y, reg, monkeypatch) for reg in regs]
    monkeypatch.setattr(hf, "_IPM_MIN_COLUMNS", 0)
    if case != "repair":
        monkeypatch.setattr(hf, "VERTEX_REPAIR_PIVOTS", 0)  # the next value needs pivots: fails
    state, routes = None, []
    for k, (reg, ref) in enumerate(zip(regs, refs)):
        if case == "lp" and k == 1:  # an identifier that stops before any repair
            monkeypatch.setattr(hf, "identify_ipm", lambda *a, **kw: hv.identify_ipm(*a, **kw, max_iter=2))
        W, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9, state=state)
        state = info["state"]
        routes.append(state.log[-1])
        assert info["primal"] == pytest.approx(ref, rel=1e-9) and info["rel_gap"] <= 1e-9
        primal, gap = certificate_by_hand(D, y, W[:, 0], alpha[:, 0], reg)
        assert gap <= 1e-9 * max(1.0, primal)
    assert routes[0][0] == "vertex"
    route, pivots, iterations, repair_pivots = routes[1]
    if case == "repair":
        assert route == "repair" and pivots == iterations == 0 and 0 < repair_pivots <= 30
    elif case == "identifier":
        assert route == "vertex" and pivots == 0 and iterations > 0  # no HiGHS simplex budget
    else:
        assert route == "simplex" and pivots > 0 and iterations == 2


def test_rows_of_zero_weight_along_a_path(monkeypatch):
    """Rows of weight 0 are left out of the identifier and of the repair of the last vertex (its
    margin rows are mapped onto the rows kept); the path still reaches the LP engine's optima."""
    D, y = binary_problem(240, 120, 13)
    weights = np.ones(len(y))
    weights[::5] = 0.0
    kept = weights > 0
    top = reg_max(D[kept], y[kept], "hinge")
    regs = [top / 20, top / 21, top / 21]
    with monkeypatch.context() as m:
        m.setattr(hf, "VERTEX_MAX_ENTRIES", 0)
        refs = [hf.solve_hinge_l1(D, y, reg, tol=1e-9, counts=weights)[2]["primal"] for reg in regs]
    monkeypatch.setattr(hf, "_IPM_MIN_COLUMNS", 0)
    state, routes = None, []
    for reg, ref in zip(regs, refs):
        W, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9, counts=weights, state=state)
        state = info["state"]
        routes.append(state.log[-1][0])
        assert info["primal"] == pytest.approx(ref, rel=1e-9)
        primal, gap = certificate_by_hand(D[kept], y[kept], W[:, 0], alpha[kept, 0], reg)
        assert gap <= 1e-9 * max(1.0, primal) and np.all(alpha[~kept, 0] == 0)
    assert routes[0] == "vertex" and routes[2] == "repair"


def _lp_reference(A, s, reg):
    """The LP's optimal value by scipy's HiGHS on the standard form (w = wp - wm, xi, sg)."""
    from scipy.optimize import linprog

    n, p = A.shape
    c = np.concatenate([np.full(2 * p, reg), s, np.zeros(n)])
    A_eq = np.hstack([A, -A, np.eye(n), -np.eye(n)])
    return linprog(c, A_eq=A_eq, b_eq=np.ones(n), bounds=(0, None), method="highs").fun


def test_duplicate_rows_of_opposite_labels_hand_over_to_blands_rule():
    """Rows x_i and x_i with opposite labels: the steps are rounding noise (1e-15..1e-13), not
    exactly 0; counted as degenerate by their objective drop, Bland's rule takes over and the
    simplex reaches the optimum far within its budget (with an absolute step test it cycles to
    the budget of 3000 from this start)."""
    rng = np.random.default_rng(5)
    n, p = 145, 43
    X = (rng.random((n, p)) < 0.3).astype(float)
    X[n // 2:] = X[: n - n // 2]
    score = X[:, :5].sum(1)
    y = np.where(score + rng.normal(size=n) * 0.3 > score.mean(), 1.0, -1.0)
    y[n // 2:] = -y[: n - n // 2]
    A, s = y[:, None] * X, np.full(n, 1.0 / n)
    reg = 0.0022 * np.abs(A.T @ s).max()
    S = rng.choice(p, 14, replace=False)
    M = rng.choice(n, 111, replace=False)
    got = hr.repair(A, s, reg, S, M, accept=1e-11, max_pivots=3000)
    assert got.ok and got.reason == "optimal" and got.pivots < 1500, (got.reason, got.pivots)
    primal = s @ np.maximum(0.0, 1.0 - A @ got.w) + reg * np.abs(got.w).sum()
    assert primal == pytest.approx(_lp_reference(A, s, reg), rel=1e-9)
    assert got.rel_gap <= 1e-11


def test_a_singular_start_gives_up(monkeypatch):
    """When no regular block of the start can be inverted the repair gives up ("singular")
    instead of raising, and the caller's LP decides."""
    D, y = binary_problem(60, 30, 8)
    A, s = _problem(D, y)

    def singular(_):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(np.linalg, "inv", singular)
    got = hr.repair(A, s, 0.01, np.arange(10), np.arange(10), accept=1e-11)
    assert not got.ok and got.reason == "singular" and got.pivots == 0 and got.pattern is None
