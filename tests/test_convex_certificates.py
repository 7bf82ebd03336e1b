"""Honest certificates and honest edges of spikecvx.convex: the certificate always belongs to
the returned coef, non-finite problems are refused, bad arguments are named."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from test_convex import _objective, _problem

from spikecvx.convex import LOSSES, ElasticNet, SolveResult, reg_max, solve

SMOOTH = ("squared", "logistic", "softmax")
ALL_PAIRS = [(loss, pen) for loss in LOSSES for pen in ("l1", "group_l1")] + [
    (loss, "elastic_net") for loss in SMOOTH] + [("logistic", ElasticNet(0.3))]


def assert_certificate_of_coef(D, y, res, rel=1e-10):
    """The reported primal is the objective of the returned coef, recomputed independently, and
    the dual value is a lower bound consistent with the gap."""
    ours = _objective(np.asarray(D.toarray() if sp.issparse(D) else D), np.asarray(y), res.loss,
                      (res.penalty, res.penalty_params), res.reg, res.coef)
    assert res.primal == pytest.approx(ours, rel=rel, abs=1e-13)
    assert res.gap == pytest.approx(res.primal - res.dual, rel=1e-9, abs=1e-13)
    assert np.isfinite(res.gap) and res.gap >= -1e-9 * max(1.0, abs(res.primal))
    if res.converged:
        assert res.gap <= res.tol * max(1.0, abs(res.primal)) * (1 + 1e-12)


def _wide_problem(loss, seed=0):
    """More columns than the smallest working set, so one outer iteration does not finish."""
    return _problem(loss, n=60, p=260, seed=seed)


@pytest.mark.parametrize("loss,pen", ALL_PAIRS)
def test_certificate_belongs_to_the_returned_coef_when_max_iter_runs_out(loss, pen):
    D, y = _wide_problem(loss)
    reg = reg_max(D, y, loss, pen) / 30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for max_iter in (1, 2):
            res = solve(D, y, loss, pen, reg=reg, tol=1e-12, max_iter=max_iter)
            assert res.n_iter == max_iter
            assert np.any(res.coef != 0)  # an update happened after the last evaluation
            assert_certificate_of_coef(D, y, res)
    res = solve(D, y, loss, pen, reg=reg, tol=1e-7)
    assert res.converged
    assert_certificate_of_coef(D, y, res)


def test_hinge_max_iter_one_reports_the_objective_of_coef():
    D, y = _wide_problem("hinge", seed=3)
    reg = reg_max(D, y, "hinge") / 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = solve(D, y, "hinge", reg=reg, max_iter=1)
    true = _objective(D, y, "hinge", "l1", reg, res.coef)
    assert true < 1.0  # coef is not zero: the objective of W = 0 would be 1
    assert res.primal == pytest.approx(true, rel=1e-12)


def test_overflowing_data_raise_instead_of_an_infinite_certificate():
    D, y = _problem("squared")
    with pytest.raises(ValueError, match="y or D"):
        solve(D, y[:, 0] * 1e300, "squared", reg=0.01)
    with pytest.raises(ValueError, match="D or y"):
        reg_max(D * 1e300, y[:, 0] * 1e10, "squared")


def test_large_finite_design_is_rescaled_for_the_hinge_lp_and_certified_on_the_original():
    for scale, pen in ((1e15, "l1"), (1e-12, "l1"), (1e15, "group_l1")):
        loss = "hinge" if pen == "l1" else "hinge_ovr"
        D0, y0 = _problem(loss)
        reg = reg_max(D0, y0, loss, pen) / 10
        ref = solve(D0, y0, loss, pen, reg=reg, tol=1e-9)
        # D -> s D, reg -> s reg is the same problem in w / s
        res = solve(D0 * scale, y0, loss, pen, reg=reg * scale, tol=1e-9)
        assert res.converged
        assert res.primal == pytest.approx(ref.primal, rel=1e-7)
        np.testing.assert_allclose(res.coef * scale, ref.coef, atol=1e-6)
        assert_certificate_of_coef(D0 * scale, y0, res)


def test_complex_input_is_refused():
    D, y = _problem("hinge")
    with pytest.raises(TypeError, match="D must hold real"):
        solve(D + 0j, y, "hinge")
    with pytest.raises(TypeError, match="D must hold real"):
        solve(sp.csr_matrix(D.astype(complex)), y, "hinge")
    with pytest.raises(TypeError, match="y must hold real"):
        solve(D, y.astype(complex), "hinge")
    Ds, ys = _problem("squared")
    with pytest.raises(TypeError, match="y must hold real"):
        solve(Ds, ys + 0j)
    with pytest.raises(TypeError, match="D must hold real"):
        reg_max(D.astype(object), y, "hinge")
    with pytest.raises(TypeError, match="warm_start must hold real"):
        solve(Ds, ys[:, 0], warm_start=np.zeros(Ds.shape[1], dtype=complex))


def test_argument_types_are_checked():
    D, y = _problem("squared")
    y = y[:, 0]
    for bad in (0, -3):
        with pytest.raises(ValueError, match="max_iter"):
            solve(D, y, max_iter=bad)
    for bad in (1.5, "10", True):
        with pytest.raises(TypeError, match="max_iter"):
            solve(D, y, max_iter=bad)
    with pytest.raises(TypeError, match="reg"):
        solve(D, y, reg="0.01")
    with pytest.raises(TypeError, match="tol"):
        solve(D, y, tol="1e-6")
    with pytest.raises(ValueError, match="tol"):
        solve(D, y, tol=float("nan"))
    with pytest.raises(TypeError, match="verbose"):
        solve(D, y, verbose="yes")
    with pytest.raises(TypeError, match="warm_start"):
        solve(D, y, warm_start=["a"] * D.shape[1])
    with pytest.raises(TypeError, match="penalty"):
        solve(D, y, penalty=3)
    with pytest.raises(TypeError, match="l1_ratio"):
        ElasticNet("0.5")
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="l1_ratio"):
            ElasticNet(bad)


def test_solve_result_round_trips_through_json():
    import json

    D, y = _problem("softmax")
    res = solve(D, y, "softmax", reg=reg_max(D, y, "softmax") / 5)
    back = SolveResult.from_dict(json.loads(json.dumps(res.to_dict())))
    np.testing.assert_array_equal(back.coef, res.coef)
    np.testing.assert_array_equal(back.classes, res.classes)
    assert back.certificate() == res.certificate()


def test_importing_the_engine_imports_neither_torch_nor_sklearn():
    code = "import spikecvx.convex, sys; assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_kernel_runs_a_penalty_it_does_not_know():
    """A penalty defined outside the engine (2 |w|_1, with its own compiled prox) gives the L1
    solution at twice the reg: the solver and the kernel only use what the penalty provides."""
    from numba import njit

    from spikecvx.convex import L1
    from spikecvx.convex._kernels import PROX_SIGNATURE

    @njit(PROX_SIGNATURE)
    def prox_double_l1(z, lo, hi, curv, reg, params):
        t = params[0] * reg / curv
        for c in range(lo, hi):
            v = z[c]
            z[c] = v - t if v > t else (v + t if v < -t else 0.0)

    class DoubleL1(L1):
        name = "double_l1"
        prox = staticmethod(prox_double_l1)
        params = np.array([2.0])
        orthant_linear = False  # the support Newton step is written for L1 itself

        def value(self, W):
            return 2.0 * float(np.abs(W).sum())

        def zero_slack(self, G, reg):
            return 2.0 * reg - self.row_dual_norms(G)

        def reg_max(self, G0):
            return float(self.row_dual_norms(G0).max()) / 2.0

        def feasible_dual(self, DtU, reg):
            return super().feasible_dual(DtU, 2.0 * reg)

    D, y = _problem("softmax", seed=4)
    reg = reg_max(D, y, "softmax") / 10
    assert reg_max(D, y, "softmax", DoubleL1()) == pytest.approx(reg_max(D, y, "softmax") / 2)
    ours = solve(D, y, "softmax", DoubleL1(), reg=reg / 2, tol=1e-8, max_iter=200)
    ref = solve(D, y, "softmax", "l1", reg=reg, tol=1e-8)
    assert ours.converged and ours.penalty == "double_l1"
    np.testing.assert_allclose(ours.coef, ref.coef, atol=1e-3)
    assert abs(ours.primal - ref.primal) <= ours.gap + ref.gap


def test_one_default_path_length_and_predictions_from_the_datafit():
    from spikecvx.convex import path, predict, reg_grid, validation_score

    D, y = _problem("softmax", seed=9)
    assert len(reg_grid(D, y, "softmax")) == 8
    results = path(D, y, "softmax")
    assert len(results) == 8
    Z = D.astype(float) @ results[-1].coef
    np.testing.assert_array_equal(predict(results[-1], D), results[-1].classes[np.argmax(Z, axis=1)])
    assert validation_score(results[-1], D, y) == np.mean(predict(results[-1], D) == y)
    Ds, ys = _problem("squared")
    res = solve(Ds, ys, reg=0.1)
    assert validation_score(res, Ds, ys) == pytest.approx(-np.mean((Ds.astype(float) @ res.coef - ys) ** 2))
