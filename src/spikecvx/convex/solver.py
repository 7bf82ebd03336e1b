"""Certified solver for  min_W (1/n) sum_i loss(y_i, (D W)_i) + reg * Omega(W).

Algorithm (chosen for binary dictionaries, which are badly conditioned; see ``_kernels``):

* An outer **working-set** loop over all P columns: from the current W it forms a dual point
  (the loss gradient made feasible as the penalty prescribes), computes the duality gap in
  float64 over the whole of D, stops when the relative gap is <= tol, and otherwise grows the
  working set with the columns whose optimality condition at zero is closest to (or past)
  violation, as in celer/skglm.
* The datafit names the subproblem that solves a working set (``Datafit.subproblem``): smooth
  losses (squared, logistic, softmax) use **proximal Newton** (``prox_newton``), the quadratic
  model minimised by compiled coordinate descent with the penalty's own proximal operator;
  the hinge losses are solved **exactly** as linear or second-order cone programs
  (``hinge_programs``), whose multipliers give the dual point, so the outer loop is column
  generation (every column that violates its dual constraint enters the next program at once).
  Timings behind these choices are in docs/design/convex.md.

The reported gap is primal(W) - dual(U) for an explicitly feasible U, evaluated at the returned
W, so it bounds the suboptimality of the returned coefficients whatever the algorithm did.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_bool, check_choice, check_int, check_positive, check_real_array
from ._dense import blas_limit
from .certificate import DualTracker, SolveResult
from .datafits import DATAFITS, Datafit, WeightedDatafit
from .hinge_fast import solve_hinge_l1
from .hinge_programs import IPM_MIN_COLUMNS, hinge_socp
from .matrix import DesignMatrix
from .penalties import Penalty, get_penalty
from .prox_newton import prox_newton
from .weights import RowReduction, check_sample_weight, reduce_rows

LOSSES = tuple(DATAFITS)

# Smallest working set: below about this many columns an outer iteration costs more than the
# inner solve it saves.
WS_MIN_COLUMNS = 100
# The working set doubles when the gap fell by less than this factor in one outer iteration.
WS_STALL_RATIO = 0.5
# Inexact working-set solves stop at this fraction of the current outer gap: tight enough that
# the next outer iteration makes progress, loose enough not to over-solve a small working set.
SUB_TOL_FRACTION = 0.3
# Once the working set is every column, it is solved to this fraction of the final tolerance.
FINAL_SUB_TOL_FRACTION = 0.5
# Columns with a norm below this count as empty (they never enter the working set).
MIN_COLUMN_NORM = 1e-12
# BLAS threads while a problem is solved (None: as the BLAS is configured). On idle cores the
# BLAS's own threads shorten the wall time (MNIST preset path 18.3 -> 14.9 s on 2 cores); on cores
# shared with other work they spin against it (3.6x the CPU time at load 16), where 1 is better
# (docs/design/convex.md).
BLAS_THREADS: int | None = None

__all__ = ["LOSSES", "Problem", "SolveResult", "prepare", "reg_max", "solve", "solve_problem"]


def _check_problem(M: DesignMatrix, y, loss, penalty):
    check_choice("loss", loss, DATAFITS)
    fit, pen = DATAFITS[loss], get_penalty(penalty)
    if fit.subproblem == "conic" and pen.conic is None:
        raise ValueError(f"loss {loss!r} is solved as a linear / second-order cone program, which "
                         f"penalty {pen.name!r} has no form for; use penalty 'l1' or 'group_l1'")
    Y, classes = fit.encode(y)
    if Y.shape[0] != M.n:
        raise ValueError(f"y has {Y.shape[0]} samples but D has {M.n} rows")
    return fit, pen, Y, classes


@dataclass
class Problem:
    """A validated problem and the rows the solver works on.

    ``M``, ``Y``, ``fit``: the problem as given (``fit`` weighted when there are sample weights).
    ``Mr``, ``Yr``, ``fit_r``: its rows after ``reduce_rows`` (zero weights dropped, repeated
    (row, label) pairs merged), the same objective; ``inner`` is the datafit of the proximal-
    Newton subproblem, whose working-set rows are multiplied by ``row_scale``. ``cache`` keeps
    what a path reuses between its solves (the hinge LPs)."""

    M: DesignMatrix
    Y: np.ndarray
    fit: Datafit | WeightedDatafit
    pen: Penalty
    classes: np.ndarray | None
    squeeze: bool
    reduction: RowReduction | None
    Mr: DesignMatrix
    Yr: np.ndarray
    fit_r: Datafit | WeightedDatafit
    inner: Datafit | WeightedDatafit
    row_scale: np.ndarray | None
    cache: dict = field(default_factory=dict)

    @property
    def weights_r(self) -> np.ndarray:
        """Normalised weights of the rows the solver works on."""
        return np.full(self.Mr.n, 1.0 / self.Mr.n) if self.reduction is None else self.reduction.weights

    # The seam of a row-sharded solve (``sharded.ShardedProblem`` overrides these): in one process
    # the working-set rows are the reduced rows and nothing is summed across processes.
    reduce_sum = None

    def ws_rows(self, ws: np.ndarray, compact: bool = False):
        """The working-set subproblem: (columns ws of the rows (``DesignMatrix.columns``),
        labels, weights or None, datafit of the proximal-Newton model, row scale or None)."""
        weights = None if self.reduction is None else self.reduction.weights
        return self.Mr.columns(ws, compact=compact), self.Yr, weights, self.inner, self.row_scale

    def conic_solver(self):
        """The exact program of a hinge working set that reaches the loop: group L1 with several
        outputs (the LP cases go to ``hinge_fast`` in one process)."""
        return hinge_socp

    def solve_ws(self, solver, *args):
        """``solver(*args)``, the working-set subproblem: here, in this process."""
        return solver(*args)

    def local_multipliers(self, alpha: np.ndarray | None) -> np.ndarray | None:
        """Multipliers of the subproblem's rows as multipliers of the rows of ``Mr``."""
        return alpha

    def agree(self, check, *args):
        """``check(*args)``: argument checks after ``prepare`` (a sharded problem makes every rank
        raise when one rank's check does)."""
        return check(*args)


