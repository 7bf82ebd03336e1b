"""The identified vertex of hinge + L1 (hinge_vertex.identify_ipm and its use in hinge_fast):
the same optimum and as tight a certificate as the LP engine and CVXPY, on random, tied,
duplicate-column, all-zero-column and degenerate instances, along paths; the LP fallback."""

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
from spikecvx.convex import reg_max
from spikecvx.convex.hinge_vertex import identify_ipm
from spikecvx.convex.matrix import DesignMatrix

pytest.importorskip("cvxpy")


def _lp_only(monkeypatch):
    """The engine without the identified vertex: HiGHS's LPs alone."""
    monkeypatch.setattr(hf, "VERTEX_MAX_ENTRIES", 0)


def _vertex_always(monkeypatch):
    """The vertex route wherever it applies: cold starts on half of the columns, warm starts after
    one simplex pivot."""
    monkeypatch.setattr(hf, "_IPM_MIN_COLUMNS", 0)
    monkeypatch.setattr(hf, "WARM_PIVOTS", 1)


@pytest.mark.parametrize("seed,frac", [(0, 5), (1, 30), (2, 300)])
def test_identified_vertex_certifies_and_matches_cvxpy(seed, frac):
    D, y = binary_problem(150, 80, seed)
    reg = reg_max(D, y, "hinge") / frac
    Du = DesignMatrix(D)
    s = np.full(len(y), 1.0 / len(y))
    found = identify_ipm(Du, y, s, reg, accept=1e-11)
    assert found.ok and found.rel_gap <= 1e-11
    primal, gap = certificate_by_hand(D, y, found.w, found.alpha, reg)
    assert 0 <= gap <= 1e-11 * max(1.0, primal)
    assert primal == pytest.approx(cvxpy_objective(D, y, reg), rel=1e-5)
    S, sign, M, L = found.pattern
    assert np.all(found.w[S] * sign >= 0) and np.count_nonzero(found.w) <= len(S)
    assert np.allclose(y[M] * (D[M].astype(float) @ found.w), 1.0, atol=1e-10)  # the margin rows
    assert np.all(y[L] * (D[L].astype(float) @ found.w) <= 1 + 1e-10)  # alpha = 1 inside the margin


@pytest.mark.parametrize("case", DEGENERATE_CASES)
def test_vertex_route_equals_the_lp_engine_on_degenerate_instances(case, monkeypatch):
    D, y = degenerate_problem(case)
    reg = reg_max(D, y, "hinge") / 40
    with monkeypatch.context() as m:
        _lp_only(m)
        _, _, ref = hf.solve_hinge_l1(D, y, reg, tol=1e-9)
    _vertex_always(monkeypatch)
    W, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9)
    assert info["primal"] == pytest.approx(ref["primal"], rel=1e-9, abs=1e-12)
    assert info["primal"] == pytest.approx(cvxpy_objective(D, y, reg), rel=1e-5)
    primal, gap = certificate_by_hand(D, y, W[:, 0], alpha[:, 0], reg)
    assert gap <= 1e-9 * max(1.0, primal) and gap == pytest.approx(info["gap"], abs=1e-13)
    assert info["rel_gap"] <= max(1e-11, 10 * ref["rel_gap"])


def test_path_through_the_vertex_route_hands_its_basis_to_the_lp(monkeypatch):
    D, y = binary_problem(200, 90, 5)
    top = reg_max(D, y, "hinge")
    regs = top * np.array([0.5, 0.1, 0.02, 0.004])
    with monkeypatch.context() as m:
        _lp_only(m)
        ref, state = [], None
        for reg in regs:
            _, _, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9, state=state)
            ref.append(info["primal"])
            state = info["state"]
    _vertex_always(monkeypatch)
    state, routes = None, []
    for reg, value in zip(regs, ref):
        W, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9, state=state)
        state = info["state"]
        routes.append(state.log[-1][0])
        assert info["primal"] == pytest.approx(value, rel=1e-9)
        assert info["rel_gap"] <= 1e-11
    assert "simplex+vertex" in routes  # the warm simplex was cut short and the vertex took over
    # the basis of the last identified vertex is optimal for the LP: the same value again costs
    # the warm simplex no pivot
    monkeypatch.setattr(hf, "WARM_PIVOTS", 10**6)
    assert state.log[-1][0] in ("vertex", "simplex+vertex")  # an identified vertex's basis
    state.lps[0].vertex = None  # not the repair of the last vertex: the LP's own route
    _, _, again = hf.solve_hinge_l1(D, y, regs[-1], tol=1e-9, state=state)
    assert state.log[-1] == ("simplex", 0, 0, 0)
    assert again["primal"] == pytest.approx(ref[-1], rel=1e-9)


