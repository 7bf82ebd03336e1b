"""Row-sharded certified solves on 2 and 3 gloo ranks equal the one-process solve on the
concatenated rows: every loss x penalty, uneven shards, an empty shard, and a rank whose rows all
repeat other ranks' rows. Softmax runs both ways: its working sets solved on the rank-local rows
(the default here) and gathered on rank 0. With 2 ranks, a bad argument on one rank first raises
on both (input checks agree), and the solves that follow show the ranks stayed in step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dist_harness import run_ranks

from spikecvx import ParallelSNN, spike_dictionary
from spikecvx.convex import path, reg_max, solve
from spikecvx.convex.sharded import prepare_sharded
from spikecvx.distributed import communicator

N, P = 64, 40
CASES = [("squared", "l1"), ("squared", "group_l1"), ("squared", "elastic_net"), ("logistic", "l1"),
         ("logistic", "elastic_net"), ("softmax", "l1"), ("softmax", "group_l1"),
         ("softmax", "elastic_net"), ("hinge", "l1"),
         ("hinge_ovr", "l1"), ("hinge_ovr", "group_l1")]
TOL = 1e-8


def _data():
    rng = np.random.default_rng(0)
    D = (rng.random((N, P)) < 0.35).astype(np.uint8)
    D[:, 5] = D[:, 3]  # duplicate columns and repeated rows, as spike dictionaries have
    D[10:14] = D[0]
    w_true = rng.normal(size=(P, 3)) * (rng.random((P, 1)) < 0.3)
    Z = D @ w_true + 0.3 * rng.normal(size=(N, 3))
    labels = {"squared": Z[:, :2], "logistic": np.where(Z[:, 0] > np.median(Z[:, 0]), 1.0, -1.0),
              "softmax": np.argmax(Z, axis=1), "hinge": np.where(Z[:, 1] > np.median(Z[:, 1]), 1.0, -1.0)}
    labels["hinge_ovr"] = labels["softmax"]
    weights = rng.uniform(0.5, 2.0, size=N)
    return D, labels, weights


def _shards(world):
    """Rows of each rank: uneven; with 3 ranks, rank 1 has none and rank 2 repeats rank 0's rows."""
    if world == 2:
        return [np.arange(0, 40), np.arange(40, N)]
    return [np.arange(0, 25), np.arange(0), np.concatenate([np.arange(25, N), np.array([0, 3, 3, 7, 24])])]


def _rows(world):
    return np.concatenate(_shards(world))


def _reg(loss, pen, D, y, sw=None):
    return reg_max(D, y, loss, pen, sample_weight=sw) / 6


# ------------------------------------------------ input checks agree across ranks (2 ranks)

def _checks_data():
    rng = np.random.default_rng(3)
    D = (rng.random((30, 12)) < 0.4).astype(np.uint8)
    y = np.where(D[:, 0] + rng.random(30) > 0.9, 1.0, -1.0)
    return D, y


def _net():
    return ParallelSNN(d_in=3, n_out=2, layers=2, branches=2, width=8, last_width=16, seed=0)


def _bad_argument_cases(r):
    """(name, call): each call passes a bad argument on rank 1 only (of 2)."""
    D, y = _checks_data()
    rows = np.arange(0, 14) if r == 0 else np.arange(14, 30)
    Dr, yr = D[rows], y[rows]
    bad = r == 1
    y_cls = (D[rows, 1] + D[rows, 2]).astype(np.float64)
    X = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(r))
    return [
        ("y", lambda: solve(Dr, np.where(yr > 0, 2.0, -1.0) if bad else yr, "logistic", distributed=True)),
        ("y", lambda: solve(Dr, y_cls + (0.5 if bad else 0.0), "softmax", distributed=True)),
        ("y", lambda: solve(Dr, yr[:-1] if bad else yr, "logistic", distributed=True)),
        ("sample_weight", lambda: solve(Dr, yr, "logistic", sample_weight=-np.ones(len(rows)) if bad
                                        else np.ones(len(rows)), distributed=True)),
        ("sample_weight", lambda: reg_max(Dr, yr, "logistic", sample_weight=np.ones(3 if bad else len(rows)),
                                          distributed=True)),
        ("D", lambda: reg_max(Dr[:, 0] if bad else Dr, yr, "logistic", distributed=True)),
        ("D", lambda: prepare_sharded(Dr * np.nan if bad else Dr, yr, "logistic", "l1", None,
                                      communicator(True))),
        ("loss", lambda: solve(Dr, yr, "logistc" if bad else "logistic", distributed=True)),
        ("reg", lambda: solve(Dr, yr, "logistic", reg=-1.0 if bad else 0.01, distributed=True)),
        ("tol", lambda: solve(Dr, yr, "logistic", tol=0.0 if bad else 1e-6, distributed=True)),
        ("warm_start", lambda: solve(Dr, yr, "logistic", warm_start=np.zeros(5 if bad else 12),
                                     distributed=True)),
        ("regs", lambda: path(Dr, yr, "logistic", regs=[0.1, -0.1] if bad else [0.1, 0.05],
                              distributed=True)),
        ("n_regs", lambda: path(Dr, yr, "logistic", n_regs=0 if bad else 2, distributed=True)),
        ("X", lambda: spike_dictionary(_net(), X[0] if bad else X, distributed=True)),
        ("memory_limit", lambda: spike_dictionary(_net(), X, memory_limit=10 if bad else None,
                                                  distributed=True)),
    ]


