"""Hinge + L1 along regularisation paths: spikecvx.convex.path against CVXPY + Clarabel.

Instances:
  dense     random binary 2000 x 1000 (density 0.4), one solve at reg_max / 50 (bench_convex's "xor")
  ovr       the same kind of matrix with 4 classes (the argmax of 4 random linear scores of its first
            50 columns), hinge_ovr + L1 (one linear program per class), one solve at reg_max / 50
  ovr-group the ovr instance with hinge_ovr + group L1 (a second-order cone program), one solve at
            reg_max / 50
  xorT      the FIRST-LAST-XOR dictionary of the quick preset at sequence length T (2000 training
            sequences, seed 1; witness network seed 0, last width 2000 for T < 11, else 8000) along
            the quick preset's path: 6 values from reg_max to reg_max / 1000, warm-started
spikecvx runs ``path`` as the experiments do (repeated rows merged, the hinge LPs and their bases
kept from one value to the next). With --lp the same path is also run by the LP engine alone
(``hinge_fast`` with the identified vertex of ``hinge_vertex`` switched off: HiGHS's dual simplex
and interior point method), in the same process. Each timing is the best of --repeat runs, wall clock and (in
brackets) the process's CPU time, which a machine shared with other work inflates less; run
single-threaded (OMP_NUM_THREADS=1 etc.) to compare engines on equal terms. With --cvxpy every
value of every instance is also solved by CVXPY + Clarabel on the same objective (all rows, as a
user would write it), and the ratio of the two times is printed with the largest relative
difference of the objectives. --unscreened also runs the path with the identifier's screening
off (``hinge_vertex.SCREEN`` empty: every interior point iteration on the whole problem) and
prints its time after the row. --floor first prints the least one interior point iteration on the
dense instance's shape costs (its normal matrix and Cholesky factorisation, best of 15);
--first-order prints the relative gap a restarted first-order method (PDHG) reaches on the dense
instance after 100 to 5000 iterations, with its time.

Usage:  python benchmarks/bench_hinge.py [--instances dense ovr ovr-group xor6 xor8 xor11 xor14]
        [--repeat 2] [--lp] [--cvxpy] [--cache DIR] [--floor] [--first-order]
        [--unscreened]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _machine import machine_line

from spikecvx.convex import _dense, hinge_fast, hinge_vertex, path, reg_grid, reg_max


def _matrix_and_scores(n, p, density, seed):
    """Random binary n x p matrix and 10 random linear scores of its first 50 columns."""
    rng = np.random.default_rng(seed)
    D = np.empty((n, p), dtype=np.uint8)
    for a in range(0, n, 1000):
        D[a : a + 1000] = rng.random((min(1000, n - a), p)) < density
    return D, D[:, :50].astype(float) @ rng.normal(size=(50, 10))


def dense_problem(n=2000, p=1000, density=0.4, seed=0):
    """The same instance as bench_convex.py's hinge row: labels +-1 by the first score's median."""
    D, score = _matrix_and_scores(n, p, density, seed)
    return D, np.where(score[:, 0] > np.median(score[:, 0]), 1.0, -1.0)


def multiclass_problem(n=2000, p=1000, density=0.4, classes=4, seed=0):
    """``dense_problem``'s matrix with integer labels: the argmax of its first ``classes`` scores."""
    D, score = _matrix_and_scores(n, p, density, seed)
    return D, np.argmax(score[:, :classes], axis=1)


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


def cached(folder, name, build, *args):
    """build(*args), or its (D, y) saved in folder/name.npz by an earlier run."""
    if folder is None:
        return build(*args)
    file = os.path.join(folder, f"{name}.npz")
    if not os.path.exists(file):
        D, y = build(*args)
        np.savez_compressed(file, D=np.asarray(D), y=y)
    data = np.load(file)
    return data["D"], data["y"]


def run_path(D, y, regs, lp_only=False, loss="hinge", penalty="l1"):
    saved = hinge_fast.VERTEX_MAX_ENTRIES
    hinge_fast.VERTEX_MAX_ENTRIES = 0 if lp_only else saved
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        results = path(D, y, loss, penalty, regs=regs)
        return time.perf_counter() - t0, time.process_time() - c0, [(r.primal, r.rel_gap) for r in results]
    finally:
        hinge_fast.VERTEX_MAX_ENTRIES = saved


def run_unscreened(D, y, regs, loss="hinge", penalty="l1"):
    saved = hinge_vertex.SCREEN
    hinge_vertex.SCREEN = {}
    try:
        return run_path(D, y, regs, False, loss, penalty)
    finally:
        hinge_vertex.SCREEN = saved