def test_lp_fallback_when_no_vertex_certifies(monkeypatch):
    D, y = binary_problem(150, 80, 6)
    reg = reg_max(D, y, "hinge") / 30
    _vertex_always(monkeypatch)
    calls = []

    def give_up(*args, **kwargs):  # an identifier that stops before any vertex is tried
        calls.append(1)
        return identify_ipm(*args, **kwargs, max_iter=2)

    monkeypatch.setattr(hf, "identify_ipm", give_up)
    W, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9)
    assert calls and info["state"].log[-1][0] == "simplex"
    assert info["working_set"][0] >= 40  # the cold start went to HiGHS's interior point method
    assert info["primal"] == pytest.approx(cvxpy_objective(D, y, reg), rel=1e-5)
    primal, gap = certificate_by_hand(D, y, W[:, 0], alpha[:, 0], reg)
    assert gap <= 1e-9 * max(1.0, primal)


def test_a_vertex_that_does_not_certify_falls_back_to_the_lp(monkeypatch):
    D, y = binary_problem(180, 90, 8)
    reg = reg_max(D, y, "hinge") / 40
    with monkeypatch.context() as m:
        _lp_only(m)
        W_ref, _, ref = hf.solve_hinge_l1(D, y, reg, tol=1e-9)
    _vertex_always(monkeypatch)

    found = []

    def never_certify(Du, y_, s, reg_, accept, **kwargs):  # every repaired vertex refused
        found.append(identify_ipm(Du, y_, s, reg_, accept=-1.0, **kwargs))
        return found[-1]

    monkeypatch.setattr(hf, "identify_ipm", never_certify)
    W, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9)
    route, pivots, iterations, repair_pivots = info["state"].log[-1]
    assert route == "simplex" and iterations > 0  # repairs refused, then the LP
    assert found and all(not f.ok and f.repairs > 0 for f in found)
    assert repair_pivots == sum(f.pivots for f in found)
    assert info["primal"] == pytest.approx(ref["primal"], rel=1e-9)
    primal, gap = certificate_by_hand(D, y, W[:, 0], alpha[:, 0], reg)
    assert gap <= 1e-9 * max(1.0, primal)


def test_rows_of_zero_weight_are_left_out_and_the_vertex_still_certifies(monkeypatch):
    D, y = binary_problem(160, 80, 9)
    weights = np.ones(len(y))
    weights[::4] = 0.0
    reg = reg_max(D[weights > 0], y[weights > 0], "hinge") / 30
    with monkeypatch.context() as m:
        _lp_only(m)
        _, _, ref = hf.solve_hinge_l1(D, y, reg, tol=1e-9, counts=weights)
    _vertex_always(monkeypatch)
    W, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9, counts=weights)
    assert info["state"].log[-1][0] == "vertex"
    assert info["primal"] == pytest.approx(ref["primal"], rel=1e-9)
    kept = weights > 0
    primal, gap = certificate_by_hand(D[kept], y[kept], W[:, 0], alpha[kept, 0], reg)
    assert primal == pytest.approx(info["primal"], rel=1e-12)
    assert gap <= 1e-9 * max(1.0, primal)


def test_a_warm_start_on_a_grown_dictionary_reaches_the_lp_engines_optimum(monkeypatch):
    """Witness search re-solves with the previous solution on a dictionary grown by new columns:
    the identified vertex's constraints and the warm start's support overlap, and each column
    must enter the LP once (a duplicated constraint split its coefficient)."""
    rng = np.random.default_rng(0)
    D = (rng.random((600, 400)) < 0.5).astype(np.uint8)
    y = np.where(D[:, :7].sum(1) % 2 == 0, 1.0, -1.0)
    reg = 0.03 * reg_max(D, y, "hinge", "l1")
    w0, _, info0 = hf.solve_hinge_l1(D, y, reg)
    D2 = np.hstack([D, (rng.random((600, 300)) < 0.5).astype(np.uint8)])
    warm = np.vstack([w0, np.zeros((300, 1))])
    w, alpha, info = hf.solve_hinge_l1(D2, y, reg, warm_start=warm)
    assert info0["rel_gap"] <= 1e-9 and info["rel_gap"] <= 1e-9
    assert info["state"].log[-1][0] == "vertex"
    primal, gap = certificate_by_hand(D2, y, w[:, 0], alpha[:, 0], reg)
    assert gap <= 1e-9 * max(1.0, primal)
    # the next value by the LP (not the repair of the last vertex): it sets the vertex's basis,
    # adding the constraints of its support, and column generation adds the rest: once each
    lp = info["state"].lps[0]
    lp.vertex = None
    _, _, nxt = hf.solve_hinge_l1(D2, y, 0.9 * reg, warm_start=warm, state=info["state"])
    assert info["state"].log[-1][0] == "simplex" and lp.pending is None
    assert lp.cols and len(set(lp.cols)) == len(lp.cols) and nxt["rel_gap"] <= 1e-9
    monkeypatch.setattr(hf, "VERTEX_MAX_ENTRIES", 0)  # the LP route alone, for reference
    w_lp, _, info_lp = hf.solve_hinge_l1(D2, y, reg, warm_start=warm)
    assert primal == pytest.approx(info_lp["primal"], rel=1e-9)


