"""spikecvx.convex against CVXPY + Clarabel, scikit-learn, skglm and celer on the same instances.

Every method is asked for a tight certificate; the objective each reaches is printed so the
comparison is like for like. The "mnist" instance is the Sequential-MNIST preset's own CVX
dictionary (Gaussian witnesses, 6000 training images), solved along a warm-started path; with
--cvxpy-limit CVXPY + Clarabel is run on its first value and stopped after that many seconds
(the speed-up is then a lower bound). "mnist-part" is a corner of that dictionary small enough for
CVXPY to finish, so the two run side by side. skglm and celer rows appear when they are installed.

"memory" solves a synthetic binary dictionary (uint8, ``--memory-shape``, default 60000 x 16384)
with the squared loss in a fresh process and reports its peak resident memory above what the
process held once D was built, as a multiple of D's own size.

Usage:  python benchmarks/bench_convex.py [--instances xor softmax mnist mnist-part lasso memory]
        [--large] [--cvxpy-limit 1200] [--memory-shape 60000 16384]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
from _machine import machine_line

from spikecvx.convex import reg_max, solve


def binary_problem(n, p, loss, C=10, density=0.4, seed=0):
    rng = np.random.default_rng(seed)
    D = np.empty((n, p), dtype=np.uint8)
    for a in range(0, n, 1000):  # in row blocks: the float draws of 20000 x 50000 would take 8 GB
        D[a : a + 1000] = rng.random((min(1000, n - a), p)) < density
    k = min(50, p)
    score = D[:, :k].astype(float) @ rng.normal(size=(k, C))
    if loss == "hinge":
        y = np.where(score[:, 0] > np.median(score[:, 0]), 1.0, -1.0)
    elif loss == "softmax":
        y = np.argmax(score + rng.gumbel(size=score.shape), axis=1)
    else:
        y = score[:, 0] + rng.normal(size=n)
    return D, y


def mnist_dictionary():
    """The Sequential-MNIST preset's CVX dictionary: Gaussian witnesses (T=4, L=3, K=2, 512/1024),
    6000 training images, distinct columns only."""
    import torch

    import spikecvx as sc
    from spikecvx.tasks import sequential_mnist

    data = sequential_mnist(4, 6000, 2000, 2000, seed=0)
    X, y = data["train"]
    net = sc.ParallelSNN(X.shape[2], 10, layers=3, branches=2, width=512, last_width=1024, seed=0)
    D = sc.spike_dictionary(net, torch.as_tensor(X), dedup=True)
    return D.matrix, y


def cvxpy_solve(D, y, loss, reg, time_limit=None):
    """Solve with CVXPY + Clarabel; returns (seconds, objective or None if stopped at time_limit)."""
    import cvxpy as cp

    n, p = D.shape
    if loss == "hinge":
        w = cp.Variable(p)
        obj = cp.sum(cp.pos(1 - cp.multiply(y, D @ w))) / n + reg * cp.norm1(w)
    else:
        classes = np.unique(y)
        Y = (y[:, None] == classes[None]).astype(float)
        W = cp.Variable((p, len(classes)))
        Z = D @ W
        obj = (cp.sum(cp.log_sum_exp(Z, axis=1)) - cp.sum(cp.multiply(Y, Z))) / n + reg * cp.sum(cp.abs(W))
    prob = cp.Problem(cp.Minimize(obj))
    t0 = time.perf_counter()
    opts = {} if time_limit is None else {"time_limit": float(time_limit)}
    try:
        prob.solve(solver=cp.CLARABEL, **opts)
    except cp.error.SolverError:
        return time.perf_counter() - t0, None
    seconds = time.perf_counter() - t0
    hit_limit = time_limit is not None and seconds >= 0.99 * time_limit
    done = prob.status == "optimal" or (prob.status == "optimal_inaccurate" and not hit_limit)
    return seconds, prob.value if done else None


_MEMORY_CHILD = """
import resource, sys, time
import numpy as np
from spikecvx.convex import reg_max, solve
n, p = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
D = np.empty((n, p), dtype=np.uint8)
for a in range(0, n, 1000):
    D[a : a + 1000] = rng.random((min(1000, n - a), p), dtype=np.float32) < 0.3
y = D[:, :50] @ rng.normal(size=50) + rng.normal(size=n)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
reg = reg_max(D, y) / 10
r = solve(D, y, "squared", "l1", reg=reg)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(D.nbytes, max(0, peak - base), r.time, r.rel_gap, r.converged)
"""


def memory_row(n: int, p: int) -> None:
    """Peak memory of a solve on an n x p uint8 dictionary, measured in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(n), str(p)], check=True,
                         capture_output=True, text=True).stdout.split()
    nbytes, extra, seconds, gap = int(out[0]), int(out[1]), float(out[2]), float(out[3])
    print(f"| memory: {n}x{p} uint8 squared+L1, reg_max/10 | {seconds:.2f} | - | {gap:.1e} | "
          f"D {nbytes / 2**20:.0f} MiB; peak during the solve: +{extra / 2**20:.0f} MiB "
          f"({extra / nbytes:.2f}x D) | - | - | - |", flush=True)




