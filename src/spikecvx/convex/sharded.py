"""Row-sharded solves: one problem whose rows are split over processes (SPMD).

Every process holds some rows of D and y (any number, none included) and runs the same
working-set loop as ``solver``. Everything that sums over rows is summed over the processes by a
*communicator*, an object with ``rank``, ``world_size``, ``allreduce_sum`` / ``allreduce_min``
(float64 arrays), ``allgather`` and ``gather`` (lists of arrays, the second on rank 0 only) and
``broadcast_object``; ``spikecvx.distributed.Communicator`` is the torch.distributed one, and
this module imports no torch. What is summed:

* ``D^T U`` (P x C per outer iteration, and once more when the dual extrapolation fires), the
  squared column norms (once), the objective and the conjugate (scalars), the domain test, and
  the small Gram matrix of the dual extrapolation;
* the working-set subproblem: for the squared loss, its Gram sums (|ws| x (|ws| + C) numbers,
  whatever n is), solved on rank 0; for the logistic loss, proximal Newton on the rank-local rows
  with each Newton model's Gram sums all-reduced; for softmax, proximal Newton on the rank-local
  rows whose model is never formed: each Hessian-vector product is one all-reduce of |ws| x C
  numbers (``_newton_hvp``); for the hinge losses (and softmax working sets whose rows take at
  most ``SOFTMAX_GATHER_MAX_BYTES``), the rows of the working-set columns merged where they repeat
  (on each process, then across processes) and gathered on rank 0, which solves the subproblem as
  one process would and broadcasts the coefficients (and, for the hinge programs, the
  multipliers): n x |ws| entries per outer iteration at most. docs/design/distributed.md has the
  numbers.

Checks of each process's own arguments run on every process first and are agreed on with one
all-reduce (``_agree.agree``), so a bad argument on one process raises on all of them at once.

The loss values, the labels' encoding (classes of all processes) and the sample weights
(normalised by the sum over all processes) are global, so every process returns the same
coefficients and the same certificate as one process on the concatenated rows would, up to
rounding; ``dual_point`` holds this process's rows of the dual point.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .._agree import agree
from .._validation import check_choice, check_real_array
from .datafits import DATAFITS, Datafit, WeightedDatafit
from .hinge_fast import solve_hinge_l1
from .hinge_programs import hinge_socp
from .matrix import DesignMatrix
from .penalties import Penalty, get_penalty
from .prox_newton import pcg, prox_newton
from .solver import Problem
from .weights import reduce_rows, weight_array

# Eigenvalues of a working set's Gram matrix below this fraction of the largest count as zero
# (directions in which no row varies): the virtual rows keep the others.
GRAM_EIG_FLOOR = 1e-13
# Proximal Newton iterations of a sharded logistic working set, and the tolerance of each model
# solve relative to the working set's (the model is minimised essentially exactly).
NEWTON_MAX_ITER = 50
NEWTON_MODEL_TOL = 1e-3
NEWTON_MIN_DECREASE = 1e-16
# Softmax working sets on the rank-local rows (``_newton_hvp``): power iterations for the
# curvature estimate of each model and the factor it is raised by, FISTA iterations per model and
# their stopping rule (relative decrease), conjugate-gradient iterations and damping (relative to
# the gradient's norm) of the support Newton step: as in ``prox_newton.NEWTON_DAMPING``, the
# softmax Hessian is singular along "the same shift for every class", where a less damped step
# runs far and is projected away (a damping of 1e-3 takes about 4 times more products;
# docs/design/distributed.md).
POWER_ITERS = 6
POWER_ITERS_WARM = 2
POWER_SAFETY = 1.1
MODEL_FISTA_MAX_ITER = 300
MODEL_FISTA_RTOL = 1e-4
MODEL_FISTA_SUPPORT_ITER = 20
SUPPORT_MAX_CG = 50
SUPPORT_DAMPING = 0.3
MIN_CURVATURE = 1e-12
SUPPORT_NEWTON = ("l1", "elastic_net", "group_l1")  # penalties ``_penalty_on_support`` knows
# A softmax working set is gathered on rank 0 (rows merged, then solved by ``prox_newton``) when its
# rows over all ranks take at most this many bytes (rows x |ws|, one byte each), else solved on the
# rank-local rows. Measured (docs/design/distributed.md): the sharded subproblem sends about 20
# all-reduces of |ws| x C float64 per outer iteration (140 KiB for |ws| = 300, C = 3), gathering
# sends the rows (840 KiB for 5000 rows) and costs rank 0 the whole subproblem; the times are
# within noise of each other. Gathering saves those round trips only while its rows are small.
SOFTMAX_GATHER_MAX_BYTES = 2**20
# Relative gap to which rank 0 solves a gathered hinge + L1 working set: exact for the outer loop.
WS_LP_TOL = 1e-10
_COMMUNICATOR_METHODS = ("allreduce_sum", "allreduce_min", "allgather", "gather", "broadcast_object")


def communicator_of(distributed):
    """The communicator ``distributed`` names, or None for a one-process solve.

    ``distributed``: None / False (one process), a communicator object (used as it is), or True
    / a torch.distributed process group, for which ``spikecvx.distributed`` (and torch) is
    imported here, and only here."""
    if distributed is None or distributed is False:
        return None
    if all(hasattr(distributed, m) for m in _COMMUNICATOR_METHODS):
        return distributed
    return importlib.import_module("spikecvx.distributed").communicator(distributed)


class ShardedMatrix:
    """The rows of D held by this process, with products that sum over all processes."""

    def __init__(self, D, comm, local: DesignMatrix | None = None) -> None:
        """``local``: D checked by ``local_matrix`` (None: checked here, on this rank alone)."""
        if local is None:
            D, local = local_matrix(D)
        self.comm = comm
        self.n, self.p = np.shape(D)
        self.local = local
        self.sparse = self.local.sparse if self.local is not None else False
        self.D = self.local.D if self.local is not None else np.zeros((0, self.p))
        lo, hi = comm.allreduce_min(np.array([self.p])), -comm.allreduce_min(np.array([-self.p]))
        if lo[0] != hi[0]:
            raise ValueError(f"D has {self.p} columns on rank {comm.rank} but between {int(lo[0])} "
                             f"and {int(hi[0])} across the ranks; every rank must hold the same columns")
        self.n_total = int(comm.allreduce_sum(np.array([self.n]))[0])
        if self.n_total == 0:
            raise ValueError("D has no rows on any rank")
        # working-set rows travel as uint8 when every rank with rows holds a 0/1-byte dictionary
        small = self.n == 0 or (not self.sparse and self.D.dtype == np.uint8)
        self.transfer_dtype = np.uint8 if comm.allreduce_min(np.array([float(small)]))[0] else np.float64

    @cached_property
    def column_sq_norms(self) -> np.ndarray:
        local = self.local.column_sq_norms if self.local is not None else np.zeros(self.p)
        return self.comm.allreduce_sum(local)

    @cached_property
    def column_norms(self) -> np.ndarray:
        return np.sqrt(self.column_sq_norms)

    def matmul(self, W: np.ndarray) -> np.ndarray:
        """This process's rows of D W."""
        return self.local.matmul(W) if self.local is not None else np.zeros((0, W.shape[1]))

    def rmatmul(self, G: np.ndarray) -> np.ndarray:
        """D^T G over every process's rows (G: this process's rows)."""
        local = self.local.rmatmul(G) if self.local is not None else np.zeros((self.p, G.shape[1]))
        return self.comm.allreduce_sum(local)

    def local_columns(self, idx: np.ndarray) -> np.ndarray:
        """This process's rows of columns idx, in D's own dtype (what travels to rank 0)."""
        block = self.D[:, idx]
        block = block.toarray() if sp.issparse(block) else block
        return np.ascontiguousarray(block, dtype=self.transfer_dtype)


