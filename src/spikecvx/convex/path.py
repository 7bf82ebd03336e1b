"""Regularisation paths with warm starts, prediction from a solution, and validation selection."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .._validation import check_int, check_positive
from .matrix import DesignMatrix
from .solver import SolveResult, reg_max, solve


def reg_grid(D, y, loss: str = "squared", penalty: str = "l1", n_regs: int = 10,
             min_ratio: float = 1e-3) -> np.ndarray:
    """Geometric grid of ``n_regs`` values from reg_max down to ``min_ratio * reg_max``."""
    check_int("n_regs", n_regs)
    min_ratio = check_positive("min_ratio", min_ratio)
    if min_ratio >= 1:
        raise ValueError(f"min_ratio must be < 1, got {min_ratio}")
    top = reg_max(D, y, loss, penalty)
    return top * np.geomspace(1.0, min_ratio, n_regs)


def path(D, y, loss: str = "squared", penalty: str = "l1", regs: Sequence[float] | None = None,
         n_regs: int = 10, min_ratio: float = 1e-3, progress: bool = False, **solve_kw) -> list[SolveResult]:
    """Solve along decreasing ``regs`` (default: a geometric grid from reg_max), warm-starting each."""
    regs = reg_grid(D, y, loss, penalty, n_regs, min_ratio) if regs is None else np.sort(regs)[::-1]
    results, warm = [], None
    for reg in tqdm(regs, desc=f"{loss} path", disable=not progress):
        res = solve(D, y, loss, penalty, reg=float(reg), warm_start=warm, **solve_kw)
        results.append(res)
        warm = res.coef
    return results


def decision_function(result: SolveResult, D) -> np.ndarray:
    """D @ coef: (n,) for single-output problems, (n, C) otherwise."""
    M = DesignMatrix(D)
    coef = result.coef.reshape(result.coef.shape[0], -1)
    if M.p != coef.shape[0]:
        raise ValueError(f"D has {M.p} columns but the solution has {coef.shape[0]} coefficients")
    Z = M.matmul(coef)
    return Z[:, 0] if result.coef.ndim == 1 else Z


def predict(result: SolveResult, D) -> np.ndarray:
    """Labels (sign for binary losses, class for multi-class) or values (squared loss)."""
    Z = decision_function(result, D)
    if result.loss in ("hinge", "logistic"):
        return np.where(Z >= 0, 1.0, -1.0)
    if result.loss in ("hinge_ovr", "softmax"):
        return result.classes[np.argmax(Z, axis=1)]
    return Z


def validation_score(result: SolveResult, D, y) -> float:
    """Accuracy for classification losses, minus the mean squared error for the squared loss."""
    pred = predict(result, D)
    y = np.asarray(y)
    if result.loss == "squared":
        return -float(np.mean((pred - y.reshape(pred.shape)) ** 2))
    return float(np.mean(pred == y))


def select(results: Sequence[SolveResult], D_val, y_val,
           score: Callable[[SolveResult, object, object], float] = validation_score):
    """The result with the best validation score (ties: the larger reg, i.e. the sparser model)."""
    if not results:
        raise ValueError("results is empty")
    scores = [score(r, D_val, y_val) for r in results]
    best = max(range(len(results)), key=lambda i: (scores[i], results[i].reg))
    return results[best], scores
