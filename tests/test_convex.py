import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from spikecvx.convex import LOSSES, reg_max, solve

cp = pytest.importorskip("cvxpy")

PAIRS = [(loss, pen) for loss in LOSSES for pen in ("l1", "group_l1")]


def _problem(loss, n=40, p=15, C=3, seed=0):
    rng = np.random.default_rng(seed)
    D = (rng.random((n, p)) < 0.45).astype(np.uint8)
    score = D @ rng.normal(size=p)
    if loss == "squared":
        y = np.stack([score, -score, rng.normal(size=n)], 1) + 0.3 * rng.normal(size=(n, 3))
    elif loss in ("hinge", "logistic"):
        y = np.where(score + 0.5 * rng.normal(size=n) > np.median(score), 1.0, -1.0)
    else:
        y = np.digitize(score + 0.5 * rng.normal(size=n), np.quantile(score, [1 / 3, 2 / 3]))
    return D, y


def _cvxpy_objective(D, y, loss, pen, reg):
    """Independent reference: the same objective written in CVXPY, solved by Clarabel."""
    n, p = D.shape
    Df = D.astype(float)
    if loss in ("hinge", "logistic"):
        Y = y[:, None]
    elif loss == "squared":
        Y = y if y.ndim == 2 else y[:, None]
    else:
        classes = np.unique(y)
        Y = (y[:, None] == classes[None]).astype(float)
        if loss == "hinge_ovr":
            Y = 2 * Y - 1
    C = Y.shape[1]
    W = cp.Variable((p, C))
    Z = Df @ W
    if loss == "squared":
        fit = cp.sum_squares(Z - Y) / (2 * n)
    elif loss in ("hinge", "hinge_ovr"):
        fit = cp.sum(cp.pos(1 - cp.multiply(Y, Z))) / n
    elif loss == "logistic":
        fit = cp.sum(cp.logistic(-cp.multiply(Y, Z))) / n
    else:
        fit = (cp.sum(cp.log_sum_exp(Z, axis=1)) - cp.sum(cp.multiply(Y, Z))) / n
    penalty = _cvxpy_penalty(W, pen)
    prob = cp.Problem(cp.Minimize(fit + reg * penalty))
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return prob.value


def _objective(D, y, loss, pen, reg, coef):
    """Our objective evaluated independently of the solver (numpy only)."""
    n = D.shape[0]
    W = coef.reshape(D.shape[1], -1)
    Z = D.astype(float) @ W
    if loss == "squared":
        Y = y.reshape(n, -1)
        f = 0.5 * np.sum((Z - Y) ** 2) / n
    elif loss == "hinge":
        f = np.maximum(0, 1 - y[:, None] * Z).sum() / n
    elif loss == "logistic":
        f = np.logaddexp(0, -y[:, None] * Z).sum() / n
    else:
        classes = np.unique(y)
        Y = (y[:, None] == classes[None]).astype(float)
        if loss == "hinge_ovr":
            f = np.maximum(0, 1 - (2 * Y - 1) * Z).sum() / n
        else:
            zmax = Z.max(1, keepdims=True)
            f = (np.log(np.exp(Z - zmax).sum(1)) + zmax[:, 0] - (Z * Y).sum(1)).sum() / n
    return f + reg * _penalty_value(W, pen)


def _l1_ratio(pen):
    from spikecvx.convex import PENALTIES

    if isinstance(pen, tuple):  # (name, params) as a SolveResult records it
        return pen[1]["l1_ratio"]
    return (PENALTIES[pen] if isinstance(pen, str) else pen).l1_ratio


def _penalty_value(W, pen):
    """The penalty written out independently of spikecvx.convex.penalties."""
    name = pen if isinstance(pen, str) else pen[0] if isinstance(pen, tuple) else pen.name
    if name == "l1":
        return np.abs(W).sum()
    if name == "group_l1":
        return np.linalg.norm(W, axis=1).sum()
    a = _l1_ratio(pen)
    return a * np.abs(W).sum() + 0.5 * (1 - a) * np.sum(W ** 2)


