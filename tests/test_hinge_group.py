"""hinge_group: hinge + group L1 with several outputs by the interior point method and Newton's
method on the pattern, against CVXPY + Clarabel and a certificate written from its definition."""

from __future__ import annotations

import numpy as np
import pytest

from spikecvx.convex import hinge_group, hinge_programs

cp = pytest.importorskip("cvxpy")


def _problem(n, p, C, seed, density=0.4):
    """Random binary rows, one-vs-rest labels (+-1, n x C) from C sparse linear scores."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, p)) < density).astype(np.float64)
    score = X[:, : min(12, p)] @ rng.normal(size=(min(12, p), C)) + 0.3 * rng.normal(size=(n, C))
    Y = -np.ones((n, C))
    Y[np.arange(n), np.argmax(score, axis=1)] = 1.0
    return X, Y


def _reg_max(X, Y, s):
    return float(np.linalg.norm(X.T @ (Y * s[:, None]), axis=1).max())


def _by_hand(X, Y, s, W, alpha, reg):
    """(primal, primal - dual) from the definitions: U = -Y alpha s scaled into the group ball."""
    primal = np.sum(s[:, None] * np.maximum(0, 1 - Y * (X @ W))) + reg * np.sum(np.sqrt(np.sum(W**2, axis=1)))
    G = X.T @ (Y * alpha * s[:, None])
    scale = min(1.0, reg / np.max(np.sqrt(np.sum(G**2, axis=1))))
    return primal, primal - scale * np.sum(s[:, None] * alpha)


def _cvxpy(X, Y, s, reg):
    W = cp.Variable((X.shape[1], Y.shape[1]))
    hinge = cp.sum(cp.multiply(s[:, None], cp.pos(1 - cp.multiply(Y, X @ W))))
    prob = cp.Problem(cp.Minimize(hinge + reg * cp.sum(cp.norm(W, 2, axis=1))))
    prob.solve(solver=cp.CLARABEL)
    return prob.value


@pytest.mark.parametrize("n,p,C,seed,frac,weighted", [
    (60, 25, 3, 0, 10, False),
    (120, 40, 4, 1, 30, False),
    (80, 60, 3, 2, 5, True),
    (200, 30, 5, 3, 100, True),
    (40, 80, 3, 4, 20, False),  # more columns than rows
])
def test_certified_optimum_matches_cvxpy(n, p, C, seed, frac, weighted):
    X, Y = _problem(n, p, C, seed)
    rng = np.random.default_rng(seed + 10)
    s = rng.random(n) + 0.2 if weighted else np.ones(n)
    s /= s.sum()
    reg = _reg_max(X, Y, s) / frac
    found = hinge_group.solve_hinge_group(X, Y, s, reg)
    assert found is not None
    W, alpha = found
    assert W.shape == (p, C) and alpha.shape == (n, C)
    assert np.all((alpha >= 0) & (alpha <= 1))
    primal, gap = _by_hand(X, Y, s, W, alpha, reg)
    ref = _cvxpy(X, Y, s, reg)
    assert gap <= hinge_group.ACCEPT * max(1.0, primal)
    assert abs(gap / max(1.0, primal) - hinge_group.group_gap(X, Y, s, W, alpha, reg)) <= 1e-13
    # the certificate bounds the distance to the optimum, which CVXPY finds to its tolerance
    assert primal <= ref + 1e-7 and primal >= ref - 1e-7 * max(1.0, ref)
    assert np.any(W != 0)


def test_equal_columns_are_solved_as_one():
    X, Y = _problem(80, 20, 3, 5)
    Xd = np.concatenate([X, X[:, [3, 7]]], axis=1)  # columns 20, 21 repeat 3 and 7
    s = np.full(80, 1 / 80)
    reg = _reg_max(X, Y, s) / 15
    W, alpha = hinge_group.solve_hinge_group(X, Y, s, reg)
    Wd, alpha_d = hinge_group.solve_hinge_group(Xd, Y, s, reg)
    assert np.all(Wd[20:] == 0)
    np.testing.assert_allclose(Wd[:20], W, atol=1e-9)
    assert _by_hand(Xd, Y, s, Wd, alpha_d, reg)[1] <= 1e-11


def test_rows_of_zero_weight_are_left_out():
    X, Y = _problem(90, 20, 3, 6)
    s = np.full(90, 1 / 60)
    s[60:] = 0.0
    reg = _reg_max(X, Y, s) / 10
    W, alpha = hinge_group.solve_hinge_group(X, Y, s, reg)
    W60, _ = hinge_group.solve_hinge_group(X[:60], Y[:60], s[:60], reg)
    np.testing.assert_allclose(W, W60, atol=1e-9)
    assert np.all(alpha[60:] == 0)
    assert _by_hand(X, Y, s, W, alpha, reg)[1] <= 1e-11
    assert hinge_group.solve_hinge_group(X, Y, np.zeros(90), reg) is None


def test_columns_equal_on_the_weighted_rows_only_are_merged():
    X, Y = _problem(90, 20, 3, 14)
    X[:, 5] = X[:, 3]
    X[60:, 5] = 1.0 - X[60:, 3]  # differ only on rows of zero weight
    s = np.full(90, 1 / 60)
    s[60:] = 0.0
    reg = _reg_max(X, Y, s) / 10
    W, alpha = hinge_group.solve_hinge_group(X, Y, s, reg)
    assert np.all(W[5] == 0)
    assert _by_hand(X, Y, s, W, alpha, reg)[1] <= 1e-11


def test_screened_iterations_on_many_groups_certify_on_the_whole_problem(monkeypatch):
    X, Y = _problem(400, 240, 3, 10)
    s = np.full(400, 1 / 400)
    reg = _reg_max(X, Y, s) / 30
    kept = []
    screened = hinge_group._solve_screened
    monkeypatch.setattr(hinge_group, "_solve_screened",
                        lambda *args: kept.append(len(args[-1])) or screened(*args))
    W, alpha = hinge_group.solve_hinge_group(X, Y, s, reg)
    assert kept and 0 < kept[0] < 240
    primal, gap = _by_hand(X, Y, s, W, alpha, reg)
    assert gap <= 1e-11 * max(1.0, primal)


def test_at_reg_max_and_above_the_answer_is_zero():
    X, Y = _problem(300, 250, 3, 11)
    s = np.full(300, 1 / 300)
    top = _reg_max(X, Y, s)
    for reg in (top, 1.2 * top):
        W, alpha = hinge_group.solve_hinge_group(X, Y, s, reg)
        assert np.all(W == 0) and np.all(alpha == 1)
        assert _by_hand(X, Y, s, W, alpha, reg)[1] <= 1e-15


def test_above_reg_max_from_a_dense_warm_start_the_solve_converges_to_zero():
    from spikecvx.convex import reg_max, solve

    X, Y = _problem(300, 260, 3, 12)
    y = np.argmax(Y, axis=1)
    top = reg_max(X, y, "hinge_ovr", "group_l1")
    res = solve(X, y, "hinge_ovr", "group_l1", reg=1.2 * top, warm_start=np.ones((260, 3)))
    assert res.converged and np.abs(res.coef).max() <= 1e-9


def test_bad_input_is_refused_and_oversized_programs_are_left_to_clarabel(monkeypatch):
    X, Y = _problem(60, 20, 3, 13)
    s = np.full(60, 1 / 60)
    with pytest.raises(ValueError, match="reg"):
        hinge_group.solve_hinge_group(X, Y, s, 0.0)
    with pytest.raises(ValueError, match="s must"):
        hinge_group.solve_hinge_group(X, Y, -s, 0.1)
    with pytest.raises(ValueError, match="agree"):
        hinge_group.solve_hinge_group(X, Y[:50], s, 0.1)
    monkeypatch.setattr(hinge_group, "MAX_ENTRIES", 10)
    assert hinge_group.solve_hinge_group(X, Y, s, _reg_max(X, Y, s) / 10) is None


@pytest.mark.parametrize("seed", [8, 9])
def test_pairs_wrongly_on_the_margin_are_moved_off_it(seed):
    """The two pairs outside the margin nearest to it, classed on the margin: Newton's solution
    gives them a negative multiplier, the next round moves them back, and the result certifies."""
    X, Y = _problem(120, 30, 3, seed)
    s = np.full(120, 1 / 120)
    reg = _reg_max(X, Y, s) / 20
    it = min(hinge_group._iterates(X, Y, s, reg), key=lambda i: max(i["gap"], i["feas"]))
    assert max(it["gap"], it["feas"]) <= hinge_group.ATTEMPT_GAP
    L, O, M, A = hinge_group._pattern(it)
    near = np.unravel_index(np.argsort(np.where(O, it["sg"], np.inf), axis=None)[:2], O.shape)
    wrong = dict(it, sg=it["sg"].copy(), zsg=it["zsg"].copy())
    wrong["sg"][near], wrong["zsg"][near] = 1e-9, 1.0
    assert hinge_group._pattern(wrong)[2].sum() == M.sum() + 2
    rounds = []
    newton = hinge_group._newton
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hinge_group, "_newton", lambda *a: rounds.append(1) or newton(*a))
        found = hinge_group._solve_patterns(X, Y, s, reg, wrong)
    assert found is not None and len(rounds) >= 2
    primal, gap = _by_hand(X, Y, s, *found, reg)
    assert gap <= 1e-11 * max(1.0, primal)


def test_a_wrong_pattern_gives_none_or_a_certified_solution():
    """Pairs outside the margin classed on it, a few or many: each pattern is either repaired and
    certified or given up (None), never returned uncertified."""
    X, Y = _problem(120, 30, 3, 8)
    s = np.full(120, 1 / 120)
    reg = _reg_max(X, Y, s) / 20
    it = min(hinge_group._iterates(X, Y, s, reg), key=lambda i: max(i["gap"], i["feas"]))
    L, O, M, A = hinge_group._pattern(it)
    order = np.argsort(np.where(O, it["sg"], np.inf), axis=None)
    outcomes = []
    for extra in (1, 2, 4, 8, 16, 64):
        near = np.unravel_index(order[:extra], O.shape)
        wrong = dict(it, sg=it["sg"].copy(), zsg=it["zsg"].copy())
        wrong["sg"][near], wrong["zsg"][near] = 1e-9, 1.0
        found = hinge_group._solve_patterns(X, Y, s, reg, wrong)
        outcomes.append(found is not None)
        if found is not None:
            assert _by_hand(X, Y, s, *found, reg)[1] <= 1e-11
    assert outcomes[0] and not all(outcomes)  # the few are repaired, the many given up
    every = dict(it, xi=np.zeros_like(it["xi"]), sg=np.zeros_like(it["sg"]))
    assert hinge_group._pattern(every)[3].any()  # groups active, every pair on the margin
    assert hinge_group._solve_patterns(X, Y, s, reg, every) is None


def test_hinge_socp_falls_back_to_clarabel_with_the_same_optimum(monkeypatch):
    X, Y = _problem(200, 30, 3, 8)  # 18000 entries: hinge_group's size
    s = np.full(200, 1 / 200)
    reg = _reg_max(X, Y, s) / 10
    answered = []
    spy = hinge_programs.solve_hinge_group
    monkeypatch.setattr(hinge_programs, "solve_hinge_group",
                        lambda *a: answered.append(spy(*a)) or answered[-1])
    W1, a1 = hinge_programs.hinge_socp(X, Y, reg)
    assert answered and answered[0] is not None  # hinge_group answered, not Clarabel
    calls = []
    monkeypatch.setattr(hinge_programs, "solve_hinge_group", lambda *args: calls.append(1))  # returns None
    W2, a2 = hinge_programs.hinge_socp(X, Y, reg)
    assert calls
    p1, g1 = _by_hand(X, Y, s, W1, a1, reg)
    p2, g2 = _by_hand(X, Y, s, W2, a2, reg)
    assert g1 <= 1e-11 and g2 <= 1e-8
    assert abs(p1 - p2) <= 1e-8
    calls.clear()
    hinge_programs.hinge_socp(X[:40, :20], Y[:40], reg)  # 2400 entries: Clarabel directly
    assert not calls