def run_cvxpy(D, y, regs, loss="hinge", penalty="l1"):
    """The same objective written in CVXPY as a user would, solved by Clarabel: the binary hinge on
    labels +-1, or (hinge_ovr) the sum of one-vs-rest hinges on integer classes; L1 or group L1."""
    import cvxpy as cp

    t0, c0, out = time.perf_counter(), time.process_time(), []
    Df = np.asarray(D, dtype=np.float64)
    if loss == "hinge_ovr":
        classes = np.unique(y)
        Y = np.where(y[:, None] == classes[None, :], 1.0, -1.0)
    else:
        Y = np.asarray(y, dtype=np.float64)[:, None]
    W = cp.Variable((D.shape[1], Y.shape[1]))
    reg = cp.Parameter(nonneg=True)
    pen = cp.sum(cp.norm(W, 2, axis=1)) if penalty == "group_l1" else cp.sum(cp.abs(W))
    prob = cp.Problem(cp.Minimize(cp.sum(cp.pos(1 - cp.multiply(Y, Df @ W))) / len(y) + reg * pen))
    for value in regs:
        reg.value = float(value)
        prob.solve(solver=cp.CLARABEL)
        out.append(prob.value)
    return time.perf_counter() - t0, time.process_time() - c0, out




def best_of(k, fn, *args):
    runs = [fn(*args) for _ in range(k)]
    return min(runs, key=lambda r: r[0])


def ipm_floor(repeat: int = 15) -> None:
    """The least an interior point iteration on the dense instance's shape costs, with the kernels
    the identifier calls (``_dense.syrk``: BLAS syrk; SciPy's Cholesky): the normal matrix
    A^T diag(d) A (1000 x 1000 from 2000 rows, the scaled copy included) and its Cholesky
    factorisation, best of ``repeat``, in float32 and float64 with one and two BLAS threads; then
    the Cholesky factorisation of the ovr-group cone program's coefficient-space matrix (4 outputs:
    4000 x 4000), best of 3."""
    import scipy.linalg as sla
    from threadpoolctl import threadpool_limits

    D, _ = dense_problem()
    d64 = np.random.default_rng(1).random(D.shape[0]) + 0.1
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            for dtype in (np.float32, np.float64):
                A, d = np.asfortranarray(D, dtype=dtype), d64.astype(dtype)
                form = factor = np.inf
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    M = _dense.syrk(np.asfortranarray(A * np.sqrt(d)[:, None]), rows=False)
                    t1 = time.perf_counter()
                    M[np.diag_indices(len(M))] += 1e-3
                    sla.cho_factor(M, check_finite=False)
                    form, factor = min(form, t1 - t0), min(factor, time.perf_counter() - t1)
                print(f"interior point iteration floor, {threads} BLAS thread(s), {np.dtype(dtype).name}: "
                      f"normal matrix {1e3 * form:.1f} ms + Cholesky {1e3 * factor:.1f} ms = "
                      f"{1e3 * (form + factor):.1f} ms", flush=True)
    # ovr-group: a Newton system of the cone program in the coefficient space is (p C) x (p C)
    with threadpool_limits(1, user_api="blas"):
        for dtype in (np.float32, np.float64):
            B = np.asfortranarray(np.random.default_rng(2).random((D.shape[0], 4 * D.shape[1])), dtype=dtype)
            M = _dense.syrk(B, rows=False)
            M[np.diag_indices(len(M))] += len(M)
            factor = np.inf
            for _ in range(3):
                t0 = time.perf_counter()
                sla.cho_factor(M, check_finite=False)
                factor = min(factor, time.perf_counter() - t0)
            print(f"ovr-group cone program, 1 BLAS thread, {np.dtype(dtype).name}: Cholesky of the "
                  f"{len(M)} x {len(M)} coefficient-space matrix {1e3 * factor:.0f} ms", flush=True)


