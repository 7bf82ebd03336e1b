"""Regularisation paths with warm starts, prediction from a solution, and validation selection."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .._validation import check_bool, check_int, check_positive, check_real_array
from .certificate import SolveResult
from .datafits import DATAFITS
from .matrix import DesignMatrix
from .penalties import Penalty
from .solver import reg_max, solve

#: Default number of regularisation values of a path, used across the API.
N_REGS = 8


def reg_grid(D, y, loss: str = "squared", penalty: str | Penalty = "l1", n_regs: int = N_REGS,
             min_ratio: float = 1e-3) -> np.ndarray:
    """Geometric grid of ``n_regs`` values from reg_max down to ``min_ratio * reg_max``."""
    n_regs = check_int("n_regs", n_regs)
    min_ratio = _check_min_ratio(min_ratio)
    top = reg_max(D, y, loss, penalty)
    if top == 0:
        raise ValueError("reg_max is 0 for this D and y: coef = 0 is optimal for every reg, there is no path")
    return top * np.geomspace(1.0, min_ratio, n_regs)


def _check_min_ratio(min_ratio) -> float:
    min_ratio = check_positive("min_ratio", min_ratio)
    if min_ratio >= 1:
        raise ValueError(f"min_ratio must be < 1, got {min_ratio}")
    return min_ratio


def path(D, y, loss: str = "squared", penalty: str | Penalty = "l1", regs: Sequence[float] | None = None,
         n_regs: int = N_REGS, min_ratio: float = 1e-3, progress: bool = False,
         **solve_kw) -> list[SolveResult]:
    """Solve along decreasing ``regs`` (default: a geometric grid from reg_max), warm-starting each."""
    check_bool("progress", progress)
    n_regs = check_int("n_regs", n_regs)
    min_ratio = _check_min_ratio(min_ratio)
    if regs is None:
        regs = reg_grid(D, y, loss, penalty, n_regs, min_ratio)
    else:
        check_real_array("regs", regs)
        regs = np.asarray(regs, dtype=np.float64)
        if regs.ndim != 1 or regs.size == 0:
            raise ValueError(f"regs must be a non-empty 1-D sequence, got shape {regs.shape}")
        if np.any(regs <= 0):
            raise ValueError(f"regs must all be > 0, got {regs.min()!r}")
        regs = np.sort(regs)[::-1]
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
    return DATAFITS[result.loss].predict(decision_function(result, D), result.classes)


def validation_score(result: SolveResult, D, y) -> float:
    """The datafit's score: accuracy for classification losses, minus the mean squared error for
    the squared loss."""
    return DATAFITS[result.loss].score(predict(result, D), y)


def select(results: Sequence[SolveResult], D_val, y_val,
           score: Callable[[SolveResult, object, object], float] = validation_score):
    """The result with the best validation score (ties: the larger reg, i.e. the sparser model)."""
    if not results:
        raise ValueError("results is empty")
    scores = [score(r, D_val, y_val) for r in results]
    best = max(range(len(results)), key=lambda i: (scores[i], results[i].reg))
    return results[best], scores