def _check_errors(r):
    """Every bad-argument case on this rank: (name, exception type or None, message)."""
    errors = []
    for name, call in _bad_argument_cases(r):
        try:
            call()
            errors.append((name, None, None))
        except (ValueError, TypeError) as err:
            errors.append((name, type(err).__name__, str(err)))
    return errors


def _assert_checks_agree(err0, err1):
    """A bad argument on rank 1 raised on both ranks: rank 1 its own error naming the argument,
    rank 0 a ValueError naming rank 1 (the later solves of the same run show the ranks stayed in
    step)."""
    assert len(err0) == len(err1) == len(_bad_argument_cases(0))
    for (name, kind0, msg0), (_, kind1, msg1) in zip(err0, err1):
        assert kind1 is not None and name in msg1, (name, msg1)
        assert kind0 == "ValueError", (name, kind0)
        assert "rank 1 of the process group rejected its input" in msg0, (name, msg0)


def _rank_solves(r, w):
    from spikecvx.convex import sharded

    sharded.SOFTMAX_GATHER_MAX_BYTES = 0  # every softmax working set on the rank-local rows
    D, labels, weights = _data()
    rows_all = _rows(w)
    mine = _shards(w)[r]
    out = {"checks": _check_errors(r) if w == 2 else None}  # first: the solves below run after them
    for loss, pen in CASES:
        y = labels[loss]
        reg = _reg(loss, pen, D[rows_all], y[rows_all])
        res = solve(D[mine], y[mine], loss, pen, reg=reg, tol=TOL, max_iter=200, distributed=True)
        top = reg_max(D[mine], y[mine], loss, pen, distributed=True)
        out[loss, pen] = (res.coef, res.primal, res.dual, res.gap, res.converged, top)
    # sample weights, and a short path with warm starts
    y = labels["logistic"]
    sw = weights[rows_all]
    reg = _reg("logistic", "l1", D[rows_all], y[rows_all], sw)
    res = solve(D[mine], y[mine], "logistic", "l1", reg=reg, tol=TOL, sample_weight=weights[mine],
                distributed=True)
    out["weighted"] = (res.coef, res.primal)
    y = labels["softmax"]
    reg = _reg("softmax", "group_l1", D[rows_all], y[rows_all], sw)
    res = solve(D[mine], y[mine], "softmax", "group_l1", reg=reg, tol=TOL, sample_weight=weights[mine],
                distributed=True)
    out["softmax_weighted"] = (res.primal, res.gap)
    sharded.SOFTMAX_GATHER_MAX_BYTES = np.inf  # softmax working sets gathered on rank 0
    reg = _reg("softmax", "l1", D[rows_all], y[rows_all])
    res = solve(D[mine], y[mine], "softmax", "l1", reg=reg, tol=TOL, distributed=True)
    out["softmax_gathered"] = (res.coef, res.primal, res.gap)
    sharded.SOFTMAX_GATHER_MAX_BYTES = 0
    results = path(D[mine], labels["softmax"][mine], "softmax", "l1", n_regs=3, min_ratio=0.1, tol=TOL,
                   distributed=True)
    out["path"] = [(p.reg, p.primal, p.coef) for p in results]
    try:  # ranks that disagree on reg all raise, instead of desynchronising the collectives
        solve(D[mine], labels["logistic"][mine], "logistic", "l1", reg=0.01 * (r + 1), distributed=True)
        out["disagree"] = None
    except ValueError as err:
        out["disagree"] = str(err)
    return out


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_solves_equal_the_one_process_solve(world):
    res = run_ranks(_rank_solves, world, timeout=120)
    if world == 2:
        _assert_checks_agree(res[0]["checks"], res[1]["checks"])
    D, labels, weights = _data()
    rows = _rows(world)
    Dc = D[rows]
    for loss, pen in CASES:
        y = labels[loss][rows]
        reg = _reg(loss, pen, Dc, y)
        ref = solve(Dc, y, loss, pen, reg=reg, tol=TOL, max_iter=200)
        assert ref.converged and np.count_nonzero(ref.coef) > 0
        for out in res:
            coef, primal, dual, gap, converged, top = out[loss, pen]
            assert converged, (loss, pen)
            assert top == pytest.approx(reg_max(Dc, y, loss, pen), rel=1e-12)
            # both primals lie in [optimum, optimum + their gap], each gap <= TOL |primal|
            assert abs(primal - ref.primal) <= max(gap, ref.gap) + 1e-14, (loss, pen)
            assert primal == pytest.approx(ref.primal, rel=1e-9), (loss, pen)
            assert abs(dual - ref.dual) <= max(gap, ref.gap) + 1e-14, (loss, pen)
            assert -1e-12 <= gap <= TOL * max(1.0, abs(primal))  # exact solves: gap at rounding level
            np.testing.assert_array_equal(coef, res[0][loss, pen][0])  # the same on every rank
    y, sw = labels["logistic"][rows], weights[rows]
    ref = solve(Dc, y, "logistic", "l1", reg=_reg("logistic", "l1", Dc, y, sw), tol=TOL, sample_weight=sw)
    for out in res:
        assert out["weighted"][1] == pytest.approx(ref.primal, rel=1e-9)
        assert out["disagree"] is not None and "differ between the ranks" in out["disagree"]
    y = labels["softmax"][rows]
    ref = solve(Dc, y, "softmax", "group_l1", reg=_reg("softmax", "group_l1", Dc, y, sw), tol=TOL,
                sample_weight=sw)
    ref_l1 = solve(Dc, y, "softmax", "l1", reg=_reg("softmax", "l1", Dc, y), tol=TOL)
    for out in res:
        primal, gap = out["softmax_weighted"]
        assert primal == pytest.approx(ref.primal, rel=1e-9) and gap <= TOL * max(1.0, abs(primal))
        coef, primal, gap = out["softmax_gathered"]
        assert primal == pytest.approx(ref_l1.primal, rel=1e-9) and gap <= TOL * max(1.0, abs(primal))
        np.testing.assert_array_equal(coef, res[0]["softmax_gathered"][0])
        assert primal == pytest.approx(res[0]["softmax", "l1"][1], rel=1e-9)  # both ways agree
    refs = path(Dc, labels["softmax"][rows], "softmax", "l1", n_regs=3, min_ratio=0.1, tol=TOL)
    for out in res:
        assert len(out["path"]) == 3
        for (reg, primal, _), r in zip(out["path"], refs):
            assert reg == pytest.approx(r.reg, rel=1e-12) and primal == pytest.approx(r.primal, rel=1e-9)


