"""Penalties Omega(W) on the coefficient matrix W (P, C): value, proximal operator, dual side.

Each penalty owns everything the solver needs to know about it:

* ``value(W)`` and the compiled proximal operator ``prox`` (with its parameters ``params``),
  which the coordinate-descent kernel calls without knowing which penalty it runs;
* ``group``: whether the prox acts on a whole row of W (one neuron across outputs) or entrywise;
* ``row_dual_norms`` and ``zero_slack``: the optimality test of W_j = 0, used by ``reg_max`` and
  by the working-set priority (a signed subdifferential distance at zero);
* ``feasible_dual``: how a dual candidate U becomes feasible and what the conjugate of
  reg * Omega costs at D^T U, which gives the duality gap;
* ``conic``: the form ("lp", "socp") in which the non-smooth datafits can take the penalty, or
  None if it has none; ``orthant_linear``: whether Omega is linear on each sign orthant (then a
  Newton step on the support with the signs fixed applies).

Dual of  min_W F(D W) + reg * Omega(W):  max_U -F*(U) - (reg Omega)*(-D^T U).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._validation import check_real
from ._kernels import PROX_SIGNATURE


@njit(PROX_SIGNATURE, cache=True)
def _prox_l1(z, lo, hi, curv, reg, params):
    """Soft thresholding at reg / curv."""
    t = reg / curv
    for c in range(lo, hi):
        v = z[c]
        z[c] = v - t if v > t else (v + t if v < -t else 0.0)


@njit(PROX_SIGNATURE, cache=True)
def _prox_group_l1(z, lo, hi, curv, reg, params):
    """Block soft thresholding of z[lo:hi] at reg / curv."""
    norm = 0.0
    for c in range(lo, hi):
        norm += z[c] * z[c]
    norm = np.sqrt(norm)
    shrink = 0.0
    if norm > 0.0:
        shrink = max(0.0, 1.0 - reg / (curv * norm))
    for c in range(lo, hi):
        z[c] *= shrink


@njit(PROX_SIGNATURE, cache=True)
def _prox_elastic_net(z, lo, hi, curv, reg, params):
    """Soft thresholding at reg * l1_ratio / curv, then shrinkage by 1 + reg (1 - l1_ratio) / curv."""
    t = reg * params[0] / curv
    s = 1.0 + reg * (1.0 - params[0]) / curv
    for c in range(lo, hi):
        v = z[c]
        z[c] = (v - t) / s if v > t else ((v + t) / s if v < -t else 0.0)


class Penalty:
    """Base class of the norm penalties (Omega a norm, so (reg Omega)* is the indicator of
    the dual-norm ball of radius reg)."""

    name = ""
    group = False
    conic: str | None = None
    orthant_linear = False
    prox = None
    params = np.zeros(1)

    def value(self, W: np.ndarray) -> float:
        raise NotImplementedError

    def row_dual_norms(self, G: np.ndarray) -> np.ndarray:
        """Per row j, the norm of G_j that decides whether W_j = 0 is optimal (with ``zero_slack``)."""
        raise NotImplementedError

    def zero_slack(self, G: np.ndarray, reg: float) -> np.ndarray:
        """Per row j, how far -G_j (a loss gradient) lies inside the subdifferential of reg * Omega
        at W_j = 0; negative where W_j = 0 is not optimal."""
        return reg - self.row_dual_norms(G)

    def reg_max(self, G0: np.ndarray) -> float:
        """The smallest reg for which W = 0 is optimal, given the gradient G0 = D^T grad F(0)."""
        return float(self.row_dual_norms(G0).max())

    def feasible_dual(self, DtU: np.ndarray, reg: float) -> tuple[float, float]:
        """(s, c): the scale s in [0, 1] that makes s U dual feasible, and the conjugate
        c = (reg Omega)*(-s D^T U) at the scaled point (0 for a norm inside its ball)."""
        top = self.row_dual_norms(DtU).max()
        return (min(1.0, reg / top) if top > 0 else 1.0), 0.0

    def get_params(self) -> dict:
        """The penalty's parameters (``ElasticNet(**get_params())`` rebuilds it); {} for the norms."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class L1(Penalty):
    """Elementwise L1: sum_jc |W_jc|; dual norm of a row is its max-abs entry."""

    name = "l1"
    group = False
    conic = "lp"
    orthant_linear = True
    prox = staticmethod(_prox_l1)

    def value(self, W):
        return float(np.abs(W).sum())

    def row_dual_norms(self, G):
        return np.abs(G).max(axis=1)


