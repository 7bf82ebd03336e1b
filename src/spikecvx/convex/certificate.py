"""The optimality certificate: the result of a solve and the feasible dual points behind its gap.

The reported gap is primal(W) - dual(U) for an explicitly feasible U, so it bounds the
suboptimality of W whatever the algorithm did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Anderson extrapolation: Tikhonov term, relative to the trace of the Gram matrix of differences,
# that keeps the small linear system solvable when consecutive differences are nearly collinear.
_ANDERSON_RIDGE = 1e-12

@dataclass
class SolveResult:
    """Solution and optimality certificate of one convex solve (all numbers float64)."""

    coef: np.ndarray
    primal: float
    dual: float
    gap: float
    converged: bool
    n_iter: int
    time: float
    reg: float
    loss: str
    penalty: str
    tol: float
    classes: np.ndarray | None = None
    dual_point: np.ndarray | None = field(default=None, repr=False)
    penalty_params: dict = field(default_factory=dict)  # e.g. {"l1_ratio": 0.5} for the elastic net

    @property
    def rel_gap(self) -> float:
        """gap / max(1, |primal|): the quantity compared against ``tol``."""
        return self.gap / max(1.0, abs(self.primal))

    @property
    def n_nonzero_rows(self) -> int:
        """Number of dictionary columns (neurons) with a non-zero coefficient."""
        c = self.coef.reshape(self.coef.shape[0], -1)
        return int(np.count_nonzero(np.any(c != 0, axis=1)))

    def certificate(self) -> dict:
        return dict(primal=self.primal, dual=self.dual, gap=self.gap, rel_gap=self.rel_gap,
                    reg=self.reg, converged=self.converged, n_iter=self.n_iter, time=self.time,
                    loss=self.loss, penalty=self.penalty, penalty_params=dict(self.penalty_params),
                    nonzero_rows=self.n_nonzero_rows)

    def to_dict(self) -> dict:
        """JSON-ready dict: the certificate fields, ``coef`` as nested lists, ``classes`` as a list
        (``dual_point`` is left out)."""
        return dict(coef=self.coef.tolist(), primal=self.primal, dual=self.dual, gap=self.gap,
                    converged=self.converged, n_iter=self.n_iter, time=self.time, reg=self.reg,
                    loss=self.loss, penalty=self.penalty, tol=self.tol,
                    classes=None if self.classes is None else self.classes.tolist(),
                    penalty_params=dict(self.penalty_params))

    @classmethod
    def from_dict(cls, d: dict) -> SolveResult:
        """Inverse of ``to_dict`` (``dual_point`` is None)."""
        classes = d.get("classes")
        return cls(np.asarray(d["coef"], dtype=np.float64), float(d["primal"]), float(d["dual"]),
                   float(d["gap"]), bool(d["converged"]), int(d["n_iter"]), float(d["time"]),
                   float(d["reg"]), str(d["loss"]), str(d["penalty"]), float(d["tol"]),
                   None if classes is None else np.asarray(classes),
                   penalty_params=dict(d.get("penalty_params", {})))


class DualTracker:
    """Best feasible dual point seen, with Anderson extrapolation of recent gradients.

    Scaling the current gradient into the dual constraint gives a loose bound on badly
    conditioned problems; extrapolating the last few gradients (dual extrapolation, as in celer)
    usually lands much closer to the dual optimum. Every candidate is made feasible the way the
    penalty prescribes (scaled into the dual-norm ball for a norm) and checked against the domain
    of F*, so the bound stays rigorous: ``best`` is always the dual value of ``point``.
    """

    def __init__(self, fit, pen, reg, Y, depth: int = 5, reduce_sum=None) -> None:
        self.fit, self.pen, self.reg, self.Y, self.depth = fit, pen, reg, Y, depth
        self.reduce_sum = reduce_sum  # sums the Anderson Gram matrix over row shards (None: one process)
        self.history: list[np.ndarray] = []
        self.best, self.point = -np.inf, None

    def _feasible_value(self, U, DtU) -> float:
        scale, pen_conjugate = self.pen.feasible_dual(DtU, self.reg)
        U = scale * U
        if not self.fit.in_domain(U, self.Y):
            return -np.inf
        value = -self.fit.conjugate(U, self.Y) - pen_conjugate
        if value > self.best:
            self.best, self.point = value, U
        return value

    def update(self, U: np.ndarray, rmatmul, DtU: np.ndarray | None = None) -> float:
        """Offer the gradient U (and D^T U if known); returns the best dual value so far."""
        self._feasible_value(U, rmatmul(U) if DtU is None else DtU)
        self.history = (self.history + [U])[-self.depth :]
        if len(self.history) == self.depth:
            U_acc = anderson(self.history, self.reduce_sum)
            if U_acc is not None:
                self._feasible_value(U_acc, rmatmul(U_acc))
        return self.best


def anderson(history: list[np.ndarray], reduce_sum=None) -> np.ndarray | None:
    """Anderson extrapolation of a linearly converging sequence of iterates (None if singular).

    ``reduce_sum``: for iterates whose rows are sharded over processes, the function that sums
    the small Gram matrix of differences over the shards (the weights then agree everywhere)."""
    diffs = np.stack([(b - a).ravel() for a, b in zip(history[:-1], history[1:])])
    gram = diffs @ diffs.T
    if reduce_sum is not None:
        gram = reduce_sum(gram)
    try:
        z = np.linalg.solve(gram + _ANDERSON_RIDGE * np.trace(gram) * np.eye(len(gram)), np.ones(len(gram)))
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(z).all() or z.sum() == 0:
        return None
    c = z / z.sum()
    return sum(ci * h for ci, h in zip(c, history[1:]))