def prepare(D, y, loss: str = "squared", penalty: str | Penalty = "l1", sample_weight=None,
            merge: bool = True) -> Problem:
    """Validate a problem and reduce its rows (``weights.reduce_rows``); ``solve`` and ``path``
    start here."""
    M = DesignMatrix(D)
    fit, pen, Y, classes = _check_problem(M, y, loss, penalty)
    s = check_sample_weight(sample_weight, M.n)
    squeeze = Y.shape[1] == 1 and np.ndim(y) == 1  # binary losses take 1-D labels only
    red = reduce_rows(M, Y, s, merge)
    full_fit = fit if s is None else fit.weighted(s)
    if red is None:
        return Problem(M, Y, full_fit, pen, classes, squeeze, None, M, Y, fit, fit, None)
    Mr = DesignMatrix(M.D[red.rows])
    a = np.sqrt(len(red.rows) * red.weights)
    return Problem(M, Y, full_fit, pen, classes, squeeze, red, Mr, Y[red.rows],
                   fit.weighted(red.weights), fit.weighted(red.weights, a), a)


def prepare_any(D, y, loss, penalty, sample_weight, distributed, checks=None) -> Problem:
    """``prepare`` in one process, ``sharded.prepare_sharded`` when ``distributed`` names a
    communicator or process group; ``checks()`` (the caller's argument checks) runs first, and in
    a sharded problem every rank raises when one rank's checks fail."""
    from .sharded import communicator_of, prepare_sharded

    comm = communicator_of(distributed)
    if comm is None:
        if checks is not None:
            checks()
        return prepare(D, y, loss, penalty, sample_weight)
    return prepare_sharded(D, y, loss, penalty, sample_weight, comm, checks)


def reg_max(D, y, loss: str = "squared", penalty: str | Penalty = "l1", sample_weight=None,
            distributed=None) -> float:
    """The smallest reg for which W = 0 is optimal (exact), from the gradient of the loss at 0.

    It is 0 when W = 0 is optimal for every reg (e.g. y = 0 for the squared loss). Raises
    ValueError when it is not finite in float64 (data too large). ``sample_weight`` and
    ``distributed`` as in ``solve``.
    """
    if distributed is not None and distributed is not False:
        from .sharded import sharded_reg_max

        problem = prepare_any(D, y, loss, penalty, sample_weight, distributed)
        M, top = problem.M, sharded_reg_max(problem)
    else:
        M = DesignMatrix(D)
        fit, pen, Y, _ = _check_problem(M, y, loss, penalty)
        s = check_sample_weight(sample_weight, M.n)
        if s is not None:
            fit = fit.weighted(s)
        U0 = fit.dual_direction(np.zeros_like(Y), Y)
        with np.errstate(over="ignore", invalid="ignore"):
            top = pen.reg_max(M.rmatmul(U0))
    if not np.isfinite(top):
        raise ValueError(f"reg_max is not finite in float64: D or y hold values too large "
                         f"(max |D| = {_max_abs(M):.3g}); rescale them")
    return top


