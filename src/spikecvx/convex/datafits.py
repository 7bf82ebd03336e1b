"""Datafits F(Z) = (1/n) sum_i loss(y_i, Z_i) for Z = D W of shape (n, C).

Each datafit owns its loss: its label set (``encode``), prediction from scores (``predict``) and
the validation score (``score``), its value, per-sample gradient and curvature (for proximal
Newton steps; ``coupled`` says whether the per-sample Hessian couples the outputs, as softmax's
does), its Fenchel conjugate, from which a feasible dual point gives the lower bound of the
duality gap, and which working-set subproblem solves it (``subproblem``: "prox_newton" for the
smooth losses, "conic" for the hinge losses, solved exactly as linear or second-order cone
programs). Everything is float64 numpy; nothing here knows about spikes.

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


class Datafit:
    """Base class. Subclasses set ``name`` and implement the per-sample pieces."""

    name = ""
    smooth = True
    subproblem = "prox_newton"
    coupled = False
    labels = "classes"  # what y holds: "pm1" (-1 / +1, one output), "classes" (integers) or "real"
    probabilistic = False  # whether softmax / sigmoid of the scores are the model's probabilities

    def encode(self, y) -> tuple[np.ndarray, np.ndarray | None]:
        """Validate labels and return (Y as float64 (n, C), classes or None)."""
        raise NotImplementedError

    def values(self, Z: np.ndarray, Y: np.ndarray) -> float:
        """sum_i loss(y_i, Z_i) (not divided by n)."""
        raise NotImplementedError

    def grad_hess(self, Z, Y):
        """Per-sample gradient and diagonal curvature of the loss at Z, both (n, C)."""
        raise NotImplementedError

    def conjugate(self, U: np.ndarray, Y: np.ndarray) -> float:
        """F*(U) for F(Z) = (1/n) sum_i loss(y_i, Z_i); U must lie in its domain."""
        raise NotImplementedError

    def value(self, Z, Y) -> float:
        return self.values(Z, Y) / Z.shape[0]

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

    def in_domain(self, U, Y) -> bool:
        """Whether F*(U) is finite (U may be an extrapolated, not a scaled, gradient)."""
        return True

    def dual_direction(self, Z, Y, multipliers: np.ndarray | None = None) -> np.ndarray:
        """grad F(Z) = per-sample gradient / n: the dual candidate before scaling.
        ``multipliers`` (from an exact conic subproblem) are used by the non-smooth datafits."""
        return self.grad_hess(Z, Y)[0] / Z.shape[0]


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

    def values(self, Z, Y):
        return 0.5 * float(np.sum((Z - Y) ** 2))

    def grad_hess(self, Z, Y):
        return Z - Y, np.ones_like(Z)

    def conjugate(self, U, Y):
        n = U.shape[0]
        return 0.5 * n * float(np.sum(U * U)) + float(np.sum(U * Y))

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

    def values(self, Z, Y):
        return float(np.sum(np.maximum(0.0, 1.0 - Y * Z)))

    def dual_direction(self, Z, Y, multipliers: np.ndarray | None = None):
        """-y alpha / n with alpha the LP multipliers, or the hinge subgradient (1 below the
        margin, 0 above) when none are given."""
        alpha = multipliers
        if alpha is None:
            alpha = (Y * Z < 1.0).astype(np.float64)
        return -Y * alpha / Z.shape[0]

    def conjugate(self, U, Y):
        return float(np.sum(U * Y))  # alpha = -n U y in [0, 1]; F* = -sum(alpha) / n

    def in_domain(self, U, Y):
        a = -U.shape[0] * U * Y
        return bool(np.all((a >= 0) & (a <= 1)))


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

    def values(self, Z, Y):
        return float(np.sum(np.logaddexp(0.0, -Y * Z)))

    def grad_hess(self, Z, Y):
        s = expit(-Y * Z)
        return -Y * s, s * (1.0 - s)

    in_domain = Hinge.in_domain

    def conjugate(self, U, Y):
        a = np.clip(-U.shape[0] * U * Y, 0.0, 1.0)
        return float(np.sum(xlogy(a, a) + xlogy(1 - a, 1 - a))) / U.shape[0]


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

    def values(self, Z, Y):
        return float(np.sum(logsumexp(Z, axis=1)) - np.sum(Z * Y))

    @staticmethod
    def softmax_probs(Z):
        return np.exp(Z - logsumexp(Z, axis=1, keepdims=True))

    def grad_hess(self, Z, Y):
        P = self.softmax_probs(Z)
        return P - Y, P * (1.0 - P)

    def model_curvature(self, Z, H):
        """The class probabilities p_i, from which the kernel forms diag(p_i) - p_i p_i^T."""
        return self.softmax_probs(Z)

    def in_domain(self, U, Y):
        P = U.shape[0] * U + Y
        return bool(np.all(P >= 0) and np.allclose(P.sum(axis=1), 1.0, atol=1e-9))

    def conjugate(self, U, Y):
        P = np.clip(U.shape[0] * U + Y, 0.0, 1.0)
        return float(np.sum(xlogy(P, P))) / U.shape[0]


DATAFITS = {d.name: d for d in (Squared(), Hinge(), HingeOVR(), Logistic(), Softmax())}