def row(name, t_ours, obj_ours, gap, other, t_other, obj_other, at_least=False):
    """One markdown row; ``at_least``: the other method was stopped, so the ratio is a lower bound."""
    ratio = f"{'>= ' if at_least else ''}{t_other / t_ours:.3g}x" if t_other else "-"
    print(f"| {name} | {t_ours:.2f} | {obj_ours:.9g} | {gap:.1e} | {other} | {t_other:.2f} | "
          f"{obj_other:.9g} | {ratio} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--large", action="store_true", help="also n=20000, P=50000 (spikecvx alone)")
    ap.add_argument("--cvxpy-limit", type=float, default=0.0, metavar="SECONDS",
                    help="also run CVXPY + Clarabel on the MNIST dictionary, stopped after SECONDS "
                         "(mnist-part: its limit, default 2400)")
    ap.add_argument("--memory-shape", nargs=2, type=int, default=[60000, 16384], metavar=("N", "P"))
    ap.add_argument("--instances", nargs="+", default=["xor", "softmax", "mnist", "lasso", "memory"],
                    choices=["xor", "softmax", "mnist", "mnist-part", "lasso", "memory"],
                    help="mnist-part: the first 2000 rows and 512 columns of the MNIST dictionary, "
                         "a shape where CVXPY + Clarabel finishes (minutes, about 5 GB)")
    args = ap.parse_args()
    todo = set(args.instances)
    print(machine_line())
    print("| instance | spikecvx s | objective | rel. gap | other | other s | other objective | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    solve(*binary_problem(50, 20, "softmax"), "softmax", reg=0.01)  # compile the kernels first

    if "xor" in todo:
        D, y = binary_problem(2000, 1000, "hinge")
        reg = reg_max(D, y, "hinge") / 50
        r = min((solve(D, y, "hinge", "l1", reg=reg) for _ in range(3)), key=lambda res: res.time)
        t, v = cvxpy_solve(D.astype(float), y, "hinge", reg)
        row("XOR shape 2000x1000 hinge+L1", r.time, r.primal, r.rel_gap, "CVXPY+Clarabel", t, v)

    if "softmax" in todo:
        D, y = binary_problem(1000, 256, "softmax")
        reg = reg_max(D, y, "softmax") / 20
        r = min((solve(D, y, "softmax", "l1", reg=reg) for _ in range(3)), key=lambda res: res.time)
        t, v = cvxpy_solve(D.astype(float), y, "softmax", reg)
        row("1000x256 softmax+L1 (10 classes)", r.time, r.primal, r.rel_gap, "CVXPY+Clarabel", t, v)

    if "mnist" in todo:
        D, y = mnist_dictionary()
        W = None
        for div in (10, 30, 100):
            reg = reg_max(D, y, "softmax") / div
            r = solve(D, y, "softmax", "l1", reg=reg, warm_start=W)
            W = r.coef
            if div == 10 and args.cvxpy_limit:
                t, v = cvxpy_solve(D.astype(float), y, "softmax", reg, time_limit=args.cvxpy_limit)
                other = f"CVXPY+Clarabel ({'stopped at the limit' if v is None else 'finished'})"
                row(f"MNIST dictionary {D.shape[0]}x{D.shape[1]} softmax+L1, reg_max/{div}", r.time,
                    r.primal, r.rel_gap, other, t, float("nan") if v is None else v, at_least=v is None)
            else:
                start = "cold" if div == 10 else "warm"
                row(f"MNIST dictionary {D.shape[0]}x{D.shape[1]} softmax+L1, reg_max/{div} ({start})", r.time,
                    r.primal, r.rel_gap, "(CVXPY: ~30 h per value reported)", 0.0, float("nan"))

    if "mnist-part" in todo:
        D, y = mnist_dictionary()
        D, y = D[:2000, :512], y[:2000]
        reg = reg_max(D, y, "softmax") / 10
        r = min((solve(D, y, "softmax", "l1", reg=reg) for _ in range(3)), key=lambda res: res.time)
        limit = args.cvxpy_limit or 2400.0
        t, v = cvxpy_solve(D.astype(float), y, "softmax", reg, time_limit=limit)
        row("MNIST dictionary part 2000x512 softmax+L1, reg_max/10", r.time, r.primal, r.rel_gap,
            "CVXPY+Clarabel", t, float("nan") if v is None else v, at_least=v is None)

    if "lasso" in todo:
        from sklearn.linear_model import Lasso

        D, y = binary_problem(2000, 1000, "squared")
        reg = reg_max(D, y) / 20
        solve(*binary_problem(50, 20, "squared"), "squared", reg=0.01)  # compile this loss's kernels
        r = min((solve(D, y, "squared", "l1", reg=reg) for _ in range(3)), key=lambda res: res.time)
        Df = D.astype(float)
        others = [("scikit-learn Lasso", Lasso)]
        for module, name in (("skglm", "skglm Lasso"), ("celer", "celer Lasso")):  # optional
            try:
                others.append((name, __import__(module).Lasso))
            except ImportError:
                print(f"| ({module} not installed: `pip install {module}` adds its row) |", flush=True)
        for name, cls in others:
            cls(alpha=reg, fit_intercept=False).fit(Df[:50], y[:50])  # compile / warm up first
            t = np.inf
            for _ in range(3):
                t0 = time.perf_counter()
                m = cls(alpha=reg, fit_intercept=False, tol=1e-10, max_iter=100000).fit(Df, y)
                t = min(t, time.perf_counter() - t0)
            v = 0.5 * np.mean((Df @ m.coef_ - y) ** 2) + reg * np.abs(m.coef_).sum()
            row("2000x1000 squared+L1", r.time, r.primal, r.rel_gap, name, t, v)

    if "memory" in todo:
        memory_row(*args.memory_shape)

    if args.large:
        D, y = binary_problem(20000, 50000, "squared")
        reg = reg_max(D, y) / 10
        r = solve(D, y, "squared", "l1", reg=reg)
        row("20000x50000 squared+L1", r.time, r.primal, r.rel_gap, "-", 0.0, float("nan"))


if __name__ == "__main__":
    main()
