"""The smooth solver on spike dictionaries of real data: bounded proximal-Newton iterations
(counted, not timed) and uint8 dictionaries solved as they are."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import spikecvx.convex.prox_newton as prox_newton_module
from spikecvx.convex import path, reg_grid, reg_max, solve
from spikecvx.dictionary import sample_witnesses, spike_dictionary
from spikecvx.snn import ParallelSNN


@pytest.fixture(scope="module")
def digits_dictionary():
    """scikit-learn's digits (first 200 images, 8 steps of 8 pixels) through a small network with
    Gaussian witnesses: 65 distinct binary columns, 10 classes, a softmax problem that is nearly
    separable at the small-reg end of a path."""
    X, y = load_digits(return_X_y=True)
    X = torch.as_tensor(X[:200].reshape(-1, 8, 8), dtype=torch.float32)
    net = ParallelSNN(d_in=8, n_out=10, layers=3, branches=2, width=40, last_width=80, seed=0)
    sample_witnesses(net, "standard", 1.0, 0)
    D = spike_dictionary(net, X, dedup=True).matrix
    return D, y[:200]


class _Counter:
    """Counts the proximal-Newton iterations (one model solve each)."""

    def __init__(self, monkeypatch):
        self.n = 0
        kernel = prox_newton_module.quadratic_model_cd

        def counted(*args):
            self.n += 1
            return kernel(*args)

        monkeypatch.setattr(prox_newton_module, "quadratic_model_cd", counted)


def test_near_separable_softmax_path_needs_few_newton_iterations(digits_dictionary, monkeypatch):
    D, y = digits_dictionary
    assert D.dtype == np.uint8 and D.shape[1] < 200
    top = reg_max(D, y, "softmax")
    counter = _Counter(monkeypatch)
    W, counts = None, []
    for div in (10, 100, 300, 1000):
        counter.n = 0
        res = solve(D, y, "softmax", reg=top / div, warm_start=W)
        assert res.converged and res.rel_gap <= 1e-6
        counts.append(counter.n)
        W = res.coef
    # with an undamped support Newton step without the active-set correction, this path took
    # 7 / 33 / 2000 / 6000 iterations (the last two solves ran out of iterations)
    assert max(counts) <= 60, counts
    # saturated probabilities: the model is nearly separable at the end of the path
    P = np.exp(D @ W - np.log(np.exp(D @ W).sum(1, keepdims=True)))
    assert np.median(P.max(1)) > 0.95


def test_active_set_newton_matches_a_solve_on_the_entries_kept():
    from spikecvx.convex.prox_newton import active_set_newton

    rng = np.random.default_rng(1)
    s = 12
    A = rng.normal(size=(30, s))
    hess = A.T @ A / 30
    w = rng.normal(size=s)
    grad = hess @ (w - rng.normal(size=s))  # the undamped Newton point changes some signs
    new = active_set_newton(hess, grad, w, mu=0.0, rounds=1)
    flipped = np.sign(w - np.linalg.solve(hess, grad)) != np.sign(w)
    assert flipped.any() and np.all(new[flipped] == 0)
    # reference: the Newton equations on the kept entries, with the flipped ones moved to zero
    k, z = np.flatnonzero(~flipped), np.flatnonzero(flipped)
    step_k = np.linalg.solve(hess[np.ix_(k, k)], grad[k] - hess[np.ix_(k, z)] @ w[z])
    np.testing.assert_allclose(new[k], w[k] - step_k, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("loss", ["squared", "logistic", "softmax"])
def test_uint8_dictionary_is_solved_as_it_is_and_matches_float64(loss, monkeypatch):
    import spikecvx.convex.solver as solver_module

    rng = np.random.default_rng(3)
    D = (rng.random((150, 40)) < 0.4).astype(np.uint8)
    score = D @ rng.normal(size=40)
    y = {"squared": score + rng.normal(size=150),
         "logistic": np.where(score > np.median(score), 1.0, -1.0),
         "softmax": np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))}[loss]
    reg = reg_max(D, y, loss) / 30
    seen = []
    inner = solver_module.prox_newton

    def recording(X, *args):
        seen.append(X.dtype)
        return inner(X, *args)

    monkeypatch.setattr(solver_module, "prox_newton", recording)
    compact = solve(D, y, loss, reg=reg, tol=1e-10)
    assert seen and all(dt == np.uint8 for dt in seen)
    seen.clear()
    wide = solve(D.astype(np.float64), y, loss, reg=reg, tol=1e-10)
    assert seen and all(dt == np.float64 for dt in seen)
    assert compact.converged and wide.converged
    np.testing.assert_allclose(compact.coef, wide.coef, atol=1e-6)
    assert compact.primal == pytest.approx(wide.primal, rel=1e-9)


def test_chunked_products_match_float64():
    from spikecvx.convex import matrix

    rng = np.random.default_rng(5)
    A = (rng.random((50, 30)) < 0.5).astype(np.uint8)
    W, U = rng.normal(size=(30, 4)), rng.normal(size=(50, 4))
    monkey_chunk = matrix.CHUNK_BYTES
    try:
        matrix.CHUNK_BYTES = 8 * 50 * 7  # 7 columns a block: several blocks and a partial one
        np.testing.assert_allclose(matrix.matmul(A, W), A.astype(float) @ W, rtol=1e-12)
        np.testing.assert_allclose(matrix.rmatmul(A, U), A.astype(float).T @ U, rtol=1e-12)
    finally:
        matrix.CHUNK_BYTES = monkey_chunk


def test_small_support_newton_steps_are_lightly_damped(digits_dictionary, monkeypatch):
    """Along a whole path to reg_max / 1000, the factorised support Newton step converges in few
    steps: 43 at the dense damping 0.03, 90 at the large-support damping 0.3."""
    D, y = digits_dictionary
    steps = [0]
    newton = prox_newton_module.support_newton

    def counted(*args, **kwargs):
        steps[0] += 1
        return newton(*args, **kwargs)

    monkeypatch.setattr(prox_newton_module, "support_newton", counted)
    assert prox_newton_module.DENSE_NEWTON_DAMPING < prox_newton_module.NEWTON_DAMPING
    results = path(D, y, "softmax", regs=reg_grid(D, y, "softmax", n_regs=8, min_ratio=1e-3))
    assert all(r.converged and r.rel_gap <= 1e-6 for r in results)
    assert steps[0] <= 55, steps[0]