class GroupL1(Penalty):
    """Row-wise group L1: sum_j ||W_j,:||_2, which removes whole neurons across outputs."""

    name = "group_l1"
    group = True
    conic = "socp"
    prox = staticmethod(_prox_group_l1)

    def value(self, W):
        return float(np.linalg.norm(W, axis=1).sum())

    def row_dual_norms(self, G):
        return np.linalg.norm(G, axis=1)


class ElasticNet(Penalty):
    """Elastic net: l1_ratio * sum_jc |W_jc| + (1 - l1_ratio) / 2 * sum_jc W_jc^2 (scikit-learn's
    meaning of ``l1_ratio``, in (0, 1]; 1 is the L1 penalty).

    Not a norm: (reg Omega)*(V) = sum_jc max(|V_jc| - reg * l1_ratio, 0)^2 / (2 reg (1 - l1_ratio)),
    finite everywhere, so every U in the domain of F* is dual feasible without scaling.
    Works with the smooth losses (squared, logistic, softmax); the hinge losses, solved as linear
    programs, refuse it (it would need a quadratic program).
    """

    name = "elastic_net"
    group = False
    prox = staticmethod(_prox_elastic_net)

    def __init__(self, l1_ratio: float = 0.5) -> None:
        l1_ratio = check_real("l1_ratio", l1_ratio)
        if not 0.0 < l1_ratio <= 1.0:
            raise ValueError(f"l1_ratio must be in (0, 1], got {l1_ratio!r}")
        self.l1_ratio = l1_ratio
        self.params = np.array([l1_ratio])
        self.orthant_linear = l1_ratio == 1.0  # then it is the L1 penalty

    def value(self, W):
        a = self.l1_ratio
        return float(a * np.abs(W).sum() + 0.5 * (1.0 - a) * np.sum(W * W))

    def row_dual_norms(self, G):
        return np.abs(G).max(axis=1)

    def zero_slack(self, G, reg):
        return reg * self.l1_ratio - self.row_dual_norms(G)

    def reg_max(self, G0):
        return float(self.row_dual_norms(G0).max()) / self.l1_ratio

    def feasible_dual(self, DtU, reg):
        a = self.l1_ratio
        if a == 1.0:
            return super().feasible_dual(DtU, reg)
        excess = np.maximum(np.abs(DtU) - reg * a, 0.0)
        return 1.0, float(np.sum(excess * excess)) / (2.0 * reg * (1.0 - a))

    def get_params(self) -> dict:
        return {"l1_ratio": self.l1_ratio}

    def __repr__(self) -> str:
        return f"ElasticNet(l1_ratio={self.l1_ratio!r})"


PENALTIES = {"l1": L1(), "group_l1": GroupL1(), "elastic_net": ElasticNet(0.5)}


def get_penalty(penalty) -> Penalty:
    """A registered name (see ``PENALTIES``) or a ``Penalty`` instance, as a ``Penalty``."""
    if isinstance(penalty, Penalty):
        return penalty
    if not isinstance(penalty, str):
        raise TypeError(f"penalty must be a name, one of {sorted(PENALTIES)}, or a Penalty object; "
                        f"got {type(penalty).__name__}")
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {sorted(PENALTIES)} or a Penalty object, got {penalty!r}")
    return PENALTIES[penalty]