def _max_abs(M: DesignMatrix) -> float:
    data = M.D.data if M.sparse else M.D
    return float(np.abs(data).max()) if data.size else 0.0


def solve(
    D,
    y,
    loss: str = "squared",
    penalty: str | Penalty = "l1",
    reg: float = 1e-3,
    tol: float = 1e-6,
    max_iter: int = 50,
    warm_start: np.ndarray | None = None,
    device: str | None = None,
    verbose: bool = False,
    sample_weight=None,
    distributed=None,
) -> SolveResult:
    """Solve the sparse GLM to relative duality gap ``tol`` and return the certificate.

    Args:
        D: (n, P) design matrix, dense (any real dtype) or scipy sparse; complex, object or
            string data raise TypeError.
        y: labels: real (n,) or (n, C) for "squared"; {-1, +1} for "hinge" and "logistic";
            integer classes for "hinge_ovr" and "softmax".
        loss: one of "squared", "hinge", "hinge_ovr", "logistic", "softmax".
        penalty: "l1" (elementwise), "group_l1" (row-wise L2 norms), "elastic_net"
            (l1_ratio 0.5), or a ``Penalty`` object such as ``ElasticNet(l1_ratio=0.9)``.
            The hinge losses take "l1" and "group_l1" only.
        reg: regularisation strength (> 0), in the (1/n)-scaled objective.
        tol: target for gap / max(1, |primal|).
        max_iter: outer working-set iterations (>= 1); for the hinge + L1 linear program, rounds
            of row generation per output.
        warm_start: initial coef, shaped like the result's ``coef``.
        device: accepted for API symmetry; the engine runs on the CPU (numpy/numba/HiGHS).
        verbose: print the certificate of every outer iteration.
        sample_weight: (n,) non-negative weights, not all zero (scikit-learn's meaning): the
            objective becomes sum_i w_i loss_i / sum_i w_i + reg * penalty. A row of weight 0 is
            ignored. Repeated (row, label) pairs are merged into weights whatever this is.
        distributed: None (one process); True (the default torch.distributed process group), a
            process group, or a communicator (see ``convex.sharded``): D, y and sample_weight are
            this process's rows (possibly none) of one problem, and every process returns the
            solution and certificate of the whole problem (``dual_point``: this process's rows).
            The working-set subproblems all-reduce their Gram sums (squared: one Gram-form
            model per outer iteration; logistic: proximal Newton on every rank's rows), run
            proximal Newton on every rank's rows with all-reduced Hessian-vector products
            (softmax), or, for the hinge losses and small softmax problems, are solved on rank 0
            over the gathered rows of their columns (hinge + L1: ``hinge_fast`` per working set,
            not once for all). Input checks agree: when one rank's arguments are bad, every rank
            raises ValueError (that rank its own error).

    Returns:
        ``SolveResult``, whose primal, dual and gap always describe the returned ``coef`` in the
        problem as given (all its rows); ``converged`` is False (with a RuntimeWarning) if the
        gap was not reached.

    Raises:
        ValueError: also when the objective at the starting point is not finite in float64
            (D or y hold values too large to represent the problem).
    """
    t0 = time.perf_counter()
    problem = prepare_any(D, y, loss, penalty, sample_weight, distributed)
    reg, (tol, max_iter), W = problem.agree(lambda: (
        check_positive("reg", reg), check_solve_options(tol, max_iter, device, verbose),
        _initial_coef(warm_start, problem.M.p, problem.Y.shape[1])))
    res = solve_problem(problem, reg, tol, max_iter, W, verbose)
    res.time = time.perf_counter() - t0
    warn_if_not_converged(res, stacklevel=3)
    return res


def check_solve_options(tol, max_iter, device, verbose) -> tuple[float, int]:
    """The options ``solve`` and ``path`` share, checked: (tol, max_iter)."""
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter)
    check_bool("verbose", verbose)
    if device is not None and not isinstance(device, str):
        raise TypeError(f"device must be a string or None, got {type(device).__name__}")
    if device not in (None, "cpu") and not str(device).startswith("cpu"):
        warnings.warn(f"device={device!r}: the convex engine runs on the CPU", stacklevel=3)
    return tol, max_iter


def warn_if_not_converged(res: SolveResult, stacklevel: int = 2) -> None:
    """A RuntimeWarning when ``res`` did not reach its tolerance."""
    if res.converged:
        return
    warnings.warn(
        f"solve did not reach tol={res.tol:g}: relative gap {res.rel_gap:.3e} after {res.n_iter} "
        f"iterations ({res.loss} + {res.penalty}, reg={res.reg:g})"
        + ("" if np.isfinite(res.gap) and np.isfinite(res.primal) else
           "; the certificate is not finite in float64"),
        RuntimeWarning, stacklevel=stacklevel,
    )


