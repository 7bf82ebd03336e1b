"""Property tests (hypothesis) of the public entry points of spikecvx.convex.

1. Fuzzed arguments (shapes, dtypes, values, types): every call either returns a correct result
   (a finite certificate that belongs to the returned coef) or raises ValueError / TypeError
   whose message names an argument.
2. On random small problems of every loss x penalty, the reported gap bounds the true
   suboptimality, measured against CVXPY.
"""

import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from test_convex import _cvxpy_objective, _objective

from spikecvx.convex import LOSSES, ElasticNet, path, reg_grid, reg_max, solve

cp = pytest.importorskip("cvxpy")

ARGUMENT = re.compile(r"\b(D|y|reg|regs|tol|loss|penalty|max_iter|warm_start|n_regs|min_ratio|l1_ratio)\b")
SMOOTH = ("squared", "logistic", "softmax")
PAIRS = [(loss, pen) for loss in LOSSES for pen in ("l1", "group_l1")] + [
    (loss, "elastic_net") for loss in SMOOTH]
GOOD_DTYPES = ["bool", "uint8", "int64", "float32", "float64", "sparse"]
BAD_SCALARS = [None, "0.01", 1j, float("nan"), float("inf"), -1.0, 0.0, [0.1], True]


@st.composite
def design(draw, bad):
    """A design matrix: valid (any real dtype, sparse, tiny / huge scales) unless ``bad``."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, p = draw(st.integers(3, 12)), draw(st.integers(1, 6))
    x = rng.normal(size=(n, p)) * draw(st.sampled_from([1.0, 1.0, 1e-8, 1e8, 1e150]))
    if bad:
        kind = draw(st.sampled_from(["complex", "object", "string", "nan", "inf", "empty_rows",
                                     "empty_cols", "1d", "3d", "sparse_complex"]))
        if kind in ("nan", "inf"):
            x[rng.integers(n), rng.integers(p)] = np.nan if kind == "nan" else -np.inf
            return x
        return {"complex": lambda: x + 1j, "object": lambda: x.astype(object),
                "string": lambda: x.astype(str), "empty_rows": lambda: x[:0],
                "empty_cols": lambda: x[:, :0], "1d": lambda: x[:, 0], "3d": lambda: x[None],
                "sparse_complex": lambda: sp.csr_matrix(x + 1j)}[kind]()
    dtype = draw(st.sampled_from(GOOD_DTYPES))
    if dtype == "bool":
        return x > 0
    if dtype in ("uint8", "int64"):
        return (np.abs(x) > 0.5 * np.abs(x).max()).astype(dtype) * draw(st.sampled_from([1, 3]))
    if dtype == "sparse":
        return sp.csr_matrix(np.where(np.abs(x) > 0.5 * np.abs(x).max(), x, 0.0))
    return x.astype(dtype) if dtype == "float64" or np.abs(x).max() < 1e30 else x


@st.composite
def labels(draw, n, loss, bad):
    """Labels for ``loss`` with both classes present, or (``bad``) broken ones."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = max(n, 2)  # labels for a broken (empty) D still need both classes
    if loss == "squared":
        y = rng.normal(size=n) if draw(st.booleans()) else rng.normal(size=(n, 2))
    elif loss in ("hinge", "logistic"):
        y = rng.choice([-1.0, 1.0], size=n)
        y[:2] = [-1.0, 1.0]
    else:
        y = rng.integers(0, 3, size=n)
        y[:2] = [0, 1]
    if not bad:
        return y
    kind = draw(st.sampled_from(["short", "long", "complex", "nan", "string", "object", "2d", "wrong_set"]))
    if kind == "wrong_set" and loss == "squared":
        kind = "complex"
    if kind in ("2d",) and loss == "squared":
        kind = "nan"
    yf = np.asarray(y, dtype=float)
    return {"short": lambda: y[:-1], "long": lambda: np.concatenate([y, y[:1]]),
            "complex": lambda: y + 1j,
            "nan": lambda: np.where(np.arange(yf.size).reshape(yf.shape) == 0, np.nan, yf),
            "string": lambda: y.astype(str), "object": lambda: y.astype(object),
            "2d": lambda: np.stack([y, y], 1), "wrong_set": lambda: yf + 0.5}[kind]()


def _check_error(err, bad=None):
    """The message names an argument; the broken one, if there is one."""
    event(f"{type(err).__name__}")
    pattern = ARGUMENT if bad is None else re.compile(rf"\b{bad}\b")
    assert pattern.search(str(err)), f"error does not name {bad or 'an argument'}: {err!r}"


def _check_result(D, y, res):
    event("result")
    assert np.isfinite(res.primal) and np.isfinite(res.dual) and np.isfinite(res.gap)
    assert res.gap >= -1e-9 * max(1.0, abs(res.primal))
    Dd = D.toarray() if sp.issparse(D) else np.asarray(D)
    pen = (res.penalty, res.penalty_params)
    ours = _objective(Dd.astype(float), np.asarray(y), res.loss, pen, res.reg, res.coef)
    assert res.primal == pytest.approx(ours, rel=1e-8, abs=1e-12)


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=st.data(), loss=st.sampled_from(LOSSES), pen=st.sampled_from(["l1", "group_l1", "elastic_net"]),
       bad=st.sampled_from([None, None, None, "D", "y", "reg", "tol", "max_iter", "warm_start"]))
