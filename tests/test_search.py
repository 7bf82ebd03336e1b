"""Witness search: pricing against direct computations and re-solves, the loop against an
enumerated optimum, and the grown network against D @ coef."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from spikecvx.convex import solve
from spikecvx.dictionary import sample_witnesses
from spikecvx.snn import ParallelSNN
from spikecvx.snn.grown import GrownSNN
from spikecvx.tasks import first_last_xor
from spikecvx.train.search import (
    BoostBranch,
    CandidateSet,
    DualAscent,
    RandomPool,
    grown_network,
    price,
    search,
)

LOSSES = ("squared", "hinge", "hinge_ovr", "logistic", "softmax")
TOL = 1e-8


def _labels(loss: str, rng, n: int):
    if loss in ("hinge", "logistic"):
        return np.where(rng.random(n) < 0.5, -1.0, 1.0)
    if loss == "squared":
        return rng.normal(size=(n, 2))
    return rng.integers(0, 3, size=n)


def _problem(loss: str, seed: int = 0, n: int = 60, p: int = 25):
    rng = np.random.default_rng(seed)
    D = (rng.random((n, p)) < 0.4).astype(np.uint8)
    return D, _labels(loss, rng, n), rng


@pytest.mark.parametrize("penalty", ["l1", "group_l1"])
@pytest.mark.parametrize("loss", LOSSES)
def test_price_matches_direct_computation_and_current_columns_are_feasible(loss, penalty):
    D, y, rng = _problem(loss)
    res = solve(D, y, loss, penalty, reg=0.02, tol=TOL)
    cand = (rng.random((D.shape[0], 40)) < 0.5).astype(np.uint8)
    U = res.dual_point.reshape(D.shape[0], -1)
    G = cand.astype(np.float64).T @ U
    direct = (np.abs(G).max(axis=1) if penalty == "l1" else np.sqrt((G ** 2).sum(axis=1))) / res.reg
    np.testing.assert_allclose(price(cand, res), direct, rtol=1e-12, atol=0)
    np.testing.assert_allclose(price(cand.astype(bool), res), direct, rtol=1e-12, atol=0)
    # the certificate's dual point is feasible: no dictionary column exceeds 1
    assert price(D, res).max() <= 1 + 1e-9


def _split(loss, penalty, seed):
    """A solved problem and fresh columns, with some violating (> 1.05) and some not (< 0.95)."""
    D, y, rng = _problem(loss, seed)
    res = solve(D, y, loss, penalty, reg=0.02, tol=TOL)
    cand = (rng.random((D.shape[0], 400)) < rng.uniform(0.05, 0.95, size=400)).astype(np.uint8)
    v = price(cand, res)
    return D, y, res, cand, v


@pytest.mark.parametrize("penalty", ["l1", "group_l1"])
@pytest.mark.parametrize("loss", LOSSES)
def test_pricing_predicts_the_re_solve(loss, penalty):
    D, y, res, cand, v = _split(loss, penalty, seed=1)
    bad, good = np.flatnonzero(v > 1.05), np.flatnonzero(v < 0.95)
    assert len(bad) and len(good), "the instance must hold both kinds of columns"
    # non-violating columns: the optimum does not move (the old gap certifies the enlarged problem)
    D_good = np.hstack([D, cand[:, good]])
    res_good = solve(D_good, y, loss, penalty, reg=res.reg, tol=TOL)
    assert res_good.primal >= res.primal - res.gap - 1e-12
    assert res_good.primal <= res.primal + res_good.gap + 1e-12
    # one violating column: the optimum strictly drops (by far more than both gaps)
    j = bad[np.argmax(v[bad])]
    res_bad = solve(np.hstack([D, cand[:, [j]]]), y, loss, penalty, reg=res.reg, tol=TOL)
    assert res_bad.primal < res.primal - res.gap - res_bad.gap - 1e-9


def test_price_refuses_bad_input():
    D, y, _ = _problem("hinge")
    res = solve(D, y, "hinge", "l1", reg=0.02)
    with pytest.raises(ValueError, match="rows"):
        price(D[:-1], res)
    with pytest.raises(TypeError, match="real"):
        price(D.astype(object), res)
    with pytest.raises(ValueError, match="dual_point"):
        price(D, object())


class Enumerate:
    """Every binary column of n rows (no network behind them)."""

    source = "enumeration"

    def __call__(self, ctx):
        n = ctx.Y.shape[0]
        cols = np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.uint8).T
        return CandidateSet(cols, self.source)


@pytest.mark.parametrize("loss,penalty", [("hinge", "l1"), ("softmax", "group_l1"), ("logistic", "l1")])
def test_search_reaches_the_enumerated_optimum(loss, penalty):
    rng = np.random.default_rng(3)
    n = 9
    y = _labels(loss, rng, n)
    start = (rng.random((n, 3)) < 0.5).astype(np.uint8)
    every = np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.uint8).T  # 512 columns
    reg = 0.01
    full = solve(every, y, loss, penalty, reg=reg, tol=TOL)
    small = solve(start, y, loss, penalty, reg=reg, tol=TOL)
    assert small.primal > full.primal + 1e-3  # the start is far from the class optimum
    sr = search(None, y, columns=start, generators=[Enumerate()], loss=loss, penalty=penalty, reg=reg,
                tol=TOL, max_rounds=30)
    assert sr.best_violation <= 1 + 1e-9  # the last round found no violating column
    assert "<= 1" in sr.statement
    assert abs(sr.result.primal - full.primal) <= sr.result.gap + full.gap + 1e-9
    assert sr.n_columns < every.shape[1]
    objectives = [e["objective"] for e in sr.log]
    assert all(b <= a + 1e-9 for a, b in zip(objectives, objectives[1:]))


def test_search_over_threshold_units_reaches_the_class_optimum():
    """One LIF layer, one step, 2-D inputs: a neuron is a threshold unit 1[w.x >= b]; a very large
    pool enumerates the achievable columns, and the search from 4 neurons must reach their optimum."""
    rng = np.random.default_rng(0)
    n = 10
    X = torch.as_tensor(rng.normal(size=(n, 1, 2)), dtype=torch.float32)
    y = np.where(X[:, 0, 0].numpy() * X[:, 0, 1].numpy() > 0, 1.0, -1.0)  # XOR of the quadrants
    kw = dict(layers=2, branches=1, readout="membrane", readout_bias=0.3)
    big = sample_witnesses(ParallelSNN(2, 1, last_width=20000, **kw), "standard", 1.0, 123)
    from spikecvx.dictionary import dedup_columns, spike_dictionary

    A = spike_dictionary(big, X).matrix
    achievable = A[:, dedup_columns(A)[0]]
    reg = 0.005
    full = solve(achievable, y, "hinge", "l1", reg=reg, tol=TOL)
    net = sample_witnesses(ParallelSNN(2, 1, last_width=4, **kw), "standard", 1.0, 5)
    sr = search(X, y, net, [RandomPool(4000, seed=9)], loss="hinge", reg=reg, tol=TOL, max_rounds=20)
    assert sr.best_violation <= 1 + 1e-9
    assert sr.result.primal <= full.primal + sr.result.gap + full.gap + 1e-9
    assert sr.result.primal < solve(spike_dictionary(net, X).matrix, y, "hinge", "l1", reg=reg).primal - 1e-3
    g = grown_network(sr)
    assert len(g.blocks) == 1  # two-layer blocks have no trunk: all merge
    assert len(grown_network(sr, merge=False).blocks) > 1
    with torch.no_grad():
        out = g(X).numpy()
    np.testing.assert_allclose(out, sr.dictionary @ sr.result.coef.reshape(-1, 1), atol=1e-5)


def _xor_search(readout_at="last", loss="hinge"):
    X, y = first_last_xor(120, 5, seed=1)
    Xv, yv = first_last_xor(120, 5, seed=2)
    if readout_at == "every":  # a per-step three-class target: the running count of ones, mod 3
        y = np.cumsum(X[:, :, 1], axis=1).astype(int) % 3
        yv = np.cumsum(Xv[:, :, 1], axis=1).astype(int) % 3
    n_out = 1 if loss == "hinge" else 3
    net = ParallelSNN(2, n_out, layers=3, branches=2, width=20, last_width=16, readout_at=readout_at, seed=0)
    sample_witnesses(net, "standard", 1.0, 0)
    gens = [RandomPool(40), DualAscent(30, steps=10), BoostBranch(width=16, last_width=24, epochs=2)]
    sr = search(X, y, net, gens, loss=loss, reg_ratio=0.02, X_val=Xv, y_val=yv, max_rounds=3)
    return X, y, sr


@pytest.mark.parametrize("readout_at,loss", [("last", "hinge"), ("every", "softmax")])
def test_grown_network_computes_the_convex_solution(readout_at, loss):
    X, y, sr = _xor_search(readout_at, loss)
    assert len(sr.log) >= 2 and sr.log[0]["added"] > 0
    assert sr.log[-1]["objective"] < sr.log[0]["objective"]
    assert set(sr.sources[1:]) <= {"random", "ascent", "branch"} and len(sr.blocks) > 1
    for e in sr.log:
        assert e["gap"] <= 1e-6 * max(1.0, e["objective"]) and 0 <= e["val_score"] <= 1
    W = sr.result.coef.reshape(sr.n_columns, -1)
    separate = grown_network(sr, merge=False)
    assert len(separate.blocks) == len(sr.kept_blocks)
    g = grown_network(sr)  # blocks sharing the initial trunk (ascent) merged into one network
    assert isinstance(g, GrownSNN) and len(g.blocks) < len(separate.blocks)
    for net in (separate, g):
        with torch.no_grad():
            out = net(torch.as_tensor(X)).numpy().reshape(-1, W.shape[1])
        np.testing.assert_allclose(out, sr.dictionary.astype(np.float64) @ W, atol=1e-4)
    # the validation dictionary is what the grown network computes on new data, too
    assert g.n_neurons < sr.n_columns
    if readout_at == "every":  # step-by-step equals the whole-sequence forward
        xs = torch.as_tensor(X[:7])
        state, outs = None, []
        with torch.no_grad():
            for t in range(xs.shape[1]):
                o, state = g.step(xs[:, t], state)
                outs.append(o)
            np.testing.assert_allclose(torch.stack(outs, 1).numpy(), g(xs).numpy(), atol=1e-5)


def test_dual_ascent_never_prices_below_its_start():
    X, y = first_last_xor(150, 5, seed=4)
    net = sample_witnesses(ParallelSNN(2, 1, layers=3, branches=2, width=20, last_width=10, seed=0),
                           "standard", 1.0, 0)
    sr = search(X, y, net, [], loss="hinge", reg_ratio=0.05, max_rounds=0)
    from spikecvx.train.search import SearchContext, _outputs

    ctx = SearchContext(torch.as_tensor(X), np.asarray(y)[:, None], "hinge", "l1", sr.result,
                        _outputs(sr.dictionary, sr.result.coef), net.config(), None, 0, 1, net)
    start = DualAscent(64, steps=0)(ctx)
    after = DualAscent(64, steps=25, lr=0.1)(ctx)
    v0, v1 = price(start.columns, sr.result), price(after.columns, sr.result)
    assert np.all(v1 >= v0 - 1e-12)
    assert np.mean(v1 > v0 + 1e-9) > 0.1  # the ascent improves a good share of the neurons
    # the block's own features are the reported columns
    from spikecvx.dictionary import spike_dictionary

    np.testing.assert_array_equal(spike_dictionary(after.net, X).matrix, after.columns)
    fresh = DualAscent(16, steps=3, fresh_trunk=True)(ctx)
    assert not torch.equal(fresh.net.hidden[0], net.hidden[0]) and fresh.source == "ascent-fresh"
    np.testing.assert_array_equal(spike_dictionary(fresh.net, X).matrix, fresh.columns)


def test_search_refuses_bad_arguments():
    X, y = first_last_xor(40, 4, seed=0)
    net = ParallelSNN(2, 1, layers=2, branches=1, last_width=4, seed=0)
    with pytest.raises(ValueError, match="exactly one"):
        search(X, y, net, columns=np.ones((40, 2)))
    with pytest.raises(ValueError, match="together"):
        search(X, y, net, X_val=X)
    with pytest.raises(TypeError, match="generators"):
        search(X, y, net, [3])
    with pytest.raises(ValueError, match="max_rounds"):
        search(X, y, net, max_rounds=-1)
    with pytest.raises(ValueError, match="n"):
        RandomPool(0)


def test_fit_search_two_heads_deploys_what_it_validated():
    from spikecvx.train import Head
    from spikecvx.train.search import fit_search

    X, _ = first_last_xor(100, 5, seed=1)
    Xv, _ = first_last_xor(100, 5, seed=2)

    def targets(X):
        ones = np.cumsum(X[:, :, 1], axis=1).astype(int)
        return [ones % 3, (ones >= 3).astype(int)]

    heads = [Head("count", 3, "softmax"), Head("many", 2, "hinge_ovr")]
    kw = dict(layers=3, branches=2, width=20, last_width=16, readout_at="every")
    model, rep = fit_search(X, targets(X), Xv, targets(Xv), kw, heads=heads, max_rounds=2,
                            generators=[DualAscent(24, steps=5), RandomPool(24)])
    assert rep.method == "cvx-search" and set(rep.heads) == {"count", "many"}
    with torch.no_grad():
        out = model(torch.as_tensor(Xv)).numpy()
    assert out.shape == (100, 5, 5)
    for (name, sl), y in zip((("count", slice(0, 3)), ("many", slice(3, 5))), targets(Xv)):
        acc = float(np.mean(np.argmax(out[..., sl], axis=-1) == y))
        assert acc == pytest.approx(rep.heads[name].val_acc, abs=1e-12)
        assert "certified over" in rep.heads[name].search.statement
