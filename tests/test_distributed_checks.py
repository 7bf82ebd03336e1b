"""Rank-local input checks agree across ranks: when one rank's arguments are bad, every rank
raises ValueError (the bad rank its own message, naming the argument; its peers one naming that
rank) and the ranks stay in step, so the next call on the same process group works."""

from __future__ import annotations

import numpy as np
import torch
from dist_harness import run_ranks

from spikecvx import ParallelSNN, spike_dictionary
from spikecvx.convex import path, reg_max, solve
from spikecvx.convex.sharded import prepare_sharded
from spikecvx.distributed import communicator


def _data():
    rng = np.random.default_rng(3)
    D = (rng.random((30, 12)) < 0.4).astype(np.uint8)
    y = np.where(D[:, 0] + rng.random(30) > 0.9, 1.0, -1.0)
    return D, y


def _net():
    return ParallelSNN(d_in=3, n_out=2, layers=2, branches=2, width=8, last_width=16, seed=0)


def _cases(r):
    """(name, call): each call passes a bad argument on rank 1 only."""
    D, y = _data()
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


def _rank(r, w):
    errors = []
    for name, call in _cases(r):
        try:
            call()
            errors.append((name, None, None))
        except (ValueError, TypeError) as err:
            errors.append((name, type(err).__name__, str(err)))
    D, y = _data()  # the group is still in step: a sharded solve runs and agrees
    rows = np.arange(0, 14) if r == 0 else np.arange(14, 30)
    res = solve(D[rows], y[rows], "logistic", reg=0.01, tol=1e-8, distributed=True)
    return errors, res.primal, res.coef


def test_a_bad_argument_on_one_rank_raises_on_every_rank():
    res = run_ranks(_rank, 2, timeout=60)
    (err0, primal0, coef0), (err1, primal1, coef1) = res
    assert len(err0) == len(err1) == len(_cases(0))
    for (name, kind0, msg0), (_, kind1, msg1) in zip(err0, err1):
        assert kind1 is not None and name in msg1, (name, msg1)  # the bad rank names the argument
        assert kind0 == "ValueError", (name, kind0)
        assert "rank 1 of the process group rejected its input" in msg0, (name, msg0)
    D, y = _data()
    ref = solve(D, y, "logistic", reg=0.01, tol=1e-8)
    assert primal0 == primal1 and np.array_equal(coef0, coef1)
    assert abs(primal0 - ref.primal) <= 1e-9 * abs(ref.primal)
