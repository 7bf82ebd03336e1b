"""Witness search on addition (the ``run_addition`` protocol: 2304 / 512 training / validation
sequences of 5 columns, spike readout at every step, softmax heads for the sum digit and the
carry, autoregressive evaluation at 5 / 10 / 25 / 50 columns), seed 0.

    python benchmarks/bench_search_addition.py --base 5 --rounds 6 --ascent 512 --max-seconds 300
"""

from __future__ import annotations

import argparse
import json
import time

from spikecvx.tasks import addition
from spikecvx.tasks.addition import carry_classes, rollout_metrics
from spikecvx.train import Head
from spikecvx.train.search import DualAscent, RandomPool, fit_search


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beta", type=float, default=0.0)
    p.add_argument("--witness-scale", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--ascent", type=int, default=512)
    p.add_argument("--random", type=int, default=0)
    p.add_argument("--reg-ratio", type=float, default=0.01)
    p.add_argument("--max-add", type=int, default=500)
    p.add_argument("--max-seconds", type=float, default=300, help="budget of the whole fit (both heads)")
    a = p.parse_args()
    base, s = a.base, a.seed
    A = addition(2304, 5, base, 10 * s + 1)
    Av = addition(512, 5, base, 10 * s + 2)
    tests = {n: addition(1024, n, base, 10 * s + 5 + n) for n in (5, 10, 25, 50)}
    heads = [Head("sum", base, "softmax"), Head("carry", carry_classes(base), "softmax")]
    kw = dict(layers=3, branches=2, width=256, last_width=512, beta=a.beta, readout="spike",
              readout_at="every")
    gens = []
    if a.ascent:
        gens.append(DualAscent(a.ascent))
    if a.random:
        gens.append(RandomPool(a.random, scale=a.witness_scale))
    t0 = time.perf_counter()
    net, rep = fit_search(A.X, [A.sum, A.carry], Av.X, [Av.sum, Av.carry], kw, heads=heads,
                          generators=gens, reg_ratio=a.reg_ratio, max_rounds=a.rounds, max_add=a.max_add,
                          max_seconds=a.max_seconds, witness_scale=a.witness_scale, seed=s, progress=True)
    seconds = time.perf_counter() - t0

    metrics = rollout_metrics(net, tests, base)
    print(json.dumps(dict(run="search-addition", args=vars(a), metrics=metrics, seconds=round(seconds, 1),
                          neurons_kept=rep.neurons_kept, blocks=len(net.blocks),
                          readout_neurons=net.n_neurons,
                          heads={k: dict(val_acc=h.val_acc, columns=h.search.columns,
                                         statement=h.search.statement,
                                         rounds=[(e.round, round(e.objective, 5), e.val_score,
                                                  round(e.max_violation or 0, 2), e.added)
                                                 for e in h.search.rounds])
                                 for k, h in rep.heads.items()})), flush=True)


if __name__ == "__main__":
    main()
