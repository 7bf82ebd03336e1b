"""The column-generation hinge + L1 solver: same optimum as the working-set solver and as CVXPY,
certificate recomputed independently, several outputs, sample multiplicities, path warm starts."""

import numpy as np
import pytest

from spikecvx.convex import reg_max, solve
from spikecvx.convex.hinge_fast import certificate, solve_hinge_l1

cp = pytest.importorskip("cvxpy")


def _binary(n, p, seed, C=1, density=0.4):
    rng = np.random.default_rng(seed)
    D = (rng.random((n, p)) < density).astype(np.uint8)
    score = D[:, : min(10, p)] @ rng.normal(size=(min(10, p), C)) + 0.5 * rng.normal(size=(n, C))
    if C == 1:
        return D, np.where(score[:, 0] > np.median(score[:, 0]), 1.0, -1.0)
    return D, np.argmax(score, axis=1)


def _independent_gap(D, Y, W, alpha, reg, weights):
    """primal - dual written out from the definitions, with no code from the package."""
    D = D.astype(np.float64)
    s = weights / weights.sum()
    primal = np.sum(s[:, None] * np.maximum(0, 1 - Y * (D @ W))) + reg * np.abs(W).sum()
    U = -Y * alpha * s[:, None]
    scale = min(1.0, reg / np.abs(D.T @ U).max())
    return primal, primal - scale * np.sum(s[:, None] * alpha)


def _cvxpy_hinge(D, Y, reg, weights):
    W = cp.Variable((D.shape[1], Y.shape[1]))
    s = weights / weights.sum()
    margins = cp.multiply(Y, D.astype(float) @ W)
    obj = cp.sum(cp.multiply(s[:, None], cp.pos(1 - margins))) + reg * cp.sum(cp.abs(W))
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver=cp.CLARABEL)
    return prob.value


@pytest.mark.parametrize("seed,frac", [(0, 5), (1, 30), (2, 300)])
def test_matches_working_set_solver_and_cvxpy(seed, frac):
    D, y = _binary(120, 60, seed)
    reg = reg_max(D, y, "hinge") / frac
    W, alpha, info = solve_hinge_l1(D, y, reg, tol=1e-9)
    ref = solve(D, y, "hinge", "l1", reg=reg, tol=1e-9)
    assert info["converged"]
    assert info["primal"] == pytest.approx(ref.primal, rel=1e-8)
    assert info["primal"] == pytest.approx(_cvxpy_hinge(D, y[:, None], reg, np.ones(len(y))), rel=1e-5)
    assert W.shape == (60, 1) and alpha.shape == (120, 1)
    assert np.all((alpha >= 0) & (alpha <= 1))
    primal, gap = _independent_gap(D, y[:, None], W, alpha, reg, np.ones(len(y)))
    assert primal == pytest.approx(info["primal"], rel=1e-12)
    assert 0 <= gap <= 1e-9 * max(1.0, primal) + 1e-15
    assert gap == pytest.approx(info["gap"], abs=1e-13)