class _CountingComm:
    """A one-rank communicator that records every collective (name, payload size)."""

    rank, world_size = 0, 1

    def __init__(self):
        self.calls = []

    def _log(self, name, a):
        a = np.asarray(a)
        self.calls.append((name, a.size))
        return a

    def allreduce_sum(self, a):
        return np.array(self._log("allreduce", a), dtype=np.float64)

    def allreduce_min(self, a):
        return np.array(self._log("allreduce", a), dtype=np.float64)

    def allgather(self, a):
        return [self._log("allgather", a).copy()]

    def gather(self, a):
        return [self._log("gather", a).copy()]

    def broadcast_object(self, obj):
        self.calls.append(("broadcast", 0))
        return obj


@pytest.mark.parametrize("pen", ["l1", "group_l1"])
def test_sharded_softmax_sends_no_rows(pen, monkeypatch):
    """The sharded softmax subproblem moves sums only: nothing is gathered, and no all-reduce is
    larger than twice D^T U (P x C; the gradient and the Hessian's diagonal of a working set of
    every column), however many rows there are; the result is the one-process one."""
    from spikecvx.convex import sharded

    monkeypatch.setattr(sharded, "SOFTMAX_GATHER_MAX_BYTES", 0)
    rng = np.random.default_rng(1)
    n, p = 600, 30
    D = (rng.random((n, p)) < 0.3).astype(np.uint8)
    y = np.argmax(D[:, :4] @ rng.normal(size=(4, 3)) + 0.5 * rng.normal(size=(n, 3)), axis=1)
    reg = reg_max(D, y, "softmax", pen) / 8
    ref = solve(D, y, "softmax", pen, reg=reg, tol=TOL)
    comm = _CountingComm()
    res = solve(D, y, "softmax", pen, reg=reg, tol=TOL, distributed=comm)
    assert res.converged and res.primal == pytest.approx(ref.primal, rel=1e-9)
    assert np.count_nonzero(res.coef) > 0
    names = {name for name, _ in comm.calls}
    assert "gather" not in names
    assert max(size for name, size in comm.calls if name == "allreduce") <= 2 * p * 3
    # Hessian-vector products: many all-reduces of exactly |ws| x C numbers
    assert sum(size == p * 3 for name, size in comm.calls if name == "allreduce") > 10