def test_a_factorisation_that_fails_mid_identifier_falls_back_to_the_lp(monkeypatch):
    """When the identifier's normal matrix cannot be factorised at a higher precision level, the
    solve goes on by the LP engine and still certifies (it must not raise)."""
    from spikecvx.convex import hinge_vertex as hv

    D, y = binary_problem(150, 80, 3)
    reg = reg_max(D, y, "hinge", "l1") / 30
    factor = hv._NormalSystem.factor

    def failing(self, level):
        if level >= 1:
            raise np.linalg.LinAlgError("normal matrix not positive definite")
        return factor(self, level)

    monkeypatch.setattr(hv._NormalSystem, "factor", failing)
    monkeypatch.setattr(hv, "SOLVE_TOL", 0.0)  # refinement always misses: the level goes up
    monkeypatch.setattr(hf, "_IPM_MIN_COLUMNS", 0)  # the cold start goes to the identifier
    w, alpha, info = hf.solve_hinge_l1(D, y, reg, tol=1e-9)
    assert info["state"].log[-1][0] != "vertex"
    primal, gap = certificate_by_hand(D, y, w[:, 0], alpha[:, 0], reg)
    assert gap <= 1e-9 * max(1.0, primal)


def _screening_everywhere(monkeypatch, screen):
    """Screening on every problem size, with the given schedule; returns the (columns, rows) each
    restriction keeps, in its own problem's indices."""
    from spikecvx.convex import hinge_vertex as hv

    monkeypatch.setattr(hv, "SCREEN_MIN", 0)
    monkeypatch.setattr(hv, "SCREEN", screen)
    kept, restrict = [], hv._restrict

    def recording(*args):
        kept.append((args[-2].copy(), args[-1].copy()))
        return restrict(*args)

    monkeypatch.setattr(hv, "_restrict", recording)
    return kept


def test_screened_identifier_certifies_the_lp_engines_optimum(monkeypatch):
    from spikecvx.convex import hinge_vertex as hv

    D, y = binary_problem(300, 150, 2)
    reg = reg_max(D, y, "hinge") / 50
    with monkeypatch.context() as m:
        _lp_only(m)
        _, _, ref = hf.solve_hinge_l1(D, y, reg, tol=1e-9)
    kept = _screening_everywhere(monkeypatch, hv.SCREEN)
    s = np.full(len(y), 1.0 / len(y))
    found = identify_ipm(DesignMatrix(D), y, s, reg, accept=1e-11)
    assert len(kept) == 2 and len(kept[-1][1]) < 200  # it screened (the rows: 300 -> 276 -> 157)
    assert found.ok and found.screened > 0 and not found.unscreened
    primal, gap = certificate_by_hand(D, y, found.w, found.alpha, reg)
    assert 0 <= gap <= 1e-11 * max(1.0, primal)
    assert primal == pytest.approx(ref["primal"], rel=1e-9, abs=1e-12)
    assert primal == pytest.approx(cvxpy_objective(D, y, reg), rel=1e-5)


def test_screening_that_drops_support_columns_is_repaired_on_the_full_problem(monkeypatch):
    D, y = binary_problem(300, 150, 2)
    reg = reg_max(D, y, "hinge") / 50
    kept = _screening_everywhere(monkeypatch, {6: (0.8, None)})  # fewer columns than the support
    s = np.full(len(y), 1.0 / len(y))
    found = identify_ipm(DesignMatrix(D), y, s, reg, accept=1e-11)
    assert found.ok and found.screened > 0 and not found.unscreened  # the repair certified it
    S = found.pattern[0]
    assert len(np.setdiff1d(S, kept[0][0])) > 0  # support columns the screening left out
    primal, gap = certificate_by_hand(D, y, found.w, found.alpha, reg)
    assert 0 <= gap <= 1e-11 * max(1.0, primal)
    assert primal == pytest.approx(cvxpy_objective(D, y, reg), rel=1e-5)


def test_screening_that_fails_resumes_the_full_problem(monkeypatch):
    D, y = binary_problem(200, 120, 1)
    reg = reg_max(D, y, "hinge") / 30
    kept = _screening_everywhere(monkeypatch, {2: (0.1, 0.1)})  # far too few columns and rows
    s = np.full(len(y), 1.0 / len(y))
    found = identify_ipm(DesignMatrix(D), y, s, reg, accept=1e-11)
    assert len(kept) == 1 and found.unscreened and found.ok
    primal, gap = certificate_by_hand(D, y, found.w, found.alpha, reg)
    assert 0 <= gap <= 1e-11 * max(1.0, primal)
    assert primal == pytest.approx(cvxpy_objective(D, y, reg), rel=1e-5)