def test_certificate_bounds_a_suboptimal_point():
    D, y = _binary(80, 30, 3)
    reg = reg_max(D, y, "hinge") / 20
    W, alpha, info = solve_hinge_l1(D, y, reg)
    worse = certificate(D, y, 1.1 * W, alpha, reg)
    assert worse["gap"] > 1e-6  # a certificate that could fail: the scaled W is not optimal
    assert worse["dual"] == pytest.approx(info["dual"], rel=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        certificate(D, y, W, alpha + 2.0, reg)


def test_one_vs_rest_outputs_match_hinge_ovr():
    D, labels = _binary(150, 40, 4, C=3)
    reg = reg_max(D, labels, "hinge_ovr") / 30
    Y = -np.ones((len(labels), 3))
    Y[np.arange(len(labels)), labels] = 1.0
    W, alpha, info = solve_hinge_l1(D, Y, reg, tol=1e-9)
    ref = solve(D, labels, "hinge_ovr", "l1", reg=reg, tol=1e-9)
    assert W.shape == (40, 3) and info["converged"]
    assert info["primal"] == pytest.approx(ref.primal, rel=1e-8)
    primal, gap = _independent_gap(D, Y, W, alpha, reg, np.ones(len(labels)))
    assert gap <= 1e-9 * max(1.0, primal)


def test_counts_equal_repeated_rows():
    D, y = _binary(60, 25, 5)
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 4, size=60)
    reg = reg_max(D, y, "hinge") / 15
    W, alpha, info = solve_hinge_l1(D, y, reg, counts=counts.astype(float), tol=1e-9)
    Dr, yr = np.repeat(D, counts, axis=0), np.repeat(y, counts)
    ref = solve(Dr, yr, "hinge", "l1", reg=reg, tol=1e-9)
    assert info["primal"] == pytest.approx(ref.primal, rel=1e-8)
    assert info["primal"] == pytest.approx(_cvxpy_hinge(D, y[:, None], reg, counts.astype(float)), rel=1e-5)
    _, gap = _independent_gap(D, y[:, None], W, alpha, reg, counts.astype(float))
    assert gap <= 1e-9 * max(1.0, info["primal"])


def test_path_with_kept_state_matches_cold_solves():
    D, y = _binary(200, 80, 6, density=0.3)
    top = reg_max(D, y, "hinge")
    state, W = None, None
    for reg in top * np.geomspace(1.0, 1e-3, 6):
        W, alpha, info = solve_hinge_l1(D, y, reg, tol=1e-9, warm_start=W, state=state)
        state = info["state"]
        _, _, cold = solve_hinge_l1(D, y, reg, tol=1e-9)
        assert info["converged"]
        assert info["primal"] == pytest.approx(cold["primal"], rel=1e-8)
        assert info["primal"] == pytest.approx(solve(D, y, "hinge", reg=reg, tol=1e-9).primal, rel=1e-8)
    assert state.lps[0].reg == pytest.approx(top * 1e-3)


def test_state_of_another_problem_is_not_reused():
    D, y = _binary(70, 20, 7)
    reg = reg_max(D, y, "hinge") / 10
    _, _, info = solve_hinge_l1(D, y, reg)
    _, _, other = solve_hinge_l1(D, -y, reg, state=info["state"])
    assert other["state"] is not info["state"]
    assert other["primal"] == pytest.approx(solve(D, -y, "hinge", reg=reg, tol=1e-9).primal, rel=1e-8)


def test_reg_above_reg_max_gives_zero():
    D, y = _binary(50, 15, 8)
    W, alpha, info = solve_hinge_l1(D, y, 1.01 * reg_max(D, y, "hinge"))
    assert not W.any() and np.all(alpha == 1.0) and info["gap"] == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("kwargs,match", [
    (dict(Y=np.zeros(30)), "Y"),
    (dict(Y=np.ones(29)), "Y"),
    (dict(reg=-1.0), "reg"),
    (dict(tol=0.0), "tol"),
    (dict(counts=-np.ones(30)), "counts"),
    (dict(counts=np.ones(3)), "counts"),
    (dict(warm_start=np.ones(3)), "warm_start"),
    (dict(warm_start=np.full(10, np.nan)), "warm_start"),
])
def test_bad_input(kwargs, match):
    D, y = _binary(30, 10, 9)
    args = dict(D=D, Y=y, reg=0.01) | kwargs
    with pytest.raises(ValueError, match=match):
        solve_hinge_l1(**args)


def test_sparse_and_float_input_match_dense():
    import scipy.sparse as sp

    D, y = _binary(90, 30, 10)
    reg = reg_max(D, y, "hinge") / 25
    _, _, dense = solve_hinge_l1(D, y, reg, tol=1e-9)
    _, _, sparse = solve_hinge_l1(sp.csr_matrix(D), y, reg, tol=1e-9)
    _, _, floats = solve_hinge_l1(D.astype(np.float64), y, reg, tol=1e-9)
    assert sparse["primal"] == pytest.approx(dense["primal"], rel=1e-10)
    assert floats["primal"] == pytest.approx(dense["primal"], rel=1e-10)


