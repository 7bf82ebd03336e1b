"""Recurrent LIF witnesses: dictionary cost and first-last XOR accuracy against feed-forward ones.

``--part time``: one dictionary pass (400 samples x 40 steps, d_in 20, K = 4, width 256,
last_width 512) of a feed-forward network and of the same network with recurrent weights
(spectral radius 1), alternated --rounds times in one process; best times and their ratio.

``--part xor``: CVX over the spike dictionary of a 3-layer network (K = 2, width 100,
last_width 500) on first-last XOR (T = 11; 1000 training, 500 validation, 1000 test sequences),
the hinge loss at reg_max / {10, 30, 100, 300, 1000}, the best on validation; mean test
accuracy over witness seeds 0, 1, 2 for each recurrent spectral radius (0: feed-forward).

Usage:  python benchmarks/bench_recurrent.py --part time [--rounds 5]
        python benchmarks/bench_recurrent.py --part xor --beta 0.7 --radius 0 0.5 1 2 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from spikecvx import ParallelSNN, sample_witnesses, spike_dictionary
from spikecvx.convex import reg_max, solve
from spikecvx.tasks import first_last_xor


def bench_time(rounds: int) -> None:
    x = (torch.rand(400, 40, 20, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    for layers in (2, 3):
        nets = {}
        for rec in (False, True):
            net = ParallelSNN(20, 1, layers=layers, branches=4, width=256, last_width=512, seed=0,
                              recurrent=rec)
            nets[rec] = sample_witnesses(net, "standard", 1.0, seed=0)
            spike_dictionary(net, x[:2, :2])  # load the compiled kernels before timing
        best = {False: np.inf, True: np.inf}
        for _ in range(rounds):
            for rec, net in nets.items():
                t0 = time.perf_counter()
                spike_dictionary(net, x)
                best[rec] = min(best[rec], time.perf_counter() - t0)
        density = {rec: spike_dictionary(net, x).matrix.mean() for rec, net in nets.items()}
        print(f"L={layers}: feed-forward {best[False] * 1e3:.0f} ms, recurrent {best[True] * 1e3:.0f} ms, "
              f"ratio {best[True] / best[False]:.2f}; feature density {density[False]:.3f} / "
              f"{density[True]:.3f}", flush=True)


def bench_xor(beta: float, radii: list[float]) -> None:
    T = 11
    Xtr, ytr = first_last_xor(1000, T, seed=0)
    Xva, yva = first_last_xor(500, T, seed=1)
    Xte, yte = first_last_xor(1000, T, seed=2)
    for radius in radii:
        accs = []
        for seed in (0, 1, 2):
            net = ParallelSNN(2, 1, layers=3, branches=2, width=100, last_width=500, beta=beta, seed=0,
                              recurrent=radius > 0)
            sample_witnesses(net, "standard", 1.0, seed=seed, recurrent_scale=radius)
            D = spike_dictionary(net, Xtr, dedup=True)
            Dva = spike_dictionary(net, Xva).matrix[:, D.representative].astype(float)
            Dte = spike_dictionary(net, Xte).matrix[:, D.representative].astype(float)
            best = None
            for ratio in (10, 30, 100, 300, 1000):
                res = solve(D.matrix, ytr, "hinge", reg=reg_max(D.matrix, ytr, "hinge") / ratio)
                val = np.mean(np.sign(Dva @ res.coef) == yva)
                if best is None or val > best[0]:
                    best = (val, np.mean(np.sign(Dte @ res.coef) == yte))
            accs.append(best[1])
        print(f"beta={beta} radius={radius}: test {np.mean(accs):.3f} "
              f"(seeds {', '.join(f'{a:.3f}' for a in accs)})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("time", "xor"), required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--beta", type=float, default=0.99)
    ap.add_argument("--radius", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    args = ap.parse_args()
    if args.part == "time":
        bench_time(args.rounds)
    else:
        bench_xor(args.beta, args.radius)


if __name__ == "__main__":
    main()