def local_matrix(D):
    """This rank's rows of D, checked (2-D, real, finite): (D, DesignMatrix or None when empty)."""
    if hasattr(D, "matrix") and not sp.issparse(D):
        D = D.matrix
    shape = np.shape(D)
    if len(shape) != 2:
        raise ValueError(f"D must be 2-D (n_samples, n_features), got shape {shape}")
    return D, (DesignMatrix(D) if shape[0] else None)


class ShardedFit:
    """A datafit on this process's rows whose sums (value, conjugate, domain test) run over all
    processes; its weights are normalised over all processes, so the partial sums add up."""

    def __init__(self, fit: WeightedDatafit, comm) -> None:
        self.fit, self.comm = fit, comm
        for attr in ("name", "smooth", "subproblem", "coupled", "labels", "probabilistic"):
            setattr(self, attr, getattr(fit, attr))

    def value(self, Z, Y) -> float:
        return float(self.comm.allreduce_sum(np.array([self.fit.value(Z, Y)]))[0])

    def conjugate(self, U, Y) -> float:
        return float(self.comm.allreduce_sum(np.array([self.fit.conjugate(U, Y)]))[0])

    def in_domain(self, U, Y) -> bool:
        return bool(self.comm.allreduce_min(np.array([float(self.fit.in_domain(U, Y))]))[0] == 1.0)

    def dual_direction(self, Z, Y, multipliers=None) -> np.ndarray:
        return self.fit.dual_direction(Z, Y, multipliers)

    def predict(self, Z, classes):
        return self.fit.predict(Z, classes)


