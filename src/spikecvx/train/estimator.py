"""``SpikingClassifier``: the methods behind the scikit-learn estimator contract.

Inputs are sequences (N, T, d_in); a 2-D array (N, F) is read as ``time_steps`` steps of
F / time_steps features each (default 1 step), so plain tabular data works too. Part of the
training data (``validation_fraction``, stratified) chooses the regularisation, learning rate
and grid points; the hybrid "cvx-sg" fine-tunes on that part and validates on the rest.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .heads import Head
from .methods import fine_tune, fit_cvx, fit_sg, fit_sg_cvx

ESTIMATOR_METHODS = ("cvx", "sg", "sg-cvx", "cvx-sg")


class SpikingClassifier(ClassifierMixin, BaseEstimator):
    """Spiking network classifier trained to a certified optimum of its readout (``method="cvx"``).

    Args:
        method: "cvx" (Gaussian witnesses + convex readout), "sg" (surrogate gradients),
            "sg-cvx" (SG hidden weights + convex readout), "cvx-sg" (CVX then SG fine-tuning).
        layers, branches, width, last_width, beta, threshold, readout, readout_bias: the
            ``ParallelSNN`` architecture (the label is read at the last step).
        time_steps: how many steps a 2-D input row is cut into (ignored for 3-D inputs).
        loss: convex loss ("hinge" for two classes and "softmax" otherwise by default).
        penalty: "l1" or "group_l1".
        n_regs, min_ratio: the regularisation path (geometric, from reg_max down).
        witness_scale: standard deviation of the Gaussian witnesses.
        epochs, lrs: SG training budget and learning-rate grid.
        validation_fraction: share of the training data used for model selection.
        tol: relative duality gap every convex solve must certify.
        random_state: seed of witnesses, splits and SG.

    Attributes after ``fit``: ``classes_``, ``network_`` (the trained ``ParallelSNN``),
    ``certificate_`` (primal, dual, gap, rel_gap, reg, dictionary size, distinct columns,
    neurons kept; None for "sg"), ``report_`` and ``n_features_in_``.
    """

    def __init__(self, method: str = "cvx", layers: int = 3, branches: int = 2, width: int = 100,
                 last_width: int = 200, beta: float = 0.99, threshold: float = 1.0,
                 readout: str = "membrane", readout_bias: float = 0.0, time_steps: int = 1,
                 loss: str | None = None, penalty: str = "l1", n_regs: int = 6, min_ratio: float = 1e-3,
                 witness_scale: float = 1.0, epochs: int = 100, lrs: tuple = (1e-3, 3e-3, 1e-2),
                 validation_fraction: float = 0.25, tol: float = 1e-6, random_state: int = 0):
        self.method = method
        self.layers = layers
        self.branches = branches
        self.width = width
        self.last_width = last_width
        self.beta = beta
        self.threshold = threshold
        self.readout = readout
        self.readout_bias = readout_bias
        self.time_steps = time_steps
        self.loss = loss
        self.penalty = penalty
        self.n_regs = n_regs
        self.min_ratio = min_ratio
        self.witness_scale = witness_scale
        self.epochs = epochs
        self.lrs = lrs
        self.validation_fraction = validation_fraction
        self.tol = tol
        self.random_state = random_state

    # ------------------------------------------------------------------ input
    def _sequences(self, X, reset: bool, validated: bool = False) -> torch.Tensor:
        if not validated:
            X = validate_data(self, X, reset=reset, allow_nd=True, dtype=np.float64)
        if X.ndim == 2:
            if X.shape[1] % self.time_steps:
                raise ValueError(f"X has {X.shape[1]} features, not divisible by "
                                 f"time_steps={self.time_steps}")
            X = X.reshape(X.shape[0], self.time_steps, -1)
        elif X.ndim != 3:
            raise ValueError(f"X must be 2-D (N, features) or 3-D (N, T, d_in), got {X.ndim}-D")
        if not reset and X.shape[1:] != self._seq_shape:
            raise ValueError(f"X has sequence layout (T, d_in) = {X.shape[1:]}, the model was fitted "
                             f"on {self._seq_shape}")
        return torch.as_tensor(X, dtype=torch.float32)

    def _head(self) -> Head:
        if len(self.classes_) == 2:
            return Head("y", 1, self.loss or "hinge")
        return Head("y", len(self.classes_), self.loss or "softmax")

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Train with ``method``; labels may be any hashable values (at least two classes)."""
        if self.method not in ESTIMATOR_METHODS:
            raise ValueError(f"method must be one of {ESTIMATOR_METHODS}, got {self.method!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        X, y = validate_data(self, X, y, allow_nd=True, dtype=np.float64)
        Xs = self._sequences(X, reset=True, validated=True)
        self._seq_shape = tuple(Xs.shape[1:])
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class only ({self.classes_[0]!r}); a classifier needs two or more")
        head = self._head()
        target = np.where(codes == 1, 1.0, -1.0) if head.binary else codes
        idx = np.arange(len(y))
        counts = np.bincount(codes)
        stratify = codes if counts.min() >= 2 and len(y) * self.validation_fraction >= len(counts) else None
        if len(y) < 4:
            tr, va = idx, idx  # too few samples to hold any out: select on the training data
        else:
            tr, va = train_test_split(idx, test_size=self.validation_fraction, stratify=stratify,
                                      random_state=self.random_state)
        net_kw = dict(layers=self.layers, branches=self.branches, width=self.width,
                      last_width=self.last_width, beta=self.beta, threshold=self.threshold,
                      readout=self.readout, readout_bias=self.readout_bias, readout_at="last")
        cvx_kw = dict(penalty=self.penalty, n_regs=self.n_regs, min_ratio=self.min_ratio,
                      witness_scale=self.witness_scale, tol=self.tol)
        sg_kw = dict(epochs=self.epochs, lrs=tuple(self.lrs))
        args = (Xs[tr], target[tr], Xs[va], target[va], net_kw)
        if self.method == "cvx":
            net, rep = fit_cvx(*args, heads=[head], seed=self.random_state, **cvx_kw)
        elif self.method == "sg":
            net, rep = fit_sg(*args, heads=[head], seed=self.random_state, **sg_kw)
        elif self.method == "sg-cvx":
            net, rep = fit_sg_cvx(*args, heads=[head], seed=self.random_state, sg_kwargs=sg_kw, **cvx_kw)
        else:
            net, rep = fit_cvx(*args, heads=[head], seed=self.random_state, **cvx_kw)
            net, ft = fine_tune(net, Xs[va], target[va], Xs[tr], target[tr], heads=[head],
                                seed=self.random_state, epochs=self.epochs)
            rep = dict(rep, fine_tune=ft)
        self.network_, self.report_ = net, rep
        self.certificate_ = None
        if "heads" in rep:
            h = rep["heads"]["y"]
            self.certificate_ = dict(h["certificate"], dictionary_rows=rep["dictionary"]["rows"],
                                     dictionary_neurons=rep["dictionary"]["neurons"],
                                     distinct_columns=rep["dictionary"]["distinct"],
                                     neurons_kept=rep["neurons_kept"])
        return self

    # ------------------------------------------------------------------ predict
    def decision_function(self, X) -> np.ndarray:
        """Readout scores: (N,) for two classes (positive: classes_[1]), (N, C) otherwise."""
        check_is_fitted(self)
        with torch.no_grad():
            scores = self.network_(self._sequences(X, reset=False)).double().numpy()
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores >= 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Softmax (or logistic) of the readout scores. Calibrated for the softmax and logistic
        losses; for hinge readouts it is a monotone squashing of the margin, not a probability
        model (as with an uncalibrated SVM)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-scores))
            return np.stack([1 - p, p], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the fitted classifier (network, classes, parameters) to one checkpoint file."""
        from ..interop import save_network

        check_is_fitted(self)
        save_network(self.network_, path, metadata=dict(
            kind="SpikingClassifier", params=_jsonable(self.get_params()),
            classes=self.classes_.tolist(), seq_shape=list(self._seq_shape),
            n_features_in=int(self.n_features_in_), certificate=self.certificate_))

    @classmethod
    def load(cls, path) -> SpikingClassifier:
        """Read a classifier written by ``save``."""
        from ..interop import load_network

        net, meta = load_network(path)
        if meta.get("kind") != "SpikingClassifier":
            raise ValueError(f"{path} holds a bare network, not a SpikingClassifier; use load_network")
        params = dict(meta["params"])
        params["lrs"] = tuple(params["lrs"])
        clf = cls(**params)
        clf.network_, clf.classes_ = net, np.asarray(meta["classes"])
        clf._seq_shape = tuple(meta["seq_shape"])
        clf.n_features_in_ = meta["n_features_in"]
        clf.certificate_, clf.report_ = meta["certificate"], None
        return clf


def _jsonable(params: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