def _cvxpy_penalty(W, pen):
    name = pen if isinstance(pen, str) else pen.name
    if name == "l1":
        return cp.sum(cp.abs(W))
    if name == "group_l1":
        return cp.sum(cp.norm(W, 2, axis=1))
    a = _l1_ratio(pen)
    return a * cp.sum(cp.abs(W)) + 0.5 * (1 - a) * cp.sum_squares(W)


@pytest.mark.parametrize("loss,pen", PAIRS)
def test_matches_cvxpy_and_gap_bounds_suboptimality(loss, pen):
    D, y = _problem(loss)
    reg = reg_max(D, y, loss, pen) / 8
    res = solve(D, y, loss, pen, reg=reg, tol=1e-8)
    assert res.converged and res.gap >= -1e-12 and res.rel_gap <= 1e-8
    ref = _cvxpy_objective(D, y, loss, pen, reg)
    ours = _objective(D, y, loss, pen, reg, res.coef)
    assert ours == pytest.approx(res.primal, rel=1e-10)
    assert abs(ours - ref) <= 1e-6 * max(1.0, abs(ref))
    assert res.dual <= ref + 1e-7  # weak duality against the reference optimum
    assert ours - ref <= res.gap + 1e-7  # the gap bounds the true suboptimality
    assert res.n_nonzero_rows > 0


@pytest.mark.parametrize("method", ["simplex", "ipm"])
@pytest.mark.parametrize("loss", ["hinge", "hinge_ovr"])
def test_both_hinge_lp_algorithms_reach_the_reference_optimum(monkeypatch, method, loss):
    from spikecvx.convex import hinge_fast

    D, y = _problem(loss, n=80, p=30, seed=11)
    reg = reg_max(D, y, loss, "l1") / 10
    # a cold start with most columns violated takes the interior point method; small problems do not
    monkeypatch.setattr(hinge_fast, "_IPM_MIN_COLUMNS", 0 if method == "ipm" else 10**9)
    monkeypatch.setattr(hinge_fast, "VERTEX_MAX_ENTRIES", 0)  # HiGHS alone, not the identified vertex
    used = []
    run = hinge_fast._DualLP.run
    monkeypatch.setattr(hinge_fast._DualLP, "run", lambda self, m="simplex": used.append(m) or run(self, m))
    res = solve(D, y, loss, "l1", reg=reg, tol=1e-9)
    assert used[0] == method
    ref = _cvxpy_objective(D, y, loss, "l1", reg)
    assert res.converged and res.rel_gap <= 1e-9
    assert abs(_objective(D, y, loss, "l1", reg, res.coef) - ref) <= 1e-6 * max(1.0, abs(ref))
    assert res.dual <= ref + 1e-7


def test_hinge_socp_merges_repeated_samples_without_changing_the_optimum(monkeypatch):
    from spikecvx.convex import hinge_programs as solver
    from spikecvx.convex import weights

    loss, pen = "hinge_ovr", "group_l1"
    monkeypatch.setattr(weights, "MERGE_RATIO", 0.0)  # the program itself merges the repeated rows
    D, y = _problem(loss, n=30, p=12, seed=7)
    pick = np.random.default_rng(1).integers(0, 30, size=150)  # 150 samples, at most 30 distinct
    D, y = D[pick], y[pick]
    seen = []
    distinct = solver.distinct_rows

    def recording(X, Y):
        out = distinct(X, Y)
        seen.append(len(out[0]))
        return out

    monkeypatch.setattr(solver, "distinct_rows", recording)
    reg = reg_max(D, y, loss, pen) / 10
    res = solve(D, y, loss, pen, reg=reg, tol=1e-9)
    ref = _cvxpy_objective(D, y, loss, pen, reg)
    assert res.converged and res.rel_gap <= 1e-9
    assert abs(_objective(D, y, loss, pen, reg, res.coef) - ref) <= 1e-6 * max(1.0, abs(ref))
    assert res.dual <= ref + 1e-7
    assert seen and max(seen) <= 30  # the program saw the distinct samples only