@dataclass
class ShardedProblem(Problem):
    """A ``Problem`` whose rows are this process's; see the module docstring."""

    comm: object = None
    base: Datafit | None = None
    s: np.ndarray | None = None  # weights of this process's rows, normalised over all processes

    @property
    def reduce_sum(self):
        return self.comm.allreduce_sum

    def agree(self, check, *args):
        """``check(*args)`` on every rank; when it raises on one, every rank raises (``agree``)."""
        return agree(self.comm, check, *args)

    def check_same_call(self, reg: float, tol: float, max_iter: int, W: np.ndarray) -> None:
        """ValueError on every rank unless every rank solves with the same reg, tol, max_iter and
        starting coefficients (compared by size and two sums): different ones would desynchronise
        the collectives of the working-set loop."""
        W = np.asarray(W, dtype=np.float64)
        a = np.array([reg, tol, max_iter, W.size, W.sum(), (W * W).sum()])
        lo, hi = self.comm.allreduce_min(a), -self.comm.allreduce_min(-a)
        if np.any(lo != hi):
            raise ValueError("reg, tol, max_iter or warm_start differ between the ranks of the "
                             "process group; every rank must pass the same ones")

    def ws_rows(self, ws: np.ndarray, compact: bool = False):
        """Merge and gather the working-set rows on rank 0 (the others get Nones); for the squared
        loss, the Gram form instead (``_gram_rows``); for the logistic loss and large softmax
        problems, nothing (``solve_ws`` solves on the rank-local rows)."""
        if self.base.name == "squared":
            self._ws_local = False
            return self._gram_rows(ws)
        self._ws_local = self.base.name == "logistic" or self._softmax_sharded(ws)
        if self._ws_local:
            self._ws = ws  # solved on the rank-local rows (``_newton_gram`` / ``_newton_hvp``)
            return None, None, None, None, None
        comm = self.comm
        C = self.Y.shape[1]
        X = self.M.local_columns(ws)
        if self.M.n:
            red = reduce_rows(DesignMatrix(X), self.Y, self.s)
            rows, weights, self._local_inverse = red.rows, red.weights, red.inverse
        else:
            rows, weights = np.zeros(0, dtype=np.intp), np.zeros(0)
            self._local_inverse = np.zeros(0, dtype=np.intp)
        Xs, Ys, ws_ = comm.gather(X[rows]), comm.gather(self.Y[rows]), comm.gather(weights)
        if comm.rank != 0:
            return None, None, None, None, None
        self._sizes = [len(w) for w in ws_]
        Xg = np.concatenate([x.reshape(-1, len(ws)) for x in Xs])
        Yg = np.concatenate([y.reshape(-1, C) for y in Ys])
        wg = np.concatenate(ws_)
        red = reduce_rows(DesignMatrix(Xg), Yg, wg / wg.sum())
        self._global_inverse = red.inverse
        Mk = DesignMatrix(Xg[red.rows])
        a = np.sqrt(len(red.rows) * red.weights)
        return (Mk.columns(np.arange(len(ws)), compact=compact), Yg[red.rows], red.weights,
                self.base.weighted(red.weights, a), a)

    def _newton_gram(self, W0: np.ndarray, reg: float, tol_abs: float) -> np.ndarray:
        """Proximal Newton for the logistic loss on the working set, sharded: each iteration
        all-reduces the model's Gram sums Q = sum_i s_i h_i x_i x_i^T and g = sum_i s_i l'_i x_i
        (|ws| (|ws| + 1) numbers), rank 0 minimises the model (a squared loss on virtual rows,
        ``_virtual_rows``) and broadcasts the step, and the Armijo line search all-reduces the
        objective (one number per trial). Stops when the working set's duality gap (the gradient
        made feasible, its conjugate all-reduced) is below ``tol_abs``, as ``prox_newton`` does."""
        comm, pen, fit = self.comm, self.pen, self.base
        X = self.M.local_columns(self._ws).astype(np.float64)
        W = np.array(W0, dtype=np.float64)
        Z = X @ W
        k = X.shape[1]

        def objective(Z_, W_):
            local = np.array([self.s @ fit.losses(Z_, self.Y)])
            return float(comm.allreduce_sum(local)[0]) + reg * pen.value(W_)

        obj = objective(Z, W)
        for _ in range(NEWTON_MAX_ITER):
            G, H = fit.grad_hess(Z, self.Y)
            U = self.fit.dual_direction(Z, self.Y)  # s_i l'_i: the gradient, this rank's rows
            sX = X * (self.s * H[:, 0])[:, None]
            total = comm.allreduce_sum(np.concatenate([sX.T @ X, X.T @ U], axis=1))
            Q, g = total[:, :k], total[:, k:]
            scale, pen_conjugate = pen.feasible_dual(g, reg)
            if self.fit.in_domain(scale * U, self.Y):
                dual = -self.fit.conjugate(scale * U, self.Y) - pen_conjugate
                if obj - dual <= tol_abs:
                    break
            V = None
            if comm.rank == 0:  # the model's minimiser v: 1/2 v^T Q v - v^T (Q W - g) + reg pen(v)
                L, Yv = _virtual_rows(Q, Q @ W - g)
                V = prox_newton(L, Yv, W, DATAFITS["squared"], pen, reg, NEWTON_MODEL_TOL * tol_abs)
            step = _newton_update(objective, g, pen, reg, W, Z, X, comm.broadcast_object(V) - W, obj)
            if step is None:
                break
            W, Z, obj = step
        return W

    def _softmax_sharded(self, ws: np.ndarray) -> bool:
        """Whether a softmax working set is solved on the rank-local rows (``_newton_hvp``) rather
        than gathered on rank 0: when its rows (|ws| entries each, in the agreed transfer dtype)
        would exceed ``SOFTMAX_GATHER_MAX_BYTES`` (the same answer on every rank: it depends on
        global sizes)."""
        size = self.M.n_total * len(ws) * np.dtype(self.M.transfer_dtype).itemsize
        return self.base.name == "softmax" and size > SOFTMAX_GATHER_MAX_BYTES

    def _newton_hvp(self, W0: np.ndarray, reg: float, tol_abs: float) -> np.ndarray:
        """Proximal Newton for softmax on the working set, on the rank-local rows: each Newton
        iteration all-reduces the gradient X^T U (|ws| x C numbers), minimises the quadratic model
        by accelerated proximal gradient (``_model_fista``) and, for orthant-linear penalties,
        finishes it with conjugate gradients on the support (``_support_cg``), every
        Hessian-vector product one all-reduce of |ws| x C numbers; the Armijo line search
        all-reduces the objective. Stops when the working set's duality gap is below ``tol_abs``,
        as ``prox_newton`` does. Every rank runs the same iterations on the same all-reduced
        numbers; the caller broadcasts rank 0's result."""
        comm, pen, fit = self.comm, self.pen, self.base
        X = self.M.local_columns(self._ws).astype(np.float64)
        s, Y = self.s, self.Y
        W = np.array(W0, dtype=np.float64)
        Z = X @ W

        def objective(Z_, W_):
            local = np.array([s @ fit.losses(Z_, Y)]) if len(s) else np.zeros(1)
            return float(comm.allreduce_sum(local)[0]) + reg * pen.value(W_)

        obj = objective(Z, W)
        state = {"L": None, "v": None}
        for _ in range(NEWTON_MAX_ITER):
            P = fit.softmax_probs(Z)
            U = s[:, None] * (P - Y)  # the gradient, this rank's rows (``dual_direction``)
            # the gradient X^T U and the Hessian's diagonal sum_i s_i x_ij^2 p_ic (1 - p_ic)
            both = comm.allreduce_sum(np.concatenate([X.T @ U, (X * X).T @ (s[:, None] * P * (1 - P))]))
            g, hdiag = both[:len(both) // 2], both[len(both) // 2:]
            scale, pen_conjugate = pen.feasible_dual(g, reg)
            if self.fit.in_domain(scale * U, Y):
                dual = -self.fit.conjugate(scale * U, Y) - pen_conjugate
                if obj - dual <= tol_abs:
                    break

            def hvp(V, P=P):  # sum_i s_i x_i (diag(p_i) - p_i p_i^T) (x_i^T V), every rank's rows
                PR = P * (X @ V)
                return comm.allreduce_sum(X.T @ (s[:, None] * (PR - P * PR.sum(axis=1, keepdims=True))))

            # with a support Newton step after it, FISTA only needs to find the support
            fista_iters = MODEL_FISTA_SUPPORT_ITER if pen.name in SUPPORT_NEWTON else MODEL_FISTA_MAX_ITER
            V = _model_fista(g, hvp, W, pen, reg, state, tol_abs, fista_iters)
            V = _support_cg(g, hvp, W, V, reg, pen, hdiag)
            step = _newton_update(objective, g, pen, reg, W, Z, X, V - W, obj)
            if step is None:
                break
            W, Z, obj = step
        return W

    def _gram_rows(self, ws: np.ndarray):
        """The squared loss's working-set subproblem from sums alone: Q = sum_i s_i x_i x_i^T and
        B = sum_i s_i x_i y_i^T over all ranks (one all-reduce of |ws| (|ws| + C) numbers,
        whatever n is), rewritten on rank 0 as |ws| virtual rows: with Q = V diag(lam) V^T,
        rows L = sqrt(m) diag(sqrt(lam)) V^T and labels sqrt(m) diag(1 / sqrt(lam)) V^T B
        (m = |ws|), the unweighted squared loss of the virtual rows equals the subproblem's
        objective up to a constant, so the same proximal Newton solves it."""
        X = self.M.local_columns(ws).astype(np.float64)
        sX = X * self.s[:, None]
        k = len(ws)
        local = np.concatenate([sX.T @ X, sX.T @ self.Y], axis=1)  # (k, k + C)
        total = self.comm.allreduce_sum(local)
        if self.comm.rank != 0:
            return None, None, None, None, None
        L, Yv = _virtual_rows(total[:, :k], total[:, k:])
        return L, Yv, None, self.base, None

    def conic_solver(self):
        """Hinge working sets all reach the loop here (the row-generation LP of one process needs
        every column): group L1 with several outputs is a cone program, the rest linear ones."""
        return hinge_socp if self.pen.conic == "socp" and self.Y.shape[1] > 1 else _hinge_lp

    def solve_ws(self, solver, *args):
        """Rank 0 solves; every rank gets its result (multipliers cut into each rank's rows).
        The logistic loss's proximal Newton runs on every rank instead (``_newton_gram``)."""
        if solver is prox_newton and self._ws_local:
            _, _, W0, _, _, reg, tol_abs = args
            if self.base.name == "logistic":
                return self._newton_gram(W0, reg, tol_abs)
            return self.comm.broadcast_object(self._newton_hvp(W0, reg, tol_abs))
        out = None
        if self.comm.rank == 0:
            out = solver(*args)
            if isinstance(out, tuple):  # an exact program: (W, multipliers of the merged rows)
                W_ws, alpha = out
                per_row = alpha[self._global_inverse]
                bounds = np.concatenate([[0], np.cumsum(self._sizes)])
                out = (W_ws, [per_row[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
        return self.comm.broadcast_object(out)

    def local_multipliers(self, alpha):
        mine = alpha[self.comm.rank]
        out = np.zeros((self.M.n, self.Y.shape[1]))
        pos = self._local_inverse >= 0
        out[pos] = mine[self._local_inverse[pos]]
        return out


def _prox(pen: Penalty, V: np.ndarray, t: float) -> np.ndarray:
    """The proximal operator of t * pen at V (rows of W), through the penalty's compiled prox."""
    out = np.array(V, dtype=np.float64)
    C = out.shape[1]
    if pen.group:
        for j in np.flatnonzero(np.any(out != 0, axis=1)):
            pen.prox(out[j], 0, C, 1.0, t, pen.params)
    else:
        flat = out.reshape(-1)
        pen.prox(flat, 0, flat.size, 1.0, t, pen.params)
    return out


def _model_fista(g, hvp, W, pen, reg, state, tol_abs, max_iter=MODEL_FISTA_MAX_ITER):
    """Approximate minimiser of the proximal-Newton model m(V) = g.(V - W) + 1/2 (V - W).H(V - W)
    + reg pen(V) by FISTA with adaptive restart (O'Donoghue & Candes 2015), one Hessian-vector
    product ``hvp`` (an all-reduce) per iteration. The step is 1 / L with L a power-iteration
    estimate of the largest eigenvalue of H, raised by ``POWER_SAFETY`` (``state`` keeps the
    eigenvector between Newton iterations, so later estimates take ``POWER_ITERS_WARM`` products),
    doubled whenever an unaccelerated step fails to decrease the model. Stops when the model's
    decrease per iteration falls below ``MODEL_FISTA_RTOL`` of its total decrease (plus 1e-3 of
    ``tol_abs``), or after ``max_iter`` iterations."""
    v = state["v"]
    if v is None:  # deterministic start, not in H's null space (the same shift for every class)
        v = np.random.default_rng(0).standard_normal(g.shape)
    lam = 0.0
    for _ in range(POWER_ITERS if state["L"] is None else POWER_ITERS_WARM):
        Hv = hvp(v)
        norm = float(np.linalg.norm(Hv))
        if norm == 0.0:
            break
        lam, v = float(np.sum(v * Hv)) / float(np.sum(v * v)), Hv / norm
        state["v"] = v
    L = max(POWER_SAFETY * lam, MIN_CURVATURE)
    model = lambda D, HD, V: float(np.sum(g * D)) + 0.5 * float(np.sum(D * HD)) + reg * pen.value(V)  # noqa: E731
    x, Hx, fx = W, np.zeros_like(W), reg * pen.value(W)
    y, Hy, t = x, Hx, 1.0
    start = fx
    for _ in range(max_iter):
        x_new = _prox(pen, y - (g + Hy) / L, reg / L)
        Hx_new = hvp(x_new - W)
        f_new = model(x_new - W, Hx_new, x_new)
        if not f_new <= fx + 1e-14 * max(1.0, abs(fx)):  # went up (or is not finite)
            if y is x:  # a plain proximal-gradient step went up: L is below H's largest eigenvalue
                L *= 2.0
            y, Hy, t = x, Hx, 1.0  # restart the momentum from the best point
            continue
        t_new = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        beta = (t - 1.0) / t_new
        done = fx - f_new <= MODEL_FISTA_RTOL * max(start - f_new, 0.0) + 1e-3 * tol_abs
        y, Hy = x_new + beta * (x_new - x), Hx_new + beta * (Hx_new - Hx)
        x, Hx, fx, t = x_new, Hx_new, f_new, t_new
        if done:
            break
    state["L"] = L / POWER_SAFETY
    return x


def _penalty_on_support(pen: Penalty, V: np.ndarray, reg: float):
    """reg * pen near V, on V's support, where it is smooth: (mask, gradient, Hessian-vector
    product, whether entries must keep their sign), or None for a penalty without this form.
    L1 and the elastic net are linear / quadratic on each sign orthant; group L1 is smooth on the
    rows that are not zero."""
    if pen.name not in SUPPORT_NEWTON:
        return None
    if pen.name == "group_l1":
        mask = np.repeat(np.any(V != 0, axis=1, keepdims=True), V.shape[1], axis=1)
        norms = np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)
        u = V / norms

        def hess(d):  # reg (I - u u^T) d_j / ||v_j|| per row
            return reg * (d - u * np.sum(u * d, axis=1, keepdims=True)) / norms * mask

        return mask, reg * u * mask, hess, False
    a = float(pen.params[0]) if pen.name == "elastic_net" else 1.0
    mask = V != 0
    return mask, reg * (a * np.sign(V) + (1.0 - a) * V) * mask, lambda d: reg * (1.0 - a) * d * mask, True


def _support_cg(g, hvp, W, V, reg, pen, hdiag):
    """V improved by a Newton step on its support, where the penalty is smooth
    (``_penalty_on_support``): conjugate gradients on (H_SS + pen'' + mu I) d = r, r the model's
    gradient on the support, preconditioned by the diagonal of H (``hdiag``), each product one
    all-reduce; for the orthant penalties, entries whose sign would flip stop at zero. Returned
    only if it lowers the model (one more product)."""
    terms = _penalty_on_support(pen, V, reg)
    if terms is None or not np.any(V):
        return V
    mask, pen_grad, pen_hess, keep_signs = terms
    HV = hvp(V - W)
    r = (g + HV) * mask + pen_grad
    rr0 = float(np.sum(r * r))
    if rr0 == 0.0:
        return V
    mu = SUPPORT_DAMPING * np.sqrt(rr0)
    precond = np.where(mask, hdiag + np.abs(pen_hess(np.ones_like(V))) + mu, 1.0)
    step = pcg(lambda d: hvp(d) * mask + pen_hess(d), r, mu, lambda res: res / precond,
               SUPPORT_MAX_CG, rtol=float(np.sqrt(min(0.01, np.sqrt(rr0)))))
    cand = V - step
    if keep_signs:
        cand[np.sign(cand) != np.sign(V)] = 0.0

    def model(X_, HX):
        D = X_ - W
        return float(np.sum(g * D)) + 0.5 * float(np.sum(D * HX)) + reg * pen.value(X_)

    return cand if model(cand, hvp(cand - W)) < model(V, HV) else V


def _newton_update(objective, g, pen, reg: float, W, Z, X, dW, obj: float):
    """The proximal Newton step dW from W (Z = X W, g the gradient) with backtracking by halving
    until the objective falls by 1e-4 of the model's decrease: the new (W, Z, objective), or None
    when the model's decrease is at round-off level or 40 halvings find none. Every rank runs the
    same evaluations (``objective`` all-reduces)."""
    decrease = float(np.sum(g * dW)) + reg * (pen.value(W + dW) - pen.value(W))
    if decrease >= -NEWTON_MIN_DECREASE * max(1.0, abs(obj)):  # round-off: nothing to gain
        return None
    R, t = X @ dW, 1.0
    for _ in range(40):
        new = objective(Z + t * R, W + t * dW)
        if new <= obj + 1e-4 * t * decrease:
            return W + t * dW, Z + t * R, new
        t *= 0.5
    return None


def _virtual_rows(Q: np.ndarray, B: np.ndarray):
    """k rows L and labels Yv with L^T L = k Q and L^T Yv = k B, so that the squared loss
    (1 / 2k) ||L v - Yv||^2 = 1/2 v^T Q v - v^T B + constant: Q = V diag(lam) V^T, L = sqrt(k)
    diag(sqrt(lam)) V^T, Yv = sqrt(k) diag(1 / sqrt(lam)) V^T B over the eigenvalues kept."""
    k = Q.shape[0]
    lam, V = np.linalg.eigh((Q + Q.T) / 2)
    keep = lam > GRAM_EIG_FLOOR * max(lam.max(), 0.0)
    root = np.sqrt(np.where(keep, lam, 0.0))
    Yv = np.where(keep, 1.0 / np.where(keep, root, 1.0), 0.0)[:, None] * (V.T @ B)
    scale = np.sqrt(k)
    return np.asfortranarray(scale * (root[:, None] * V.T)), scale * Yv


def _hinge_lp(X, Y, reg, weights):
    """Hinge + L1 on the gathered working set, solved exactly by ``hinge_fast``: (W, multipliers)."""
    W, alpha, _ = solve_hinge_l1(X, Y, reg, tol=WS_LP_TOL, counts=weights)
    return W, alpha


def _check_labels(fit: Datafit, y, n: int):
    """This rank's labels checked as far as they can be alone: (Y, or None for integer classes,
    whose encoding needs the classes of every rank)."""
    if fit.labels == "real":
        Y = fit.encode(y)[0]
    else:
        check_real_array("y", y)
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (n,) for this loss, got shape {y.shape}")
        if fit.labels == "pm1":  # encoded with both labels in front, so a shard may hold one class
            Y = fit.encode(np.concatenate([np.array([-1.0, 1.0]), y.astype(np.float64)]))[0][2:]
        else:
            if y.dtype.kind == "f" and not np.all(y == np.round(y)):
                raise ValueError("y must hold integer class labels for this loss")
            Y = None
    if len(y) != n:
        raise ValueError(f"y has {len(y)} samples but D has {n} rows")
    return Y


def _encode(fit: Datafit, y, Y, comm):
    """Labels of this process encoded with the classes of every process: (Y, classes)."""
    if fit.labels == "real":
        lo, hi = comm.allreduce_min(np.array([Y.shape[1]])), -comm.allreduce_min(np.array([-Y.shape[1]]))
        if lo[0] != hi[0]:
            raise ValueError(f"y has {int(lo[0])} to {int(hi[0])} outputs across the ranks; every "
                             f"rank must pass the same number")
        return Y, None
    if fit.labels == "pm1":
        seen = comm.allreduce_sum(np.array([np.any(Y == -1), np.any(Y == 1)], dtype=np.float64))
        if not np.all(seen > 0):
            raise ValueError("y holds a single class over all ranks; binary losses need both -1 and +1")
        return Y, None
    y = np.asarray(y)
    prefix = np.unique(np.concatenate(
        [np.asarray(u, dtype=np.float64) for u in comm.allgather(np.unique(y).astype(np.float64))]))
    if len(prefix) < 2:
        raise ValueError(f"y holds a single class over all ranks ({prefix[0]!r}); at least two are needed")
    Y, classes = fit.encode(np.concatenate([prefix.astype(y.dtype if y.size else np.float64), y]))
    return Y[len(prefix):], classes


def _local_weights(w: np.ndarray, comm) -> np.ndarray:
    """This process's sample weights divided by the sum over every process."""
    total = float(comm.allreduce_sum(np.array([w.sum()]))[0])
    if not np.isfinite(total):
        raise ValueError("sample_weight is too large: its sum is not finite in float64; rescale it")
    if total <= 0:
        raise ValueError("sample_weight is all zero on every rank: at least one sample must have a "
                         "positive weight")
    return w / total


def _check_local(D, y, loss, penalty, sample_weight, checks):
    """Every check of ``prepare_sharded`` that needs no other rank (``checks`` first)."""
    if checks is not None:
        checks()
    check_choice("loss", loss, DATAFITS)
    fit, pen = DATAFITS[loss], get_penalty(penalty)
    if fit.subproblem == "conic" and pen.conic is None:
        raise ValueError(f"loss {loss!r} is solved as a linear / second-order cone program, which "
                         f"penalty {pen.name!r} has no form for; use penalty 'l1' or 'group_l1'")
    D, local = local_matrix(D)
    n = np.shape(D)[0]
    Y = _check_labels(fit, y, n)
    w = np.ones(n) if sample_weight is None else weight_array(sample_weight, n)
    return fit, pen, D, local, Y, w


def prepare_sharded(D, y, loss: str, penalty: str | Penalty, sample_weight, comm,
                    checks=None) -> ShardedProblem:
    """The sharded counterpart of ``solver.prepare``: this process's rows, global sums.

    The checks that depend on this rank's arguments alone (and ``checks()``, the caller's own)
    run first on every rank and are agreed on (``_agree.agree``): when one rank's fail, every rank
    raises ValueError at once instead of waiting in a collective. The checks across ranks (column
    counts, classes, weight sums) raise on every rank by construction."""
    fit, pen, D, local, Y, w = agree(comm, _check_local, D, y, loss, penalty, sample_weight, checks)
    M = ShardedMatrix(D, comm, local)
    Y, classes = _encode(fit, y, Y, comm)
    s = _local_weights(w, comm)
    squeeze = Y.shape[1] == 1 and np.ndim(y) == 1
    sfit = ShardedFit(fit.weighted(s), comm)
    return ShardedProblem(M, Y, sfit, pen, classes, squeeze, None, M, Y, sfit, None, None,
                          comm=comm, base=fit, s=s)


def sharded_reg_max(problem: ShardedProblem) -> float:
    """reg_max of a sharded problem: the penalty's dual norm of D^T grad F(0) over all rows."""
    U0 = problem.fit.dual_direction(np.zeros_like(problem.Y), problem.Y)
    with np.errstate(over="ignore", invalid="ignore"):
        return problem.pen.reg_max(problem.M.rmatmul(U0))
