"""spikecvx.convex against CVXPY + Clarabel and scikit-learn on the same instances.

Every method is asked for a tight certificate; the objective each reaches is printed so the
comparison is like for like. Usage:  python benchmarks/bench_convex.py [--large]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from spikecvx.convex import reg_max, solve


def binary_problem(n, p, loss, C=10, density=0.4, seed=0):
    rng = np.random.default_rng(seed)
    D = (rng.random((n, p)) < density).astype(np.uint8)
    k = min(50, p)
    score = D[:, :k].astype(float) @ rng.normal(size=(k, C))
    if loss == "hinge":
        y = np.where(score[:, 0] > np.median(score[:, 0]), 1.0, -1.0)
    elif loss == "softmax":
        y = np.argmax(score + rng.gumbel(size=score.shape), axis=1)
    else:
        y = score[:, 0] + rng.normal(size=n)
    return D, y


def cvxpy_solve(D, y, loss, reg):
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
    prob.solve(solver=cp.CLARABEL)
    return time.perf_counter() - t0, prob.value


def row(name, t_ours, obj_ours, gap, other, t_other, obj_other):
    ratio = t_other / t_ours if t_other else float("nan")
    print(f"| {name} | {t_ours:.2f} | {obj_ours:.9g} | {gap:.1e} | {other} | {t_other:.2f} | "
          f"{obj_other:.9g} | {ratio:.0f}x |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--large", action="store_true", help="also n=20000, P=50000 (spikecvx alone)")
    ap.add_argument("--instances", nargs="+", default=["xor", "softmax", "mnist", "lasso"],
                    choices=["xor", "softmax", "mnist", "lasso"])
    args = ap.parse_args()
    todo = set(args.instances)
    print("| instance | spikecvx s | objective | rel. gap | other | other s | other objective | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    solve(*binary_problem(50, 20, "softmax"), "softmax", reg=0.01)  # compile the kernels first

    if "xor" in todo:
        D, y = binary_problem(2000, 1000, "hinge")
        reg = reg_max(D, y, "hinge") / 50
        r = solve(D, y, "hinge", "l1", reg=reg)
        t, v = cvxpy_solve(D.astype(float), y, "hinge", reg)
        row("XOR shape 2000x1000 hinge+L1", r.time, r.primal, r.rel_gap, "CVXPY+Clarabel", t, v)

    shapes = [(1000, 256)] * ("softmax" in todo) + [(6000, 1024)] * ("mnist" in todo)
    for n, p in shapes:
        D, y = binary_problem(n, p, "softmax")
        reg = reg_max(D, y, "softmax") / 20
        r = solve(D, y, "softmax", "l1", reg=reg)
        if n <= 1000:
            t, v = cvxpy_solve(D.astype(float), y, "softmax", reg)
            row(f"{n}x{p} softmax+L1 (10 cl.)", r.time, r.primal, r.rel_gap, "CVXPY+Clarabel", t, v)
        else:
            row(f"MNIST shape {n}x{p} softmax+L1", r.time, r.primal, r.rel_gap, "(CVXPY: ~30 h reported)",
                0.0, float("nan"))

    if "lasso" in todo:
        from sklearn.linear_model import Lasso

        D, y = binary_problem(2000, 1000, "squared")
        reg = reg_max(D, y) / 20
        r = solve(D, y, "squared", "l1", reg=reg)
        Df = D.astype(float)
        t0 = time.perf_counter()
        m = Lasso(alpha=reg, fit_intercept=False, tol=1e-10, max_iter=100000).fit(Df, y)
        t = time.perf_counter() - t0
        v = 0.5 * np.mean((Df @ m.coef_ - y) ** 2) + reg * np.abs(m.coef_).sum()
        row("2000x1000 squared+L1", r.time, r.primal, r.rel_gap, "scikit-learn Lasso", t, v)

    if args.large:
        D, y = binary_problem(20000, 50000, "squared")
        reg = reg_max(D, y) / 10
        r = solve(D, y, "squared", "l1", reg=reg)
        row("20000x50000 squared+L1", r.time, r.primal, r.rel_gap, "-", 0.0, float("nan"))


if __name__ == "__main__":
    main()