def uses_fast_hinge(problem: Problem) -> bool:
    """Whether ``solve_problem`` hands the problem to ``hinge_fast.solve_hinge_l1``: hinge losses
    with a penalty that is a linear program (L1, or group L1 with one output)."""
    C = problem.Y.shape[1]
    return (problem.fit.subproblem == "conic" and (problem.pen.conic == "lp" or C == 1)
            and problem.reduce_sum is None)


def blas_threads():
    """Context that limits the BLAS to ``BLAS_THREADS`` threads (threadpoolctl, loaded on first use)."""
    return contextlib.nullcontext() if BLAS_THREADS is None else blas_limit(BLAS_THREADS)


def solve_problem(problem: Problem, reg: float, tol: float, max_iter: int, W: np.ndarray,
                  verbose: bool = False) -> SolveResult:
    """Solve a prepared problem (no argument checks, no warning) from the coefficients W, with the
    BLAS limited to ``BLAS_THREADS`` threads."""
    with blas_threads():
        return _solve_problem(problem, reg, tol, max_iter, W, verbose)


def _solve_problem(problem: Problem, reg, tol, max_iter, W, verbose) -> SolveResult:
    t0 = time.perf_counter()
    if hasattr(problem, "check_same_call"):  # a sharded problem: every rank must agree
        problem.check_same_call(reg, tol, max_iter, W)
    if uses_fast_hinge(problem):
        W, U, n_iter = _solve_fast_hinge(problem, reg, tol, max_iter, W, verbose)
        primal = dual = None
    else:
        W, primal, dual, U, n_iter = _solve_working_set(problem, reg, tol, max_iter, W, verbose)
    if problem.reduction is not None or primal is None:
        primal, dual, U = _certificate(problem, W, U, reg)
    gap = primal - dual
    if not np.isfinite(gap):
        gap = np.inf  # never converged
    converged = gap <= tol * max(1.0, abs(primal))
    coef = W[:, 0] if problem.squeeze else W
    pen = problem.pen
    return SolveResult(coef, float(primal), float(dual), float(gap), bool(converged), n_iter,
                       time.perf_counter() - t0, float(reg), problem.fit.name, pen.name, float(tol),
                       problem.classes, U, pen.get_params())


def _certificate(problem: Problem, W: np.ndarray, U_r: np.ndarray | None, reg: float):
    """primal(W) and the dual value of U_r (a feasible dual point of the reduced rows, or None),
    both evaluated on every row of the problem as given: (primal, dual, dual point)."""
    M, Y, fit, pen = problem.M, problem.Y, problem.fit, problem.pen
    with np.errstate(over="ignore", invalid="ignore"):
        primal = fit.value(M.matmul(W), Y) + reg * pen.value(W)
    if U_r is None:
        return primal, -np.inf, None
    U = U_r if problem.reduction is None else problem.reduction.expand(U_r)
    scale, pen_conjugate = pen.feasible_dual(M.rmatmul(U), reg)  # 1 up to rounding
    U = scale * U
    dual = -fit.conjugate(U, Y) - pen_conjugate if fit.in_domain(U, Y) else -np.inf
    return primal, dual, U


def _solve_fast_hinge(problem: Problem, reg, tol, max_iter, W, verbose):
    """Hinge + L1 by ``solve_hinge_l1`` on the reduced rows, its LPs kept in ``problem.cache``:
    (W, dual point of the reduced rows, rounds)."""
    s = problem.weights_r
    W, alpha, info = solve_hinge_l1(problem.Mr.D, problem.Yr, reg, tol, warm_start=W, counts=s,
                                    state=problem.cache.get("hinge"), max_rounds=max_iter)
    problem.cache["hinge"] = info["state"]
    if verbose:
        print(f"hinge LP: primal {info['primal']:.10g} dual {info['dual']:.10g} gap {info['gap']:.3e} "
              f"rounds {info['output_rounds']} pivots {info['pivots']} columns {info['working_set']}")
    U = info["scale"] * (-problem.Yr * alpha * s[:, None])
    return W, U, max(info["output_rounds"])