def test_solve_and_reg_max_return_a_certificate_or_name_the_argument(data, loss, pen, bad):
    if bad is not None and loss.startswith("hinge") and pen == "elastic_net":
        pen = "l1"  # hinge + elastic net is refused whatever the other arguments
    D = data.draw(design(bad == "D"))
    y = data.draw(labels(np.shape(D)[0] if np.ndim(D) == 2 else 5, loss, bad == "y"))
    reg = data.draw(st.sampled_from(BAD_SCALARS if bad == "reg" else [1e-3, 0.05, 0.3, 2.0]))
    tol = data.draw(st.sampled_from(BAD_SCALARS if bad == "tol" else [1e-6, 1e-3]))
    max_iter = data.draw(st.sampled_from([0, -1, 1.5, "3", None] if bad == "max_iter" else [50, 2, 1]))
    warm = None
    if bad == "warm_start":
        warm = data.draw(st.sampled_from([np.zeros(1000), np.full(np.shape(D)[1], np.nan), "abc",
                                          np.zeros(np.shape(D)[1], dtype=complex)]))
    kw = dict(reg=reg, tol=tol, max_iter=max_iter, warm_start=warm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if bad in (None, "reg", "tol", "max_iter", "warm_start"):
            try:
                top = reg_max(D, y, loss, pen)
            except (ValueError, TypeError) as err:
                _check_error(err)
            else:
                assert np.isfinite(top) and top >= 0
        try:
            res = solve(D, y, loss, pen, **kw)
        except (ValueError, TypeError) as err:
            _check_error(err, bad)
        else:
            assert bad is None, f"bad {bad} was accepted"
            _check_result(D, y, res)


@FUZZ
@given(data=st.data(), loss=st.sampled_from(LOSSES), bad=st.sampled_from([None, None, "D", "y", "n_regs",
                                                                          "min_ratio", "regs"]))
def test_path_and_reg_grid_return_results_or_name_the_argument(data, loss, bad):
    D = data.draw(design(bad == "D"))
    y = data.draw(labels(np.shape(D)[0] if np.ndim(D) == 2 else 5, loss, bad == "y"))
    n_regs = data.draw(st.sampled_from([0, -1, 2.5, "4", None] if bad == "n_regs" else [3, 2]))
    min_ratio = data.draw(st.sampled_from([0.0, 1.0, 2.0, np.nan, "0.1"] if bad == "min_ratio" else [1e-2]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if bad != "regs":
            try:
                grid = reg_grid(D, y, loss, "l1", n_regs, min_ratio)
            except (ValueError, TypeError) as err:
                _check_error(err, bad)
            else:
                assert bad is None, f"bad {bad} was accepted"
                assert len(grid) == n_regs and np.all(np.isfinite(grid)) and np.all(np.diff(grid) < 0)
        regs = data.draw(st.sampled_from([[], [0.1, -1.0], ["a"], [np.nan], "0.1", [[0.1]]] if bad == "regs"
                                         else [None, [0.1, 0.01]]))
        try:
            results = path(D, y, loss, "l1", regs=regs, n_regs=n_regs, min_ratio=min_ratio, tol=1e-6)
        except (ValueError, TypeError) as err:
            _check_error(err, bad)
        else:
            assert bad is None, f"bad {bad} was accepted"
            for res in results:
                _check_result(D, y, res)


@st.composite
def small_problem(draw):
    loss, pen = draw(st.sampled_from(PAIRS))
    n = draw(st.integers(6, 30))
    p = draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    binary = draw(st.booleans())
    D = (rng.random((n, p)) < 0.5).astype(np.uint8) if binary else rng.normal(size=(n, p))
    score = D @ rng.normal(size=p) + 0.5 * rng.normal(size=n)
    if loss == "squared":
        y = score if draw(st.booleans()) else np.stack([score, rng.normal(size=n)], 1)
    elif loss in ("hinge", "logistic"):
        y = np.where(score > np.median(score), 1.0, -1.0)
    else:
        y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    if pen == "elastic_net":
        pen = ElasticNet(draw(st.sampled_from([0.1, 0.5, 0.95])))
    return D, y, loss, pen, draw(st.sampled_from([0.9, 0.5, 0.2, 0.05]))


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(problem=small_problem())
def test_reported_gap_bounds_the_true_suboptimality_against_cvxpy(problem):
    D, y, loss, pen, ratio = problem
    try:
        top = reg_max(D, y, loss, pen)
    except ValueError:  # a single class, or y = 0: not a problem to certify
        assume(False)
    assume(top > 0)
    reg = top * ratio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = solve(D, y, loss, pen, reg=reg, tol=1e-8)
    try:
        ref = _cvxpy_objective(D, y, loss, pen, reg)
    except cp.error.SolverError:
        assume(False)
    assume(ref is not None and np.isfinite(ref))
    ours = _objective(D, y, loss, pen, reg, res.coef)
    assert res.primal == pytest.approx(ours, rel=1e-9, abs=1e-12)
    assert np.isfinite(res.gap) and res.gap >= -1e-9 * max(1.0, abs(res.primal))
    assert ours - ref <= res.gap + 1e-6
    assert res.dual <= ref + 1e-6
