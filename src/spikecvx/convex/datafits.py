"""Datafits F(Z) = (1/n) sum_i loss(y_i, Z_i) for Z = D W of shape (n, C).

Each datafit owns its loss: its label set (``encode``), prediction from scores (``predict``) and
the validation score (``score``), its value, per-sample gradient and curvature (for proximal
Newton steps; ``coupled`` says whether the per-sample Hessian couples the outputs, as softmax's
does), its Fenchel conjugate, from which a feasible dual point gives the lower bound of the
duality gap, and which working-set subproblem solves it (``subproblem``: "prox_newton" for the
smooth losses, "conic" for the hinge losses, solved exactly as linear or second-order cone
programs). ``Datafit.weighted`` gives the same datafit under sample weights. Everything is
float64 numpy; nothing here knows about spikes.

Dual of min_W F(DW) + reg * Omega(W):  max_U -F*(U) - (reg Omega)*(-D^T U); for a norm Omega
the second term is the constraint Omega_dual(D^T U) <= reg. A gradient U = grad F(Z) becomes
feasible as the penalty prescribes (``Penalty.feasible_dual``: scaling into the constraint for a
norm); scaling by a factor in [0, 1] stays inside the domain of F* for every loss here.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp, xlogy

from .._validation import check_real_array

# Per-sample curvature floor of the quadratic model: keeps coordinate steps finite where a
# logistic sample is fitted so well that its curvature underflows.
_MIN_SAMPLE_CURVATURE = 1e-10
# Rounding slack of the domain tests: a dual point rescaled by sample weights (U_i / s_i) lands
# on the boundary of the conjugate's domain only up to rounding; the conjugates project onto it.
_DOMAIN_TOL = 1e-12


class Datafit:
    """Base class. Subclasses set ``name`` and implement the per-sample pieces: ``losses``,
    ``grad_hess``, ``sample_conjugates`` and ``sample_in_domain``; the (1/n)-scaled objective,
    its gradient and its conjugate follow from them here, and ``weighted`` gives the same
    datafit under sample weights."""

    name = ""
    smooth = True
    subproblem = "prox_newton"
    coupled = False
    labels = "classes"  # what y holds: "pm1" (-1 / +1, one output), "classes" (integers) or "real"
    probabilistic = False  # whether softmax / sigmoid of the scores are the model's probabilities

    def encode(self, y) -> tuple[np.ndarray, np.ndarray | None]:
        """Validate labels and return (Y as float64 (n, C), classes or None)."""
        raise NotImplementedError

    def losses(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Per-sample losses loss(y_i, Z_i), (n,)."""
        raise NotImplementedError

    def values(self, Z: np.ndarray, Y: np.ndarray) -> float:
        """sum_i loss(y_i, Z_i) (not divided by n)."""
        return float(np.sum(self.losses(Z, Y)))

    def grad_hess(self, Z, Y):
        """Per-sample gradient and diagonal curvature of the loss at Z, both (n, C)."""
        raise NotImplementedError

    def sample_conjugates(self, V: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Per-sample conjugates loss_i*(V_i), (n,), for V inside their domain (``sample_in_domain``)."""
        raise NotImplementedError

    def sample_in_domain(self, V: np.ndarray, Y: np.ndarray) -> bool:
        """Whether every loss_i*(V_i) is finite."""
        return True

    def sample_direction(self, Z, Y, multipliers: np.ndarray | None = None) -> np.ndarray:
        """Per-sample gradient of the loss at Z (for the hinge: -y alpha with the given multipliers)."""
        return self.grad_hess(Z, Y)[0]

    def value(self, Z, Y) -> float:
        return self.values(Z, Y) / Z.shape[0]

    def conjugate(self, U: np.ndarray, Y: np.ndarray) -> float:
        """F*(U) for F(Z) = (1/n) sum_i loss(y_i, Z_i); U must lie in its domain."""
        n = U.shape[0]
        return float(np.sum(self.sample_conjugates(n * U, Y))) / n

    def in_domain(self, U, Y) -> bool:
        """Whether F*(U) is finite (U may be an extrapolated, not a scaled, gradient)."""
        return self.sample_in_domain(U.shape[0] * U, Y)

    def dual_direction(self, Z, Y, multipliers: np.ndarray | None = None) -> np.ndarray:
        """grad F(Z) = per-sample gradient / n: the dual candidate before scaling.
        ``multipliers`` (from an exact conic subproblem) are used by the non-smooth datafits."""
        return self.sample_direction(Z, Y, multipliers) / Z.shape[0]

    def model_curvature(self, Z: np.ndarray, H: np.ndarray) -> np.ndarray:
        """What the coordinate-descent kernel takes as curvature: the diagonal H, floored (for a
        ``coupled`` datafit, what its coupled Hessian is built from)."""
        return np.maximum(H, _MIN_SAMPLE_CURVATURE)

    def predict(self, Z: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
        """Predictions from scores Z = D W ((n,) for one output, (n, C) otherwise)."""
        raise NotImplementedError

    def score(self, pred: np.ndarray, y) -> float:
        """Validation score of predictions (larger is better): accuracy for classifiers."""
        return float(np.mean(pred == np.asarray(y)))

    def weighted(self, weights: np.ndarray, row_scale: np.ndarray | None = None) -> WeightedDatafit:
        """This datafit under sample weights (see ``WeightedDatafit``)."""
        return WeightedDatafit(self, weights, row_scale)


def _sign_predict(Z, classes):
    return np.where(Z >= 0, 1.0, -1.0)


def _argmax_predict(Z, classes):
    return classes[np.argmax(Z, axis=1)]


def _labels_1d(y, name="y") -> np.ndarray:
    check_real_array(name, y)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n,) for this loss, got shape {y.shape}")
    if y.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return y


def _binary_pm1(y) -> np.ndarray:
    y = _labels_1d(y).astype(np.float64)
    bad = ~np.isin(y, (-1.0, 1.0))
    if bad.any():
        raise ValueError(f"y must hold labels in {{-1, +1}} for this loss, found {np.unique(y[bad])[:5]}")
    if len(np.unique(y)) < 2:
        raise ValueError("y holds a single class; binary losses need both -1 and +1")
    return y[:, None]


def _class_indices(y) -> tuple[np.ndarray, np.ndarray]:
    y = _labels_1d(y)
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise ValueError("y must hold integer class labels for this loss")
    classes, idx = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"y holds a single class ({classes[0]!r}); at least two are needed")
    return classes, idx


class Squared(Datafit):
    """(1/(2n)) ||Z - Y||^2 (the scikit-learn Lasso scaling); y real, (n,) or (n, C)."""

    name = "squared"
    labels = "real"

    def encode(self, y):
        check_real_array("y", y)
        Y = np.asarray(y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2:
            raise ValueError(f"y must be (n,) or (n, C) for the squared loss, got shape {Y.shape}")
        return Y, None

    def losses(self, Z, Y):
        return 0.5 * np.sum((Z - Y) ** 2, axis=1)

    def grad_hess(self, Z, Y):
        return Z - Y, np.ones_like(Z)

    def sample_conjugates(self, V, Y):
        return np.sum(0.5 * V * V + V * Y, axis=1)

    def predict(self, Z, classes):
        return Z

    def score(self, pred, y):
        """Minus the mean squared error."""
        return -float(np.mean((pred - np.asarray(y).reshape(pred.shape)) ** 2))


class Hinge(Datafit):
    """(1/n) sum_i max(0, 1 - y_i z_i), y in {-1, +1}; one column per binary problem."""

    name = "hinge"
    labels = "pm1"
    smooth = False
    subproblem = "conic"
    predict = staticmethod(_sign_predict)

    def encode(self, y):
        return _binary_pm1(y), None

    def losses(self, Z, Y):
        return np.sum(np.maximum(0.0, 1.0 - Y * Z), axis=1)

    def sample_direction(self, Z, Y, multipliers: np.ndarray | None = None):
        """-y alpha with alpha the LP multipliers, or the hinge subgradient (alpha = 1 below the
        margin, 0 above) when none are given."""
        alpha = multipliers
        if alpha is None:
            alpha = (Y * Z < 1.0).astype(np.float64)
        return -Y * alpha

    def sample_conjugates(self, V, Y):
        return -np.sum(np.clip(-V * Y, 0.0, 1.0), axis=1)  # alpha = -v y in [0, 1]; loss* = -alpha

    def sample_in_domain(self, V, Y):
        a = -V * Y
        return bool(np.all((a >= -_DOMAIN_TOL) & (a <= 1 + _DOMAIN_TOL)))


class HingeOVR(Hinge):
    """One-vs-rest hinge: C binary hinge problems on integer class labels (sum of the C losses)."""

    name = "hinge_ovr"
    labels = "classes"
    predict = staticmethod(_argmax_predict)

    def encode(self, y):
        classes, idx = _class_indices(y)
        Y = -np.ones((len(idx), len(classes)))
        Y[np.arange(len(idx)), idx] = 1.0
        return Y, classes


class Logistic(Datafit):
    """(1/n) sum_i log(1 + exp(-y_i z_i)), y in {-1, +1}."""

    name = "logistic"
    labels = "pm1"
    probabilistic = True
    predict = staticmethod(_sign_predict)

    def encode(self, y):
        return _binary_pm1(y), None

    def losses(self, Z, Y):
        return np.sum(np.logaddexp(0.0, -Y * Z), axis=1)

    def grad_hess(self, Z, Y):
        s = expit(-Y * Z)
        return -Y * s, s * (1.0 - s)

    sample_in_domain = Hinge.sample_in_domain

    def sample_conjugates(self, V, Y):
        a = np.clip(-V * Y, 0.0, 1.0)
        return np.sum(xlogy(a, a) + xlogy(1 - a, 1 - a), axis=1)


def _logsumexp_rows(Z: np.ndarray) -> np.ndarray:
    """logsumexp over each row of Z, (n, 1): plain numpy (scipy's version costs more in dispatch
    than in arithmetic on small problems, and the solver calls it every iteration); scipy's for
    rows that hold infinities."""
    m = Z.max(axis=1, keepdims=True)
    if not np.isfinite(m).all():
        return logsumexp(Z, axis=1, keepdims=True)
    return m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True))


class Softmax(Datafit):
    """Multinomial cross-entropy (1/n) sum_i [logsumexp(Z_i) - Z_i,y_i] on integer labels."""

    name = "softmax"
    probabilistic = True
    coupled = True  # per-sample Hessian diag(p_i) - p_i p_i^T
    predict = staticmethod(_argmax_predict)

    def encode(self, y):
        classes, idx = _class_indices(y)
        Y = np.zeros((len(idx), len(classes)))
        Y[np.arange(len(idx)), idx] = 1.0
        return Y, classes

    def losses(self, Z, Y):
        return _logsumexp_rows(Z)[:, 0] - np.sum(Z * Y, axis=1)

    @staticmethod
    def softmax_probs(Z):
        return np.exp(Z - _logsumexp_rows(Z))

    def grad_hess(self, Z, Y):
        P = self.softmax_probs(Z)
        return P - Y, P * (1.0 - P)

    def model_curvature(self, Z, H):
        """The class probabilities p_i, from which the kernel forms diag(p_i) - p_i p_i^T."""
        return self.softmax_probs(Z)

    def sample_in_domain(self, V, Y):
        P = V + Y
        # the rows sum to one up to numpy's allclose tolerance (atol 1e-9 + rtol 1e-5)
        if P.size == 0:
            return True
        return bool(P.min() >= -_DOMAIN_TOL and np.abs(P.sum(axis=1) - 1.0).max() <= 1e-9 + 1e-5)

    def sample_conjugates(self, V, Y):
        P = np.clip(V + Y, 0.0, 1.0)
        return np.sum(xlogy(P, P), axis=1)


class WeightedDatafit:
    """A datafit under sample weights:  F(Z) = sum_i s_i loss(y_i, Z_i / a_i).

    ``weights`` s (n,) are non-negative and sum to 1 (scikit-learn's ``sample_weight``
    normalised, so s_i = 1/n is the unweighted datafit). Every row sum here (value, gradient,
    conjugate) is a plain sum of per-row terms times s_i, which is what a row-sharded solve
    adds up across shards.

    ``row_scale`` a (n,), for the proximal-Newton subproblem, where the rows of the working-set
    matrix are multiplied by a_i = sqrt(n s_i): with scores Z = diag(a) X W the per-sample
    gradient is a_i loss' and the per-sample curvature loss'' itself, so the quadratic model is
    the unweighted one on the scaled rows (exact also for softmax's coupled Hessian). It needs
    every s_i > 0. Without it (a = 1), the per-sample gradient and curvature are n s_i times the
    loss's, and a coupled datafit is refused by ``model_curvature``.
    """

    def __init__(self, base: Datafit, weights: np.ndarray, row_scale: np.ndarray | None = None) -> None:
        self.base = base
        self.s = np.asarray(weights, dtype=np.float64)
        self.a = None if row_scale is None else np.asarray(row_scale, dtype=np.float64)
        self.pos = self.s > 0
        self.all_pos = bool(self.pos.all())
        for attr in ("name", "smooth", "subproblem", "coupled", "labels", "probabilistic"):
            setattr(self, attr, getattr(base, attr))

    def _unscaled(self, Z):
        return Z if self.a is None else Z / self.a[:, None]

    def encode(self, y):
        return self.base.encode(y)

    def predict(self, Z, classes):
        return self.base.predict(Z, classes)

    def score(self, pred, y):
        return self.base.score(pred, y)

    def value(self, Z, Y) -> float:
        return float(self.s @ self.base.losses(self._unscaled(Z), Y))

    def values(self, Z, Y) -> float:
        return Z.shape[0] * self.value(Z, Y)

    def grad_hess(self, Z, Y):
        """Per-sample gradient and curvature in the (1/n)-scaled convention of ``Datafit``:
        n times the derivatives of F with respect to Z_i."""
        G, H = self.base.grad_hess(self._unscaled(Z), Y)
        f = (Z.shape[0] * self.s)[:, None]
        if self.a is None:
            return f * G, f * H
        a = self.a[:, None]
        return (f / a) * G, (f / (a * a)) * H

    def model_curvature(self, Z, H):
        if self.base.coupled:
            if self.a is None:
                raise ValueError(f"the {self.name} curvature under weights needs row_scale")
            return self.base.model_curvature(self._unscaled(Z), H)
        return self.base.model_curvature(Z, H)

    def dual_direction(self, Z, Y, multipliers: np.ndarray | None = None) -> np.ndarray:
        """grad F(Z) = s_i / a_i times the per-sample gradient."""
        f = self.s if self.a is None else self.s / self.a
        return f[:, None] * self.base.sample_direction(self._unscaled(Z), Y, multipliers)

    def _sample_duals(self, U):
        """V_i = a_i U_i / s_i on the rows of positive weight (their conjugate's argument)."""
        V = U[self.pos] / self.s[self.pos, None]
        return V if self.a is None else V * self.a[self.pos, None]

    def conjugate(self, U, Y) -> float:
        """F*(U) = sum_i s_i loss_i*(a_i U_i / s_i) (rows of zero weight contribute 0)."""
        return float(self.s[self.pos] @ self.base.sample_conjugates(self._sample_duals(U), Y[self.pos]))

    def in_domain(self, U, Y) -> bool:
        if not self.all_pos and np.any(U[~self.pos] != 0):
            return False  # a row of zero weight has F_i* finite only at 0
        return self.base.sample_in_domain(self._sample_duals(U), Y[self.pos])


DATAFITS = {d.name: d for d in (Squared(), Hinge(), HingeOVR(), Logistic(), Softmax())}
