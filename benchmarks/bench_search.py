"""Witness search on FIRST-LAST-XOR (the ``run_xor`` protocol: seeds 1000 s + 1 / 2 / 3, membrane
readout at the last step, hinge + L1), against random witnesses of the same dictionary size.

    python benchmarks/bench_search.py --T 11 --last-width 1000 --rounds 6 --random 1000 --ascent 500

Prints one JSON line per run (search, and ``--compare`` the CVX method on a random dictionary
as large as the grown one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from spikecvx.convex import solve
from spikecvx.dictionary import sample_witnesses
from spikecvx.snn import ParallelSNN
from spikecvx.tasks import first_last_xor
from spikecvx.train import Head, fit_cvx
from spikecvx.train.search import BoostBranch, DualAscent, RandomPool, grown_network, search


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--T", type=int, default=11)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--last-width", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--random", type=int, default=0, help="random candidates per round")
    p.add_argument("--ascent", type=int, default=0, help="dual-ascent candidates per round")
    p.add_argument("--ascent-steps", type=int, default=30)
    p.add_argument("--fresh", type=int, default=0, help="dual-ascent candidates on a fresh random trunk")
    p.add_argument("--branch", type=int, default=0, help="last width of a boosted branch per round")
    p.add_argument("--branch-epochs", type=int, default=5)
    p.add_argument("--reg-ratio", type=float, default=0.01)
    p.add_argument("--max-add", type=int, default=None)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--select", action="store_true", help="reg chosen on validation, grown dictionary")
    p.add_argument("--compare", action="store_true", help="also CVX with random witnesses, same size")
    p.add_argument("--compare-width", type=int, default=None, help="last width of that comparison")
    a = p.parse_args()
    s = a.seed
    Xtr, ytr = first_last_xor(2000, a.T, seed=1000 * s + 1)
    Xva, yva = first_last_xor(2000, a.T, seed=1000 * s + 2)
    Xte, yte = first_last_xor(4000, a.T, seed=1000 * s + 3)
    kw = dict(layers=3, branches=2, width=a.width, readout="membrane", readout_at="last")
    net = ParallelSNN(2, 1, last_width=a.last_width, seed=s, **kw)
    sample_witnesses(net, "standard", 1.0, s)
    gens = []
    if a.random:
        gens.append(RandomPool(a.random))
    if a.ascent:
        gens.append(DualAscent(a.ascent, steps=a.ascent_steps))
    if a.fresh:
        gens.append(DualAscent(a.fresh, steps=a.ascent_steps, fresh_trunk=True, seed=5))
    if a.branch:
        gens.append(BoostBranch(layers=3, width=a.branch // 2, last_width=a.branch, epochs=a.branch_epochs))
    t0 = time.perf_counter()
    sr = search(Xtr, ytr, net, gens, loss="hinge", penalty="l1", reg_ratio=a.reg_ratio, X_val=Xva,
                y_val=yva, max_rounds=a.rounds, max_add=a.max_add, max_seconds=a.max_seconds, seed=s,
                verbose=True)
    t_search = time.perf_counter() - t0
    g = grown_network(sr)
    with torch.no_grad():
        acc = float(np.mean(np.where(g(torch.as_tensor(Xte))[:, 0].numpy() >= 0, 1, -1) == yte))
    kept = int(np.count_nonzero(sr.result.coef))
    hidden = sum(b.width * (b.layers - 2) for b in g.blocks)
    print(json.dumps(dict(run="search", T=a.T, args=vars(a), test_acc=acc, columns=sr.n_columns,
                          neurons_kept=kept, deployed_blocks=len(g.blocks), deployed_sources=g.sources,
                          deployed_hidden=hidden, deployed_readout=g.n_neurons,
                          seconds=round(t_search, 1), statement=sr.statement,
                          log=[{k: v for k, v in e.items()} for e in sr.log])), flush=True)
    if a.select:  # a short path on the grown dictionary, reg chosen on validation
        best = None
        for f in (8.0, 4.0, 2.0, 1.0):
            r = solve(sr.dictionary, ytr, "hinge", "l1", reg=sr.result.reg * f, tol=1e-6)
            val = float(np.mean(np.where(sr.val_dictionary @ r.coef >= 0, 1, -1) == yva))
            if best is None or val > best[0]:
                best = (val, f, r)
        g2 = grown_network(dataclasses.replace(sr, result=best[2]))
        with torch.no_grad():
            acc2 = float(np.mean(np.where(g2(torch.as_tensor(Xte))[:, 0].numpy() >= 0, 1, -1) == yte))
        print(json.dumps(dict(run="search+select", T=a.T, reg_factor=best[1], val_acc=best[0], test_acc=acc2,
                              neurons_kept=int(np.count_nonzero(best[2].coef)))), flush=True)
    if a.compare:
        width = a.compare_width or int(np.ceil(sr.n_columns / 2) * 2)
        t0 = time.perf_counter()
        model, rep = fit_cvx(Xtr, ytr, Xva, yva, dict(kw, last_width=width), heads=[Head("y", 1, "hinge")],
                             seed=s, n_regs=6)
        with torch.no_grad():
            acc_r = float(np.mean(np.where(model(torch.as_tensor(Xte))[:, 0].numpy() >= 0, 1, -1) == yte))
        print(json.dumps(dict(run="random-cvx", T=a.T, last_width=width, test_acc=acc_r,
                              neurons_kept=rep["neurons_kept"], seconds=round(time.perf_counter() - t0, 1))),
              flush=True)


if __name__ == "__main__":
    main()