def test_too_few_rounds_is_reported_not_hidden():
    D, y = _binary(150, 80, 11)
    reg = reg_max(D, y, "hinge") / 100
    _, _, info = solve_hinge_l1(D, y, reg, max_rounds=1, max_add=1)
    assert not info["converged"] and info["rel_gap"] > 1e-6
    with pytest.raises(TypeError, match="state"):
        solve_hinge_l1(D, y, reg, state={})


def test_cold_start_on_most_columns_identifies_the_vertex_and_matches():
    D, y = _binary(150, 600, 12, density=0.3)
    g = np.sort(np.abs(D.T.astype(float) @ y) / len(y))[::-1]
    reg = 0.999 * g[510]  # at least 511 columns violate their dual constraint at W = 0
    assert reg > 0
    W, alpha, info = solve_hinge_l1(D, y, reg, tol=1e-9)
    assert info["state"].log[-1][0] == "vertex" and info["pivots"] == 0  # no simplex pivot
    assert info["working_set"][0] == np.count_nonzero(W)  # the LP holds the vertex's basis
    assert info["primal"] == pytest.approx(solve(D, y, "hinge", reg=reg, tol=1e-9).primal, rel=1e-8)
    _, gap = _independent_gap(D, y[:, None], W, alpha, reg, np.ones(len(y)))
    assert gap <= 1e-9 * max(1.0, info["primal"])


def test_columns_stored_complemented_give_the_same_optimum():
    # dense columns (most entries equal to a non-zero value) are written v - (v - x) in the LP
    rng = np.random.default_rng(13)
    D, y = _binary(140, 40, 13, density=0.8)
    D = D * rng.choice([1, 3], size=40)  # binary columns with different "on" values
    D[:, :5] = rng.choice([0.0, 2.0, 2.5], size=(140, 5), p=[0.1, 0.7, 0.2])  # three values
    for frac in (5, 50):
        reg = reg_max(D, y, "hinge") / frac
        W, alpha, info = solve_hinge_l1(D, y, reg, tol=1e-9)
        assert info["primal"] == pytest.approx(solve(D, y, "hinge", reg=reg, tol=1e-9).primal, rel=1e-8)
        assert info["primal"] == pytest.approx(_cvxpy_hinge(D, y[:, None], reg, np.ones(len(y))), rel=1e-5)
        _, gap = _independent_gap(D, y[:, None], W, alpha, reg, np.ones(len(y)))
        assert gap <= 1e-9 * max(1.0, info["primal"])


def test_complex_or_string_labels_are_refused():
    D, y = _binary(30, 10, 9)
    with pytest.raises(TypeError, match="Y"):
        solve_hinge_l1(D, y.astype(complex), 0.01)
    with pytest.raises((TypeError, ValueError), match="counts"):
        solve_hinge_l1(D, y, 0.01, counts=np.array(["a"] * 30))


def test_polish_moves_a_perturbed_solution_back_onto_the_vertex():
    from spikecvx.convex.hinge_fast import _polish
    from spikecvx.convex.matrix import DesignMatrix

    D, y = _binary(100, 30, 14)
    reg = reg_max(D, y, "hinge") / 30
    W, alpha, info = solve_hinge_l1(D, y, reg, tol=1e-9)
    w = W[:, 0]
    s = np.full(100, 0.01)
    support = np.flatnonzero(w)
    noisy = w.copy()
    noisy[support] *= 1 + 1e-6 * np.random.default_rng(0).standard_normal(len(support))
    top = float(np.abs(D.T @ (y * alpha[:, 0] * s)).max())
    fixed = _polish(DesignMatrix(D), y, s, alpha[:, 0], noisy, reg, top)
    value = lambda v: certificate(D, y, v, alpha, reg)["primal"]  # noqa: E731
    assert value(noisy) - info["primal"] > 1e-9  # the perturbation is visible
    assert value(fixed) - info["primal"] < 1e-12
