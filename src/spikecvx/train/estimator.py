"""``SpikingClassifier``: the methods behind the scikit-learn estimator contract.

Inputs are sequences (N, T, d_in); a 2-D array (N, F) is read as ``time_steps`` steps of
F / time_steps features each (default 1 step), so plain tabular data works too. Part of the
training data (``validation_fraction``, stratified) chooses the regularisation, learning rate
and grid points; the hybrids "cvx-sg" and "sg-sg" fine-tune on that part and validate on the
rest.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import check_device, check_positive
from ..convex import PENALTIES
from ..dictionary.witnesses import WITNESS_KINDS
from .heads import BINARY_LOSSES, HEAD_LOSSES, PROBABILISTIC_LOSSES, Head, default_heads
from .registry import METHODS, get_method
from .report import FitReport
from .search import GENERATORS

_CVX, _SG, _FT = METHODS["cvx"].options, METHODS["sg"].options, METHODS["cvx-sg"].options
_SEARCH = METHODS["cvx-search"].options


def _has_proba(est: SpikingClassifier) -> bool:
    """``predict_proba`` exists when the loss models probabilities (logistic, softmax): the
    fitted head's loss, or before ``fit`` the ``loss`` parameter."""
    loss = est.head_.loss if hasattr(est, "head_") else est.loss
    return loss in PROBABILISTIC_LOSSES


