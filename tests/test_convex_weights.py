"""Sample weights, merged repeated rows, the hinge LP along a path, and early stopping of a path."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from test_convex import _penalty_value, _problem

from spikecvx.convex import LOSSES, ElasticNet, path, reg_grid, reg_max, solve
from spikecvx.convex import solver as solver_module
from spikecvx.convex import weights as weights_module

cp = pytest.importorskip("cvxpy")

PAIRS = [(loss, pen) for loss in LOSSES for pen in ("l1", "group_l1")] + [
    ("squared", "elastic_net"), ("logistic", ElasticNet(0.3)), ("softmax", "elastic_net")]


def _encode(y, loss, n):
    if loss in ("hinge", "logistic"):
        return y[:, None].astype(float)
    if loss == "squared":
        return y.reshape(n, -1).astype(float)
    classes = np.unique(y)
    Y = (y[:, None] == classes[None]).astype(float)
    return 2 * Y - 1 if loss == "hinge_ovr" else Y


def _weighted_objective(D, y, loss, pen, reg, coef, w):
    """sum_i w_i loss_i / sum_i w_i + reg * penalty, written out with numpy only."""
    n = D.shape[0]
    W = coef.reshape(D.shape[1], -1)
    Z = np.asarray(D, dtype=float) @ W
    Y = _encode(y, loss, n)
    if loss == "squared":
        per = 0.5 * ((Z - Y) ** 2).sum(1)
    elif loss in ("hinge", "hinge_ovr"):
        per = np.maximum(0, 1 - Y * Z).sum(1)
    elif loss == "logistic":
        per = np.logaddexp(0, -Y * Z).sum(1)
    else:
        zmax = Z.max(1, keepdims=True)
        per = np.log(np.exp(Z - zmax).sum(1)) + zmax[:, 0] - (Z * Y).sum(1)
    pen_name = pen if isinstance(pen, str) else pen.name
    pen_arg = (pen_name, {"l1_ratio": 0.5 if isinstance(pen, str) else pen.l1_ratio})
    pen_arg = pen_arg if pen_name == "elastic_net" else pen_name
    return float(w @ per) / w.sum() + reg * _penalty_value(W, pen_arg)


def _cvxpy_weighted(D, y, loss, pen, reg, w):
    """The weighted objective in CVXPY, solved by Clarabel: an independent reference."""
    n, p = D.shape
    Y = _encode(y, loss, n)
    s = w / w.sum()
    W = cp.Variable((p, Y.shape[1]))
    Z = D.astype(float) @ W
    if loss == "squared":
        per = 0.5 * cp.sum(cp.square(Z - Y), axis=1)
    elif loss in ("hinge", "hinge_ovr"):
        per = cp.sum(cp.pos(1 - cp.multiply(Y, Z)), axis=1)
    elif loss == "logistic":
        per = cp.sum(cp.logistic(-cp.multiply(Y, Z)), axis=1)
    else:
        per = cp.log_sum_exp(Z, axis=1) - cp.sum(cp.multiply(Y, Z), axis=1)
    name = pen if isinstance(pen, str) else pen.name
    if name == "l1":
        penalty = cp.sum(cp.abs(W))
    elif name == "group_l1":
        penalty = cp.sum(cp.norm(W, 2, axis=1))
    else:
        a = 0.5 if isinstance(pen, str) else pen.l1_ratio
        penalty = a * cp.sum(cp.abs(W)) + 0.5 * (1 - a) * cp.sum_squares(W)
    prob = cp.Problem(cp.Minimize(s @ per + reg * penalty))
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return prob.value


def _weights(n, seed=0, zeros=3):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.2, 3.0, size=n)
    w[rng.choice(n, size=zeros, replace=False)] = 0.0
    return w


@pytest.mark.parametrize("loss,pen", PAIRS)
def test_weighted_solve_matches_cvxpy_and_its_gap_bounds_suboptimality(loss, pen):
    D, y = _problem(loss, n=40, p=15, seed=3)
    w = _weights(len(y), seed=4)
    reg = reg_max(D, y, loss, pen, sample_weight=w) / 8
    res = solve(D, y, loss, pen, reg=reg, tol=1e-8, sample_weight=w)
    assert res.converged and res.rel_gap <= 1e-8
    ours = _weighted_objective(D, y, loss, pen, reg, res.coef, w)
    # the certificate is the weighted problem's
    assert res.primal == pytest.approx(ours, rel=1e-10, abs=1e-13)
    ref = _cvxpy_weighted(D, y, loss, pen, reg, w)
    assert abs(ours - ref) <= 1e-6 * max(1.0, abs(ref))
    assert res.dual <= ref + 1e-7  # weak duality against the reference optimum
    assert ours - ref <= res.gap + 1e-7
    assert res.dual_point.shape[0] == len(y)
    assert np.all(res.dual_point[w == 0] == 0)
    # unweighted is a different problem: the weights matter
    plain = solve(D, y, loss, pen, reg=reg, tol=1e-8)
    assert abs(plain.primal - res.primal) > 1e-6


@pytest.mark.parametrize("loss,pen", PAIRS)
def test_integer_weights_equal_repeated_rows(monkeypatch, loss, pen):
    D, y = _problem(loss, n=30, p=12, seed=5)
    w = np.random.default_rng(6).integers(0, 4, size=len(y))
    w[0] = 2
    reg = reg_max(D, y, loss, pen, sample_weight=w) / 6
    rep = np.repeat(np.arange(len(y)), w)
    D_rep, y_rep = D[rep], y[rep]
    assert reg == pytest.approx(reg_max(D_rep, y_rep, loss, pen) / 6, rel=1e-12)
    weighted = solve(D, y, loss, pen, reg=reg, tol=1e-8, sample_weight=w)
    monkeypatch.setattr(weights_module, "MERGE_RATIO", 0.0)  # the repeated rows stay rows
    repeated = solve(D_rep, y_rep, loss, pen, reg=reg, tol=1e-8)
    assert weighted.converged and repeated.converged
    assert weighted.primal == pytest.approx(repeated.primal, rel=2e-8, abs=1e-12)
    # each certificate is a valid bound for the other's problem, which is the same problem
    assert weighted.dual <= repeated.primal + 1e-12 and repeated.dual <= weighted.primal + 1e-12


def test_zero_weights_equal_dropped_rows():
    D, y = _problem("logistic", n=40, p=15, seed=8)
    w = np.ones(len(y))
    w[:7] = 0
    reg = reg_max(D, y, "logistic", sample_weight=w) / 5
    a = solve(D, y, "logistic", reg=reg, tol=1e-10, sample_weight=w)
    b = solve(D[7:], y[7:], "logistic", reg=reg, tol=1e-10)
    assert a.primal == pytest.approx(b.primal, rel=1e-9)
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-5)
    assert a.dual_point.shape == (40, 1) and np.all(a.dual_point[:7] == 0)


@pytest.mark.parametrize("loss,pen", PAIRS)
def test_weighted_reg_max_is_exact(loss, pen):
    D, y = _problem(loss, n=40, p=15, seed=9)
    w = _weights(len(y), seed=10)
    top = reg_max(D, y, loss, pen, sample_weight=w)
    assert top != pytest.approx(reg_max(D, y, loss, pen), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        at = solve(D, y, loss, pen, reg=top * (1 + 1e-9), tol=1e-10, sample_weight=w)
        below = solve(D, y, loss, pen, reg=top * 0.95, tol=1e-10, sample_weight=w)
    assert np.all(at.coef == 0)
    assert np.any(below.coef != 0)


BAD_WEIGHTS = [
    (lambda n: -np.ones(n), ValueError, "non-negative"),
    (lambda n: np.r_[np.nan, np.ones(n - 1)], ValueError, "NaN or inf"),
    (lambda n: np.r_[np.inf, np.ones(n - 1)], ValueError, "NaN or inf"),
    (lambda n: np.zeros(n), ValueError, "all zero"),
    (lambda n: np.ones(n - 1), ValueError, "shape"),
    (lambda n: np.ones((n, 1)), ValueError, "shape"),
    (lambda n: 1.0, TypeError, "array"),
    (lambda n: "ones", TypeError, "array"),
    (lambda n: np.array(["a"] * n), TypeError, "real numbers"),
    (lambda n: np.ones(n, dtype=complex), TypeError, "real numbers"),
    (lambda n: np.full(n, 1e308), ValueError, "too large"),
]


@pytest.mark.parametrize("make,err,match", BAD_WEIGHTS)
def test_bad_weights_name_sample_weight(make, err, match):
    D, y = _problem("hinge", n=20, p=6, seed=1)
    w = make(len(y))
    calls = [lambda: solve(D, y, "hinge", sample_weight=w), lambda: reg_max(D, y, "hinge", sample_weight=w),
             lambda: reg_grid(D, y, "hinge", sample_weight=w), lambda: path(D, y, "hinge", sample_weight=w)]
    for call in calls:
        with pytest.raises(err, match="sample_weight") as info:
            call()
        assert match in str(info.value)


@pytest.mark.parametrize("loss,pen", PAIRS)
def test_repeated_rows_are_merged_for_every_loss_with_the_unmerged_certificate(monkeypatch, loss, pen):
    D, y = _problem(loss, n=30, p=12, seed=7)
    pick = np.random.default_rng(1).integers(0, 30, size=150)  # 150 samples, at most 30 distinct
    D, y = D[pick], y[pick]
    seen = []
    real = solver_module.solve_problem

    def recording(problem, *args, **kw):
        seen.append(problem.Mr.n)
        return real(problem, *args, **kw)

    monkeypatch.setattr(solver_module, "solve_problem", recording)
    reg = reg_max(D, y, loss, pen) / 10
    merged = solve(D, y, loss, pen, reg=reg, tol=1e-8)
    monkeypatch.setattr(weights_module, "MERGE_RATIO", 0.0)
    unmerged = solve(D, y, loss, pen, reg=reg, tol=1e-8)
    assert seen[0] <= 30 and seen[1] == 150  # the merged solve saw the distinct samples only
    for res in (merged, unmerged):
        assert res.converged
        assert res.primal == pytest.approx(_weighted_objective(D, y, loss, pen, reg, res.coef, np.ones(150)),
                                           rel=1e-11, abs=1e-13)
        assert res.dual_point.shape[0] == 150  # a dual point of the problem as given
    assert merged.primal == pytest.approx(unmerged.primal, rel=1e-8, abs=1e-12)
    assert merged.dual <= unmerged.primal + 1e-12 and unmerged.dual <= merged.primal + 1e-12


def test_merging_needs_identical_rows_and_labels_and_pays():
    rng = np.random.default_rng(0)
    D = (rng.random((200, 5)) < 0.5).astype(np.uint8)  # at most 64 distinct (row, label) pairs
    y = np.where(rng.random(200) < 0.5, 1.0, -1.0)
    from spikecvx.convex.matrix import DesignMatrix

    M = DesignMatrix(D)
    red = weights_module.reduce_rows(M, y[:, None], None)
    assert red is not None and red.merged
    keys = {(D[i].tobytes(), y[i]) for i in range(200)}
    assert len(red.rows) == len(keys)
    for i in range(200):  # every row sits with its own (row, label) pair
        r = red.rows[red.inverse[i]]
        assert np.array_equal(D[r], D[i]) and y[r] == y[i]
    np.testing.assert_allclose(np.bincount(red.inverse, minlength=len(red.rows)) / 200, red.weights)
    distinct = rng.normal(size=(200, 5))  # nothing repeats: used as it is
    assert weights_module.reduce_rows(DesignMatrix(distinct), y[:, None], None) is None
    sparse = weights_module.reduce_rows(DesignMatrix(sp.csr_matrix(D)), y[:, None], None)
    np.testing.assert_array_equal(sparse.inverse, red.inverse)


def test_a_hash_collision_falls_back_to_exact_grouping(monkeypatch):
    from spikecvx.convex.matrix import DesignMatrix

    rng = np.random.default_rng(2)
    D = (rng.random((100, 6)) < 0.5).astype(np.uint8)
    monkeypatch.setattr(weights_module, "_HASH_RANGE", 2)  # every hash vector is all ones: row sums collide
    red = weights_module.reduce_rows(DesignMatrix(D), np.ones((100, 1)), None)
    for i in range(100):
        assert np.array_equal(D[red.rows[red.inverse[i]]], D[i])
    assert len(red.rows) == len(np.unique(D, axis=0))


def test_path_reuses_the_hinge_lps(monkeypatch):
    from spikecvx.convex import hinge_fast

    D, y = _problem("hinge", n=80, p=40, seed=12)
    states = []
    real = hinge_fast.solve_hinge_l1

    def recording(*args, state=None, **kw):
        states.append(state)
        return real(*args, state=state, **kw)

    monkeypatch.setattr(solver_module, "solve_hinge_l1", recording)
    results = path(D, y, "hinge", n_regs=4, min_ratio=0.01, tol=1e-9)
    assert states[0] is None and all(s is states[1] for s in states[1:])
    for res in results:
        cold = solve(D, y, "hinge", reg=res.reg, tol=1e-9)
        assert res.converged and res.primal == pytest.approx(cold.primal, rel=1e-8, abs=1e-12)


def test_weighted_path_matches_weighted_solves():
    D, y = _problem("softmax", n=40, p=15, seed=13)
    w = _weights(len(y), seed=14)
    regs = reg_grid(D, y, "softmax", sample_weight=w, n_regs=3, min_ratio=0.05)
    assert regs[0] == pytest.approx(reg_max(D, y, "softmax", sample_weight=w))
    results = path(D, y, "softmax", regs=regs, tol=1e-7, sample_weight=w)
    for res in results:
        alone = solve(D, y, "softmax", reg=res.reg, tol=1e-7, sample_weight=w)
        assert res.converged and alone.converged
        assert res.primal == pytest.approx(alone.primal, rel=1e-8)


def test_path_stops_when_the_validation_score_stops_improving():
    D, y = _problem("logistic", n=60, p=20, seed=15)
    scores = iter([0.5, 0.7, 0.6, 0.7, 0.9, 0.95, 0.99, 1.0])
    seen = []

    def score(res, D_val, y_val):
        seen.append(res.reg)
        return next(scores)

    results = path(D, y, "logistic", n_regs=8, D_val=D, y_val=y, patience=2, score=score)
    assert len(results) == 4  # best 0.7 at the 2nd value; 0.6 and 0.7 are not improvements
    assert seen == [r.reg for r in results]
    full = path(D, y, "logistic", n_regs=8)
    assert [r.reg for r in results] == [r.reg for r in full[:4]]
    # the default score (accuracy) stops no later than the end, and patience >= len(regs) never stops
    assert len(path(D, y, "logistic", n_regs=8, D_val=D, y_val=y, patience=8)) == 8


def test_values_that_tie_the_first_score_do_not_count_toward_patience():
    """At the reg_max end the model can predict one class for several values (an exact, sparse
    optimum with ties): the path goes on until some value scores above the first, then counts."""
    D, y = _problem("logistic", n=60, p=20, seed=15)
    scores = iter([0.1, 0.1, 0.1, 0.1, 0.6, 0.5, 0.5, 0.9])

    def score(res, D_val, y_val):
        return next(scores)

    results = path(D, y, "logistic", n_regs=8, D_val=D, y_val=y, patience=2, score=score)
    assert len(results) == 7  # best 0.6 at the 5th value, then two values without improvement
    never = iter([0.3] * 8)
    assert len(path(D, y, "logistic", n_regs=8, D_val=D, y_val=y, patience=2,
                    score=lambda res, D_val, y_val: next(never))) == 8


@pytest.mark.parametrize("kw,err,name", [
    (dict(patience=2), ValueError, "D_val"),
    (dict(D_val=np.zeros((3, 20))), ValueError, "patience"),
    (dict(patience=0, D_val=1, y_val=1), ValueError, "patience"),
    (dict(patience=1.5, D_val=1, y_val=1), TypeError, "patience"),
    (dict(patience=1, D_val=1, y_val=1, score="accuracy"), TypeError, "score"),
])
def test_early_stopping_arguments_are_checked(kw, err, name):
    D, y = _problem("logistic", n=30, p=8, seed=16)
    with pytest.raises(err, match=name):
        path(D, y, "logistic", **kw)
