"""The elastic-net penalty: against scikit-learn's ElasticNet (squared loss) and CVXPY (logistic,
softmax), with a certified gap from its Fenchel dual."""

import numpy as np
import pytest
from test_convex import _cvxpy_objective, _objective, _problem

from spikecvx.convex import PENALTIES, ElasticNet, path, reg_max, solve


@pytest.mark.parametrize("l1_ratio", [0.2, 0.5, 0.9, 1.0])
def test_squared_elastic_net_matches_scikit_learn(l1_ratio):
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(5)
    D = (rng.random((150, 40)) < 0.35).astype(np.uint8)
    y = D @ (rng.normal(size=40) * (rng.random(40) < 0.3)) + 0.2 * rng.normal(size=150)
    pen = ElasticNet(l1_ratio)
    reg = reg_max(D, y, "squared", pen) / 10
    res = solve(D, y, "squared", pen, reg=reg, tol=1e-10)
    ref = sklearn.ElasticNet(alpha=reg, l1_ratio=l1_ratio, fit_intercept=False, tol=1e-14,
                             max_iter=200000).fit(D.astype(float), y)
    assert res.converged and res.penalty == "elastic_net"
    np.testing.assert_allclose(res.coef, ref.coef_, atol=1e-6)
    assert res.primal == pytest.approx(_objective(D, y, "squared", pen, reg, res.coef), rel=1e-12)
    # the sklearn solution is feasible for our problem: the dual bounds its objective from below
    assert res.dual <= _objective(D, y, "squared", pen, reg, ref.coef_) + 1e-12


@pytest.mark.parametrize("loss", ["squared", "logistic", "softmax"])
@pytest.mark.parametrize("l1_ratio", [0.3, 0.8])
def test_elastic_net_matches_cvxpy_and_its_gap_bounds_suboptimality(loss, l1_ratio):
    D, y = _problem(loss, n=50, p=14, seed=2)
    pen = ElasticNet(l1_ratio)
    reg = reg_max(D, y, loss, pen) / 8
    res = solve(D, y, loss, pen, reg=reg, tol=1e-9)
    ref = _cvxpy_objective(D, y, loss, pen, reg)
    ours = _objective(D, y, loss, pen, reg, res.coef)
    assert res.converged and res.rel_gap <= 1e-9
    assert ours == pytest.approx(res.primal, rel=1e-10)
    assert abs(ours - ref) <= 1e-6 * max(1.0, abs(ref))
    assert res.dual <= ref + 1e-7
    assert ours - ref <= res.gap + 1e-7


@pytest.mark.parametrize("loss", ["squared", "logistic", "softmax"])
def test_elastic_net_reg_max_is_exact(loss):
    D, y = _problem(loss, seed=6)
    pen = ElasticNet(0.4)
    top = reg_max(D, y, loss, pen)
    assert top == pytest.approx(reg_max(D, y, loss, "l1") / 0.4, rel=1e-14)
    assert np.all(solve(D, y, loss, pen, reg=top * 1.0001).coef == 0)
    assert np.any(solve(D, y, loss, pen, reg=top * 0.9).coef != 0)


def test_elastic_net_by_name_and_along_a_path():
    D, y = _problem("logistic", seed=8)
    assert PENALTIES["elastic_net"].l1_ratio == 0.5
    by_name = solve(D, y, "logistic", "elastic_net", reg=0.01, tol=1e-10)
    by_object = solve(D, y, "logistic", ElasticNet(0.5), reg=0.01, tol=1e-10)
    np.testing.assert_allclose(by_name.coef, by_object.coef, atol=1e-8)
    results = path(D, y, "logistic", ElasticNet(0.7), n_regs=4, tol=1e-8)
    assert len(results) == 4 and all(r.converged for r in results)
    assert np.all(results[0].coef == 0) and results[-1].n_nonzero_rows > 0


@pytest.mark.parametrize("loss", ["hinge", "hinge_ovr"])
def test_hinge_refuses_elastic_net(loss):
    D, y = _problem(loss)
    with pytest.raises(ValueError, match="elastic_net"):
        solve(D, y, loss, "elastic_net", reg=0.01)