@pytest.mark.parametrize("loss,pen", PAIRS)
def test_reg_max_gives_zero_and_below_does_not(loss, pen):
    D, y = _problem(loss, seed=1)
    rmax = reg_max(D, y, loss, pen)
    res = solve(D, y, loss, pen, reg=rmax * 1.0001)
    assert res.converged and np.all(res.coef == 0)
    res = solve(D, y, loss, pen, reg=rmax * 0.9)
    assert np.any(res.coef != 0)


def test_squared_l1_matches_scikit_learn_lasso():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(3)
    D = (rng.random((200, 80)) < 0.3).astype(np.uint8)
    y = D @ (rng.normal(size=80) * (rng.random(80) < 0.2)) + 0.1 * rng.normal(size=200)
    reg = reg_max(D, y) / 10
    res = solve(D, y, "squared", "l1", reg=reg, tol=1e-10)
    ref = sklearn.Lasso(alpha=reg, fit_intercept=False, tol=1e-12, max_iter=200000).fit(D.astype(float), y)
    assert np.allclose(res.coef, ref.coef_, atol=1e-6)
    Y = np.stack([y, -2 * y + rng.normal(size=200)], 1)
    res = solve(D, Y, "squared", "group_l1", reg=reg)
    ref = sklearn.MultiTaskLasso(alpha=reg, fit_intercept=False, tol=1e-12, max_iter=200000).fit(
        D.astype(float), Y)
    assert np.allclose(res.coef, ref.coef_.T, atol=1e-5)


@pytest.mark.parametrize("loss", ["squared", "logistic", "softmax"])
def test_kkt_conditions(loss):
    D, y = _problem(loss, n=60, p=20, seed=4)
    reg = reg_max(D, y, loss, "l1") / 10
    res = solve(D, y, loss, "l1", reg=reg, tol=1e-10)
    W = res.coef.reshape(20, -1)
    from spikecvx.convex.datafits import DATAFITS
    fit = DATAFITS[loss]
    Y, _ = fit.encode(y)
    grad = D.T.astype(float) @ fit.dual_direction(D @ W, Y)
    nz = W != 0
    assert np.allclose(grad[nz], -reg * np.sign(W[nz]), atol=1e-6)
    assert np.all(np.abs(grad[~nz]) <= reg + 1e-6)


def test_dense_sparse_float32_float64_agree_and_warm_start():
    D, y = _problem("logistic", n=80, p=30, seed=5)
    reg = reg_max(D, y, "logistic") / 6
    ref = solve(D, y, "logistic", reg=reg, tol=1e-10)
    for Dv in (D.astype(np.float64), D.astype(np.float32), sp.csr_matrix(D), D.astype(bool)):
        res = solve(Dv, y, "logistic", reg=reg, tol=1e-10)
        assert np.allclose(res.coef, ref.coef, atol=1e-6)
    warm = solve(D, y, "logistic", reg=reg * 0.9, tol=1e-9, warm_start=ref.coef)
    cold = solve(D, y, "logistic", reg=reg * 0.9, tol=1e-9)
    assert np.allclose(warm.coef, cold.coef, atol=1e-6)


def test_real_valued_design_matrix():
    rng = np.random.default_rng(6)
    D = rng.normal(size=(50, 12))
    y = D @ rng.normal(size=12)
    res = solve(D, y, reg=0.01, tol=1e-10)
    assert res.converged and res.rel_gap <= 1e-10


def test_non_convergence_warns():
    D, y = _problem("softmax", n=60, p=20)
    with pytest.warns(RuntimeWarning, match="did not reach"):
        res = solve(D, y, "softmax", reg=1e-4, tol=1e-14, max_iter=1)
    assert not res.converged and res.gap > 0


