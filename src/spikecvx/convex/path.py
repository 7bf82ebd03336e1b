"""Regularisation paths with warm starts, prediction from a solution, and validation selection."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .._validation import check_bool, check_int, check_positive, check_real_array
from .certificate import SolveResult
from .datafits import DATAFITS
from .matrix import DesignMatrix
from .penalties import Penalty
from .solver import check_solve_options, prepare_any, reg_max, solve_problem, warn_if_not_converged

#: Default number of regularisation values of a path, used across the API.
N_REGS = 8


def reg_grid(D, y, loss: str = "squared", penalty: str | Penalty = "l1", n_regs: int = N_REGS,
             min_ratio: float = 1e-3, sample_weight=None, distributed=None) -> np.ndarray:
    """Geometric grid of ``n_regs`` values from reg_max down to ``min_ratio * reg_max``."""
    n_regs = check_int("n_regs", n_regs)
    min_ratio = _check_min_ratio(min_ratio)
    top = reg_max(D, y, loss, penalty, sample_weight, distributed)
    if top == 0:
        raise ValueError("reg_max is 0 for this D and y: coef = 0 is optimal for every reg, there is no path")
    return top * np.geomspace(1.0, min_ratio, n_regs)


def _check_min_ratio(min_ratio) -> float:
    min_ratio = check_positive("min_ratio", min_ratio)
    if min_ratio >= 1:
        raise ValueError(f"min_ratio must be < 1, got {min_ratio}")
    return min_ratio


def _check_regs(regs) -> np.ndarray:
    """``regs`` as a float64 array sorted in decreasing order, checked."""
    check_real_array("regs", regs)
    regs = np.asarray(regs, dtype=np.float64)
    if regs.ndim != 1 or regs.size == 0:
        raise ValueError(f"regs must be a non-empty 1-D sequence, got shape {regs.shape}")
    if np.any(regs <= 0):
        raise ValueError(f"regs must all be > 0, got {regs.min()!r}")
    return np.sort(regs)[::-1]


def path(D, y, loss: str = "squared", penalty: str | Penalty = "l1", regs: Sequence[float] | None = None,
         n_regs: int = N_REGS, min_ratio: float = 1e-3, progress: bool = False, *,
         tol: float = 1e-6, max_iter: int = 50, device: str | None = None, verbose: bool = False,
         sample_weight=None, D_val=None, y_val=None, patience: int | None = None,
         score: Callable[[SolveResult, object, object], float] | None = None,
         distributed=None) -> list[SolveResult]:
    """Solve along decreasing ``regs`` (default: a geometric grid from reg_max), warm-starting each.

    The problem is prepared once (weights checked, repeated rows merged) and every solve reuses
    it; hinge + L1 solves also reuse the previous solve's linear programs and bases.
    ``tol``, ``max_iter``, ``device``, ``verbose``, ``sample_weight``: as in ``solve``.

    Early stopping: with ``patience`` (an int >= 1) and validation data ``D_val``, ``y_val``, the
    path stops once ``score(result, D_val, y_val)`` (larger is better; default the datafit's
    ``validation_score``) has not improved on its best for ``patience`` consecutive values; the
    results up to there are returned (``select`` then picks among them). Values are counted only
    once some value has scored above the first one: at the reg_max end of a path the coefficients
    are zero or nearly so, and several values can tie the score of a model that predicts one class
    before the informative part of the path begins. Off by default.

    ``distributed``: as in ``solve`` (D, y, sample_weight are this process's rows); early
    stopping then follows rank 0's validation score, so every process stops at the same value.
    """
    def check_options():  # sharded: every rank raises when one rank's options fail
        check_bool("progress", progress)
        out = (check_int("n_regs", n_regs), _check_min_ratio(min_ratio),
               *check_solve_options(tol, max_iter, device, verbose))
        if patience is not None:
            check_int("patience", patience)
            if D_val is None or y_val is None:
                raise ValueError("patience needs validation data: pass D_val and y_val")
            if score is not None and not callable(score):
                raise TypeError(f"score must be callable (result, D_val, y_val) -> float, "
                                f"got {type(score).__name__}")
        elif D_val is not None or y_val is not None:
            raise ValueError("D_val and y_val are used for early stopping only: pass patience as well")
        return out + (None if regs is None else _check_regs(regs),)

    options = []
    problem = prepare_any(D, y, loss, penalty, sample_weight, distributed,
                          checks=lambda: options.extend(check_options()))
    n_regs, min_ratio, tol, max_iter, regs = options
    if patience is not None:
        patience = check_int("patience", patience)
        score = validation_score if score is None else score
    if regs is None:
        regs = reg_grid(D, y, loss, penalty, n_regs, min_ratio, sample_weight, distributed)
    results = []
    W = np.zeros((problem.M.p, problem.Y.shape[1]))
    best, first, since_best = -np.inf, None, 0
    for reg in tqdm(regs, desc=f"{loss} path", disable=not progress):
        t0 = time.perf_counter()
        res = solve_problem(problem, float(reg), tol, max_iter, W, verbose)
        res.time = time.perf_counter() - t0
        warn_if_not_converged(res, stacklevel=3)
        results.append(res)
        W = res.coef.reshape(problem.M.p, -1)
        if patience is not None:
            value = float(score(res, D_val, y_val))
            if getattr(problem, "comm", None) is not None:
                value = problem.comm.broadcast_object(value)
            first = value if first is None else first
            if value > best:
                best, since_best = value, 0
            elif best > first:  # values that have not beaten the first one's score do not count
                since_best += 1
            if since_best >= patience:
                break
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