def first_order(iters: int = 5000, checkpoints=(100, 500, 1000, 2000, 5000)) -> None:
    """Restarted primal-dual hybrid gradient (PDHG, the first-order method of PDLP) on the dense
    instance's saddle point min_w max_{0 <= a <= 1} sum_i s_i a_i (1 - y_i x_i w) + reg ||w||_1:
    the certificate's relative gap (``hinge_fast.certificate``) at ``checkpoints`` iterations, for
    three primal weights and restart periods, each on one BLAS thread."""
    from threadpoolctl import threadpool_limits

    D, y = dense_problem()
    reg = reg_max(D, y, "hinge", "l1") / 50
    n, p = D.shape
    s = np.full(n, 1.0 / n)
    K = s[:, None] * (y[:, None] * np.asarray(D, dtype=np.float64))
    norm = float(np.linalg.norm(K, 2))
    for omega, period in ((0.3, 1000), (1.0, 200), (0.3, 50)):
        tau, sigma = 0.9 * omega / norm, 0.9 / (omega * norm)
        w, a, w_sum, a_sum, k = np.zeros(p), np.zeros(n), np.zeros(p), np.zeros(n), 0
        line, elapsed = [], 0.0
        with threadpool_limits(1, user_api="blas"):
            for it in range(1, iters + 1):
                t0 = time.perf_counter()
                w_new = w + tau * (K.T @ a)
                w_new = np.sign(w_new) * np.maximum(np.abs(w_new) - tau * reg, 0.0)
                a = np.clip(a + sigma * (s - K @ (2.0 * w_new - w)), 0.0, 1.0)
                w = w_new
                w_sum += w
                a_sum += a
                k += 1
                if it % period == 0:  # restart from the average of the period
                    w, a = w_sum / k, a_sum / k
                    w_sum[:], a_sum[:], k = 0.0, 0.0, 0
                elapsed += time.perf_counter() - t0
                if it in checkpoints:
                    gap = hinge_fast.certificate(D, y, w, a, reg)["rel_gap"]
                    line.append(f"{it}: {gap:.1e} ({elapsed:.2f} s)")
        print(f"restarted PDHG, primal weight {omega}, restart every {period}: " + ", ".join(line),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--instances", nargs="+", default=["dense", "xor6", "xor8", "xor11"])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--lp", action="store_true", help="also run the LP engine alone (no vertex identifier)")
    ap.add_argument("--cvxpy", action="store_true")
    ap.add_argument("--cache", metavar="DIR", help="keep the XOR dictionaries in DIR (NAME.npz) between runs")
    ap.add_argument("--floor", action="store_true",
                    help="also print the least an interior point iteration on the dense shape costs")
    ap.add_argument("--first-order", action="store_true",
                    help="also print how far restarted PDHG (first-order) gets on the dense instance")
    ap.add_argument("--unscreened", action="store_true",
                    help="also run the path with the identifier's screening off")
    args = ap.parse_args()
    print(machine_line())
    if args.floor:
        ipm_floor()
    if args.first_order:
        first_order()
    print("| instance | regs | spikecvx path s (CPU s) | worst rel. gap | LP engine s (CPU s) | "
          "worst rel. gap | speed-up vs LP (wall / CPU) | CVXPY + Clarabel s (CPU s) | "
          "speed-up vs CVXPY (wall / CPU) | "
          "max rel. objective diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.instances:
        loss, penalty = "hinge", "l1"
        if name == "dense":
            D, y = dense_problem()
            regs = [reg_max(D, y, "hinge") / 50]
        elif name in ("ovr", "ovr-group"):
            D, y = multiclass_problem()
            loss, penalty = "hinge_ovr", "group_l1" if name == "ovr-group" else "l1"
            regs = [reg_max(D, y, loss, penalty) / 50]
        elif name.startswith("xor"):
            D, y = cached(args.cache, name, xor_problem, int(name[3:]))
            regs = reg_grid(D, y, "hinge", "l1", 6, 1e-3)
        else:
            raise SystemExit(f"unknown instance {name!r}")
        t, c, ours = best_of(args.repeat, run_path, D, y, regs, False, loss, penalty)
        worst = max(g for _, g in ours)
        row = f"| {name} {D.shape[0]}x{D.shape[1]} | {len(regs)} | {t:.2f} ({c:.2f}) | {worst:.1e} |"
        diff = 0.0
        if args.lp:
            t_lp, c_lp, lp = best_of(args.repeat, run_path, D, y, regs, True, loss, penalty)
            diff = max(abs(a - b) / max(1.0, abs(b)) for (a, _), (b, _) in zip(ours, lp))
            worst_lp = max(g for _, g in lp)
            row += f" {t_lp:.2f} ({c_lp:.2f}) | {worst_lp:.1e} | {t_lp / t:.1f}x / {c_lp / c:.1f}x |"
        else:
            row += " | | |"
        if args.cvxpy:
            t_ref, c_ref, ref = run_cvxpy(D, y, regs, loss, penalty)
            diff = max(diff, max(abs(a - b) / max(1.0, abs(b)) for (a, _), b in zip(ours, ref)))
            row += f" {t_ref:.2f} ({c_ref:.2f}) | {t_ref / t:.1f}x / {c_ref / c:.1f}x |"
        else:
            row += " | |"
        print(row + f" {diff:.1e} |", flush=True)
        if args.unscreened:
            t_u, c_u, un = best_of(args.repeat, run_unscreened, D, y, regs, loss, penalty)
            diff_u = max(abs(a - b) / max(1.0, abs(b)) for (a, _), (b, _) in zip(ours, un))
            worst_u = max(g for _, g in un)
            print(f"  {name} unscreened: {t_u:.2f} s ({c_u:.2f}), worst rel. gap {worst_u:.1e}, "
                  f"screening speed-up {t_u / t:.2f}x / {c_u / c:.2f}x, max rel. objective diff {diff_u:.1e}",
                  flush=True)


if __name__ == "__main__":
    main()
