"""Hinge + L1: the working-set solver (``spikecvx.convex.solve``) against the column-generation
solver (``spikecvx.convex.hinge_fast.solve_hinge_l1``), side by side in one process.

Instances:
  dense     random binary 2000 x 1000 (density 0.4), one solve at reg_max / 50 (bench_convex's "xor")
  xorT      the FIRST-LAST-XOR dictionary of the quick preset at sequence length T (2000 training
            sequences, seed 1; witness network seed 0, last width 2000 for T < 11, else 8000) along
            the quick preset's path: 6 values from reg_max to reg_max / 1000, warm-started
Each timing is the best of --repeat runs, wall clock and (in brackets) the process's CPU time, which
a machine shared with other work inflates less; both engines run single-threaded here (set
OMP_NUM_THREADS=1). The objectives and relative gaps of both are printed.
With --cvxpy the dense instance is also solved by CVXPY + Clarabel.

Usage:  python benchmarks/bench_hinge.py [--instances dense xor6 xor8 xor11 xor14] [--repeat 2] [--cvxpy]
        [--skip-old xor14]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from spikecvx.convex import reg_grid, reg_max, solve
from spikecvx.convex.hinge_fast import solve_hinge_l1


def dense_problem(n=2000, p=1000, density=0.4, seed=0):
    """The same instance as bench_convex.py's hinge row."""
    rng = np.random.default_rng(seed)
    D = np.empty((n, p), dtype=np.uint8)
    for a in range(0, n, 1000):
        D[a : a + 1000] = rng.random((min(1000, n - a), p)) < density
    score = D[:, :50].astype(float) @ rng.normal(size=(50, 10))
    y = np.where(score[:, 0] > np.median(score[:, 0]), 1.0, -1.0)
    return D, y


def xor_problem(T: int):
    import torch

    import spikecvx as sc
    from spikecvx.dictionary import sample_witnesses, spike_dictionary
    from spikecvx.tasks import first_last_xor

    X, y = first_last_xor(2000, T, seed=1)
    net = sc.ParallelSNN(d_in=2, n_out=1, layers=3, branches=2, width=500,
                         last_width=8000 if T >= 11 else 2000, readout="membrane", readout_at="last", seed=0)
    sample_witnesses(net, "standard", 1.0, 0)
    return spike_dictionary(net, torch.as_tensor(X), dedup=True).matrix, y


def run_old(D, y, regs):
    t0, c0, W, out = time.perf_counter(), time.process_time(), None, []
    for reg in regs:
        r = solve(D, y, "hinge", "l1", reg=float(reg), warm_start=W)
        W = r.coef
        out.append((r.primal, r.rel_gap))
    return time.perf_counter() - t0, time.process_time() - c0, out


def run_new(D, y, regs):
    t0, c0, W, state, out = time.perf_counter(), time.process_time(), None, None, []
    for reg in regs:
        W, _, info = solve_hinge_l1(D, y, float(reg), warm_start=W, state=state)
        state = info["state"]
        out.append((info["primal"], info["rel_gap"]))
    return time.perf_counter() - t0, time.process_time() - c0, out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def best_of(k, fn, *args):
    runs = [fn(*args) for _ in range(k)]
    return min(runs, key=lambda r: r[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--instances", nargs="+", default=["dense", "xor6", "xor8", "xor11"])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cvxpy", action="store_true")
    ap.add_argument("--skip-old", nargs="*", default=[], metavar="INSTANCE",
                    help="instances timed for hinge_fast alone (the working-set solver takes many minutes)")
    args = ap.parse_args()
    print(f"{cpu_name()}, {os.cpu_count()} logical CPUs, {time.strftime('%Y-%m-%d')}")
    print("| instance | regs | solve s (CPU s) | hinge_fast s (CPU s) | speed-up | max rel. objective diff | "
          "worst rel. gap (solve / hinge_fast) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.instances:
        if name == "dense":
            D, y = dense_problem()
            regs = [reg_max(D, y, "hinge") / 50]
        elif name.startswith("xor"):
            D, y = xor_problem(int(name[3:]))
            regs = reg_grid(D, y, "hinge", "l1", 6, 1e-3)
        else:
            raise SystemExit(f"unknown instance {name!r}")
        t_new, c_new, new = best_of(args.repeat, run_new, D, y, regs)
        if name in args.skip_old:
            print(f"| {name} {D.shape[0]}x{D.shape[1]} | {len(regs)} | (not run) | "
                  f"{t_new:.2f} ({c_new:.2f}) | | | - / {max(g for _, g in new):.1e} |", flush=True)
            continue
        t_old, c_old, old = best_of(args.repeat, run_old, D, y, regs)
        diff = max(abs(a[0] - b[0]) / max(1.0, abs(a[0])) for a, b in zip(old, new))
        print(f"| {name} {D.shape[0]}x{D.shape[1]} | {len(regs)} | {t_old:.2f} ({c_old:.2f}) | "
              f"{t_new:.2f} ({c_new:.2f}) | "
              f"{t_old / t_new:.2f}x | {diff:.1e} | {max(g for _, g in old):.1e} / "
              f"{max(g for _, g in new):.1e} |", flush=True)
        if name == "dense" and args.cvxpy:
            import cvxpy as cp

            w = cp.Variable(D.shape[1])
            obj = cp.sum(cp.pos(1 - cp.multiply(y, D.astype(float) @ w))) / len(y) + regs[0] * cp.norm1(w)
            prob = cp.Problem(cp.Minimize(obj))
            t0 = time.perf_counter()
            prob.solve(solver=cp.CLARABEL)
            print(f"| dense, CVXPY + Clarabel | 1 | {time.perf_counter() - t0:.2f} | | | "
                  f"{abs(prob.value - new[0][0]) / max(1.0, abs(new[0][0])):.1e} | |", flush=True)


if __name__ == "__main__":
    main()