def _solve_working_set(problem: Problem, reg, tol, max_iter, W, verbose):
    """The working-set loop on the reduced rows: (W, primal, dual, dual point, iterations), the
    certificate of the reduced rows (the same problem)."""
    M, Y, fit, pen = problem.Mr, problem.Yr, problem.fit_r, problem.pen
    col_norms = M.column_norms
    tracker = DualTracker(fit, pen, reg, Y, reduce_sum=problem.reduce_sum)
    alpha = None  # multipliers of the last exact (conic) working-set solve
    ws_size = ws_min = min(M.p, WS_MIN_COLUMNS)
    prev_gap = np.inf
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        primal, gap, DtU = _certify(M, fit, pen, tracker, W, Y, reg, alpha, first=it == 1)
        if verbose:
            print(f"iter {it}: primal {primal:.10g} dual {tracker.best:.10g} gap {gap:.3e} ws {ws_size}")
        if gap <= tol * max(1.0, abs(primal)):
            converged = True
            break
        support = np.flatnonzero(np.any(W != 0, axis=1))
        priority = pen.zero_slack(DtU, reg) / np.maximum(col_norms, MIN_COLUMN_NORM)
        priority[col_norms == 0] = np.inf  # empty columns never enter
        priority[support] = -np.inf
        # working set: twice the support (the support plus the columns that violate the
        # optimality conditions most, as in skglm); doubled only when the gap stalls, so a sparse
        # solution never drags every column into the inner solver
        stalled = gap > WS_STALL_RATIO * prev_gap
        ws_size = min(M.p, max(ws_min, 2 * len(support), 2 * ws_size if stalled else 0))
        exact = fit.subproblem == "conic"
        if exact:
            # the program is solved exactly, so every violated column enters at once (column generation)
            n_viol = int(np.count_nonzero(np.isfinite(priority) & (priority < 0)))
            if n_viol:
                ws_size = min(M.p, max(ws_min, 2 * len(support), len(support) + n_viol))
            if ws_size >= IPM_MIN_COLUMNS and 2 * ws_size > M.p:
                ws_size = M.p  # an interior-point LP on most columns costs about what all of them cost
        prev_gap = gap
        ws = np.sort(np.argpartition(priority, ws_size - 1)[:ws_size])
        X, Y_ws, weights, inner, row_scale = problem.ws_rows(ws, compact=not exact)
        if exact:  # hinge + group L1 with several outputs (in one process the LP cases go to ``hinge_fast``)
            W_ws, alpha = problem.solve_ws(problem.conic_solver(), X, Y_ws, reg, weights)
            alpha = problem.local_multipliers(alpha)
        else:
            # solved to a fraction of the current gap (or to the final tolerance once the working
            # set is everything)
            sub_tol = (FINAL_SUB_TOL_FRACTION * tol * max(1.0, abs(primal)) if ws_size == M.p
                       else SUB_TOL_FRACTION * gap)
            if row_scale is not None:  # weighted rows: a float copy of the working set
                X = X * row_scale[:, None]
            W_ws = problem.solve_ws(prox_newton, X, Y_ws, W[ws], inner, pen, reg, sub_tol)
        W = np.zeros_like(W)
        W[ws] = W_ws
    if not converged:  # max_iter ran out after an update: certify the coefficients that are returned
        primal, gap, _ = _certify(M, fit, pen, tracker, W, Y, reg, alpha, first=False)
    return W, primal, tracker.best, tracker.point, it


def _certify(M, fit, pen, tracker, W, Y, reg, alpha, first):
    """primal(W), the gap against the best feasible dual point (after offering the one W gives),
    and D^T U. At the starting point a non-finite objective is a ValueError: the data cannot be
    represented in float64."""
    Z = M.matmul(W)
    with np.errstate(over="ignore", invalid="ignore"):
        primal = fit.value(Z, Y) + reg * pen.value(W)
    if first and not np.isfinite(primal):
        raise ValueError(f"the objective is not finite in float64 at the starting point: y or D hold "
                         f"values too large (max |y| = {float(np.max(np.abs(Y))):.3g}, max |D| = "
                         f"{_max_abs(M):.3g}); rescale them")
    U = fit.dual_direction(Z, Y, alpha)
    DtU = M.rmatmul(U)
    tracker.update(U, M.rmatmul, DtU)
    gap = primal - tracker.best
    if not np.isfinite(gap):
        gap = np.inf  # never converged
    return primal, gap, DtU


def _initial_coef(warm_start, p: int, C: int) -> np.ndarray:
    if warm_start is None:
        return np.zeros((p, C))
    check_real_array("warm_start", warm_start)
    W = np.array(warm_start, dtype=np.float64).reshape(p, -1) if np.size(warm_start) == p * C else None
    if W is None or W.shape != (p, C):
        raise ValueError(f"warm_start must have {p * C} entries ((P, C) = ({p}, {C})), "
                         f"got shape {np.shape(warm_start)}")
    return W
