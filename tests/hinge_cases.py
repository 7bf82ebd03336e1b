"""Shared pieces of the hinge + L1 tests: small binary instances, CVXPY's objective on them, and the
certificate computed from its definition (no package code)."""

from __future__ import annotations

import numpy as np


def binary_problem(n: int, p: int, seed: int, density: float = 0.4):
    """A random binary dictionary (uint8) and +-1 labels from a sparse linear score plus noise."""
    rng = np.random.default_rng(seed)
    D = (rng.random((n, p)) < density).astype(np.uint8)
    score = D[:, : min(10, p)] @ rng.normal(size=min(10, p)) + 0.5 * rng.normal(size=n)
    return D, np.where(score > np.median(score), 1.0, -1.0)


def cvxpy_objective(D, y, reg: float) -> float:
    """mean(max(0, 1 - y Dw)) + reg |w|_1 minimised by CVXPY + Clarabel."""
    import cvxpy as cp

    w = cp.Variable(D.shape[1])
    obj = cp.sum(cp.pos(1 - cp.multiply(y, D.astype(float) @ w))) / len(y) + reg * cp.norm1(w)
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver=cp.CLARABEL)
    return prob.value


def certificate_by_hand(D, y, w, alpha, reg: float) -> tuple[float, float]:
    """(primal, primal - dual) of (w, alpha) from the definitions (1/n weights)."""
    D = D.astype(np.float64)
    n = len(y)
    primal = np.mean(np.maximum(0, 1 - y * (D @ w))) + reg * np.abs(w).sum()
    U = -y * alpha / n
    scale = min(1.0, reg / np.abs(D.T @ U).max())
    return primal, primal - scale * np.sum(alpha) / n


DEGENERATE_CASES = ("ties", "duplicate_columns", "zero_columns", "few_distinct_rows")


def degenerate_problem(case: str):
    """A 160 x 70 instance with one kind of degeneracy: rows exactly on the margin at once (integer
    scores), duplicate columns, all-zero columns, or 12 distinct rows repeated many times."""
    rng = np.random.default_rng(7)
    D, y = binary_problem(160, 70, 4)
    if case == "ties":
        y = np.where(D[:, :3].sum(axis=1) >= 2, 1.0, -1.0)
    elif case == "duplicate_columns":
        D[:, 35:] = D[:, :35]
    elif case == "zero_columns":
        D[:, ::3] = 0
    else:
        D = D[rng.integers(0, 12, size=160)]
    return D, y