def test_bad_input():
    D, y = _problem("squared")
    yb = np.sign(y[:, 0])
    with pytest.raises(ValueError, match="reg"):
        solve(D, y, reg=0)
    with pytest.raises(ValueError, match="reg"):
        solve(D, y, reg=-1)
    with pytest.raises(ValueError, match="tol"):
        solve(D, y, reg=0.1, tol=0)
    with pytest.raises(ValueError, match="loss"):
        solve(D, y, loss="huber")
    with pytest.raises(ValueError, match="penalty"):
        solve(D, y, penalty="l2")
    with pytest.raises(ValueError, match="samples"):
        solve(D[:-1], y)
    with pytest.raises(ValueError, match="empty"):
        solve(np.zeros((0, 3)), np.zeros(0))
    Dn = D.astype(float)
    Dn[0, 0] = np.nan
    with pytest.raises(ValueError, match="D contains NaN"):
        solve(Dn, y)
    with pytest.raises(ValueError, match="y contains NaN"):
        solve(D, np.full(len(y), np.inf))
    with pytest.raises(ValueError, match=r"\{-1, \+1\}"):
        solve(D, (yb > 0).astype(float), loss="hinge")
    with pytest.raises(ValueError, match="single class"):
        solve(D, np.ones(len(y)), loss="logistic")
    with pytest.raises(ValueError, match="single class"):
        solve(D, np.zeros(len(y), dtype=int), loss="softmax")
    with pytest.raises(ValueError, match="integer"):
        solve(D, y[:, 0], loss="softmax")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="warm_start"):
            solve(D, y, reg=0.1, warm_start=np.zeros(3))


def test_path_warm_starts_and_selection():
    from spikecvx.convex import path, predict, reg_grid, select
    D, y = _problem("hinge", n=120, p=25, seed=7)
    regs = reg_grid(D, y, "hinge", n_regs=6, min_ratio=1e-2)
    assert regs[0] == pytest.approx(reg_max(D, y, "hinge")) and np.all(np.diff(regs) < 0)
    results = path(D, y, "hinge", regs=regs)
    assert all(r.converged for r in results)
    assert np.all(results[0].coef == 0)
    nnz = [r.n_nonzero_rows for r in results]
    assert nnz[-1] > nnz[0]
    for r, reg in zip(results, regs):  # each point is the optimum at its own reg
        assert r.primal == pytest.approx(solve(D, y, "hinge", reg=reg).primal, rel=1e-6)
    best, scores = select(results, D, y)
    assert scores[next(i for i, r in enumerate(results) if r is best)] == max(scores)
    assert np.mean(predict(best, D) == y) == max(scores)


@pytest.mark.parametrize("coupled", [False, True])
def test_dense_newton_step_matches_the_hessian_written_out(coupled):
    from spikecvx.convex.prox_newton import dense_newton_step as _dense_newton_step

    rng = np.random.default_rng(4)
    n, p, C = 60, 9, 4
    X = np.asfortranarray((rng.random((n, p)) < 0.5).astype(float))
    H = rng.dirichlet(np.ones(C), size=n) if coupled else rng.random((n, C)) + 0.1
    rows, cls = np.nonzero(rng.random((p, C)) < 0.4)  # support entries, row-major as np.nonzero gives
    grad = rng.normal(size=len(rows))
    # reference: hess[(j,c),(k,d)] = (1/n) sum_i x_ij x_ik (delta_cd H_ic - [coupled] H_ic H_id)
    A = X[:, rows]
    hess = (A * H[:, cls]).T @ A * (cls[:, None] == cls[None, :])
    if coupled:
        hess -= (A * H[:, cls]).T @ (A * H[:, cls])
    hess /= n
    step = _dense_newton_step(X, H, rows, cls, grad, coupled)
    np.testing.assert_allclose(hess @ step, grad, rtol=1e-6, atol=1e-8)