class SpikingClassifier(ClassifierMixin, BaseEstimator):
    """Spiking network classifier trained to a certified optimum of its readout (``method="cvx"``).

    Args (keyword only):
        method: a name in ``spikecvx.train.METHODS``: "cvx" (Gaussian witnesses + convex
            readout), "sg" (surrogate gradients), "sg-cvx" (SG hidden weights + convex readout),
            "cvx-sg" / "sg-sg" (then SG fine-tuning on the validation part), "cvx-search" /
            "sg-cvx-search" (the dictionary of "cvx" / "sg-cvx" grown by witness search; the
            network is then a ``GrownSNN``).
        layers, branches, width, last_width, beta, threshold, readout, readout_bias: the
            ``ParallelSNN`` architecture (the label is read at the last step).
        time_steps: how many steps a 2-D input row is cut into (ignored for 3-D inputs).
        loss: "hinge" for two classes and "softmax" otherwise by default (``default_heads``);
            ``predict_proba`` exists only for "logistic" and "softmax".
        penalty: the convex penalty ("l1", "group_l1", ...).
        n_regs, min_ratio: the regularisation path (geometric, from reg_max down).
        witness, witness_scale: distribution and scale of the witnesses (hidden weights).
        epochs, lrs: SG training budget and learning-rate grid.
        ft_lrs: learning-rate grid of the fine-tuning stage of "cvx-sg" / "sg-sg".
        reg_ratio, search_rounds, generators, search_candidates, search_steps, search_seconds,
            max_add: the witness search (search methods): reg as a share of reg_max, pricing
            rounds, candidate generators by name ("ascent", "ascent-fresh", "random", "branch")
            with their candidates and ascent steps per round, the search's wall-clock budget
            (None: none) and the most columns added per round.
        validation_fraction: share of the training data used for model selection.
        tol: relative duality gap every convex solve must certify.
        random_state: seed of witnesses, splits and SG.
        verbose: show progress bars of the dictionary, the paths and SG training, and one line
            per round of a witness search.
        device: where the network is trained and run ("cpu", "cuda", ...; None: the CPU).

    Attributes after ``fit``: ``classes_``, ``network_`` (the trained ``ParallelSNN``, or
    ``GrownSNN`` for the search methods),
    ``head_`` (its output ``Head``), ``report_`` (the ``FitReport``), ``certificate_`` (primal,
    dual, gap, rel_gap, reg, dictionary size, distinct columns, neurons kept; None when the
    readout is not a convex solution: "sg", "cvx-sg", "sg-sg") and ``n_features_in_``.
    """

    _parameter_constraints: dict = {
        "method": [StrOptions(set(METHODS))],
        "layers": [Interval(Integral, 2, None, closed="left")],
        "branches": [Interval(Integral, 1, None, closed="left")],
        "width": [Interval(Integral, 1, None, closed="left")],
        "last_width": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, 1, closed="both")],
        "threshold": [Interval(Real, 0, None, closed="neither")],
        "readout": [StrOptions({"membrane", "spike"})],
        "readout_bias": [Interval(Real, None, None, closed="neither")],
        "time_steps": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions(set(HEAD_LOSSES)), None],
        "penalty": [StrOptions(set(PENALTIES))],
        "n_regs": [Interval(Integral, 1, None, closed="left")],
        "min_ratio": [Interval(Real, 0, 1, closed="neither")],
        "witness": [StrOptions(set(WITNESS_KINDS))],
        "witness_scale": [Interval(Real, 0, None, closed="neither")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lrs": [list, tuple],
        "ft_lrs": [list, tuple],
        "reg_ratio": [Interval(Real, 0, None, closed="neither")],
        "search_rounds": [Interval(Integral, 1, None, closed="left")],
        "generators": [list, tuple],
        "search_candidates": [Interval(Integral, 1, None, closed="left")],
        "search_steps": [Interval(Integral, 0, None, closed="left")],
        "search_seconds": [Interval(Real, 0, None, closed="neither"), None],
        "max_add": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "random_state": [Interval(Integral, 0, None, closed="left")],
        "verbose": ["boolean"],
        "device": [str, torch.device, None],
    }

    def __init__(self, *, method: str = "cvx", layers: int = 3, branches: int = 2, width: int = 100,
                 last_width: int = 200, beta: float = 0.99, threshold: float = 1.0,
                 readout: str = "membrane", readout_bias: float = 0.0, time_steps: int = 1,
                 loss: str | None = None, penalty: str = "l1", n_regs: int = _CVX["n_regs"],
                 min_ratio: float = _CVX["min_ratio"], witness: str = _CVX["witness"],
                 witness_scale: float = _CVX["witness_scale"], epochs: int = _SG["epochs"],
                 lrs: tuple = _SG["lrs"], ft_lrs: tuple = _FT["ft_lrs"],
                 reg_ratio: float = _SEARCH["reg_ratio"], search_rounds: int = _SEARCH["search_rounds"],
                 generators: tuple = _SEARCH["generators"],
                 search_candidates: int = _SEARCH["search_candidates"],
                 search_steps: int = _SEARCH["search_steps"],
                 search_seconds: float | None = _SEARCH["search_seconds"], max_add: int = _SEARCH["max_add"],
                 validation_fraction: float = 0.25,
                 tol: float = _CVX["tol"], random_state: int = 0, verbose: bool = False,
                 device: str | torch.device | None = None):
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
        self.witness = witness
        self.witness_scale = witness_scale
        self.epochs = epochs
        self.lrs = lrs
        self.ft_lrs = ft_lrs
        self.reg_ratio = reg_ratio
        self.search_rounds = search_rounds
        self.generators = generators
        self.search_candidates = search_candidates
        self.search_steps = search_steps
        self.search_seconds = search_seconds
        self.max_add = max_add
        self.validation_fraction = validation_fraction
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

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


    # ------------------------------------------------------------------ fit
    def _check_params(self) -> torch.device | None:
        """Checks ``_parameter_constraints`` cannot express; returns the device."""
        for name in self._parameter_constraints:
            value = getattr(self, name)
            if name != "verbose" and isinstance(value, (bool, np.bool_)):
                raise TypeError(f"The '{name}' parameter of SpikingClassifier must be a number or a string "
                                f"as documented, not a bool; got {value!r}")
        for name in ("lrs", "ft_lrs"):
            rates = getattr(self, name)
            if len(rates) == 0:
                raise ValueError(f"The '{name}' parameter of SpikingClassifier must hold at least one "
                                 "learning rate, got an empty sequence")
            for lr in rates:
                check_positive(f"The '{name}' parameter of SpikingClassifier: learning rate", lr)
        if isinstance(self.generators, str) or not self.generators or any(
                g not in GENERATORS for g in self.generators):
            raise ValueError(f"The 'generators' parameter of SpikingClassifier must be a non-empty list of "
                             f"names among {GENERATORS}, got {self.generators!r}")
        for name in ("width", "last_width"):
            if getattr(self, name) % self.branches:
                raise ValueError(f"The '{name}' parameter of SpikingClassifier ({getattr(self, name)}) must "
                                 f"be divisible by branches ({self.branches})")
        return check_device(self.device)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train with ``method``; labels may be any hashable values (at least two classes)."""
        device = self._check_params()
        X, y = validate_data(self, X, y, allow_nd=True, dtype=np.float64)
        Xs = self._sequences(X, reset=True, validated=True)
        self._seq_shape = tuple(Xs.shape[1:])
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(f"y has 1 class only ({self.classes_[0]!r}); a classifier needs two or more")
        if self.loss in BINARY_LOSSES and n_classes > 2:
            raise ValueError(f"The 'loss' parameter of SpikingClassifier is {self.loss!r}, a two-class loss, "
                             f"but y has {n_classes} classes; use 'softmax' or 'hinge_ovr'")
        binary = n_classes == 2 and self.loss in (None, *BINARY_LOSSES)
        target = np.where(codes == 1, 1.0, -1.0) if binary else codes
        self.head_ = default_heads(target, self.loss, n_classes=n_classes)[0]
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
        method = get_method(self.method)
        params = dict(penalty=self.penalty, n_regs=self.n_regs, min_ratio=self.min_ratio,
                      witness=self.witness, witness_scale=self.witness_scale, tol=self.tol,
                      epochs=self.epochs, lrs=tuple(self.lrs), ft_lrs=tuple(self.ft_lrs),
                      reg_ratio=self.reg_ratio, search_rounds=self.search_rounds,
                      generators=tuple(self.generators), search_candidates=self.search_candidates,
                      search_steps=self.search_steps, search_seconds=self.search_seconds,
                      max_add=self.max_add)
        options = {k: v for k, v in params.items() if k in method.options}
        # the hybrids fine-tune on the validation part and validate on the training part
        net, rep = method.fit(Xs[tr], target[tr], Xs[va], target[va], net_kw, [self.head_],
                              seed=self.random_state, progress=self.verbose, device=device, **options)
        self.network_, self.report_ = net, rep
        self.certificate_ = None
        if method.certified:
            h = rep.heads[self.head_.name]
            self.certificate_ = dict(h.certificate.to_dict(), dictionary_rows=rep.dictionary.rows,
                                     dictionary_neurons=rep.dictionary.neurons,
                                     distinct_columns=rep.dictionary.distinct,
                                     neurons_kept=rep.neurons_kept)
        return self

    # ------------------------------------------------------------------ predict
    def decision_function(self, X) -> np.ndarray:
        """Readout scores: (N,) for two classes (positive: classes_[1]), (N, C) otherwise."""
        check_is_fitted(self)
        with torch.no_grad():
            scores = self.network_(self._sequences(X, reset=False)).double().cpu().numpy()
        if scores.shape[1] == 1:
            return scores[:, 0]
        if len(self.classes_) == 2:  # a two-column head (softmax): the log-odds of classes_[1]
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores >= 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    @available_if(_has_proba)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities: the logistic (two classes) or the softmax of the readout scores."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-scores))
            return np.stack([1 - p, p], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the fitted classifier (network, classes, parameters, report) to one checkpoint file."""
        from ..interop import save_network

        check_is_fitted(self)
        save_network(self.network_, path, metadata=dict(
            kind="SpikingClassifier", params=_jsonable(self.get_params()),
            classes=self.classes_.tolist(), seq_shape=list(self._seq_shape),
            n_features_in=int(self.n_features_in_), certificate=self.certificate_,
            head=dict(name=self.head_.name, size=self.head_.size, loss=self.head_.loss),
            report=None if self.report_ is None else self.report_.to_dict()))

    @classmethod
    def load(cls, path) -> SpikingClassifier:
        """Read a classifier written by ``save``."""
        from ..interop import load_network

        net, meta = load_network(path)
        if meta.get("kind") != "SpikingClassifier":
            raise ValueError(f"{path} holds a bare network, not a SpikingClassifier; use load_network")
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
        clf = cls(**params)
        clf.network_, clf.classes_ = net, np.asarray(meta["classes"])
        clf._seq_shape = tuple(meta["seq_shape"])
        clf.n_features_in_ = meta["n_features_in"]
        clf.certificate_ = meta["certificate"]
        if "head" in meta:
            clf.head_ = Head(**meta["head"])
        else:  # a checkpoint without its head (format of spikecvx 0.2.0): the default rule on the outputs
            clf.head_ = Head("y", net.n_out, clf.loss or ("hinge" if net.n_out == 1 else "softmax"))
        clf.report_ = FitReport.from_dict(meta["report"]) if meta.get("report") else None
        return clf


def _jsonable(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        out[k] = list(v) if isinstance(v, tuple) else str(v) if isinstance(v, torch.device) else v
    return out
