"""Output heads: which readout columns predict which target, with which loss.

A network's readout (n_out columns) can serve several heads on one trunk, e.g. the addition
task's sum digit (``base`` columns) and carry (2 or 3 columns). Every method (SG, CVX, SG-CVX)
and the estimator describe their outputs with the same ``Head`` list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_positive
from ..convex import DATAFITS

# Every datafit of the convex engine is a head loss; its label set and whether its scores are
# log-odds / logits come from the datafit. SG training needs the loss's torch form (``head_loss``).
HEAD_LOSSES = tuple(DATAFITS)
BINARY_LOSSES = tuple(name for name, fit in DATAFITS.items() if fit.labels == "pm1")
PROBABILISTIC_LOSSES = tuple(name for name, fit in DATAFITS.items() if fit.probabilistic)
SG_LOSSES = ("softmax", "logistic", "hinge", "hinge_ovr", "squared")  # the losses ``head_loss`` knows


@dataclass(frozen=True)
class Head:
    """``size`` readout columns trained with ``loss`` on integer class labels (or +-1 labels for
    the one-column binary losses "hinge" and "logistic"), weighted by ``weight`` in SG training."""

    name: str
    size: int
    loss: str = "softmax"
    weight: float = 1.0

    def __post_init__(self):
        if self.loss not in HEAD_LOSSES:
            raise ValueError(f"head {self.name!r}: loss must be one of {HEAD_LOSSES}, got {self.loss!r}")
        if self.loss in BINARY_LOSSES and self.size != 1:
            raise ValueError(f"head {self.name!r}: the binary loss {self.loss!r} needs size=1, "
                             f"got {self.size}")
        check_positive(f"head {self.name!r} weight", self.weight)

    @property
    def binary(self) -> bool:
        return self.loss in BINARY_LOSSES


def default_heads(y, loss: str | None = None, n_classes: int | None = None) -> list[Head]:
    """The single head every method uses when none is given: "hinge" on +-1 labels, "softmax"
    on integer classes 0..C-1 (C = ``n_classes``, default max(y) + 1); ``loss`` overrides the
    loss. SG stages train the result through ``smooth_heads`` (hinge becomes logistic)."""
    if isinstance(y, (list, tuple)) and any(isinstance(v, (np.ndarray, torch.Tensor)) for v in y):
        raise ValueError("y holds several label arrays: pass one Head per array (heads=...)")
    if loss is not None and loss not in HEAD_LOSSES:
        raise ValueError(f"loss must be one of {HEAD_LOSSES} or None, got {loss!r}")
    y = np.asarray(y)
    if y.size == 0:
        raise ValueError("y is empty: the default head needs labels")
    pm_one = np.isin(y, (-1, 1)).all() and len(np.unique(y)) == 2
    if loss is None:
        loss = "hinge" if pm_one else "softmax"
    if loss in BINARY_LOSSES:
        return [Head("y", 1, loss)]
    if n_classes is None:
        n_classes = int(np.max(y)) + 1
    return [Head("y", n_classes, loss)]


def head_slices(heads: list[Head]) -> list[slice]:
    """Readout columns of each head, in order."""
    out, a = [], 0
    for h in heads:
        out.append(slice(a, a + h.size))
        a += h.size
    return out


def check_targets(heads: list[Head], targets, n: int, name: str = "targets") -> list[np.ndarray]:
    """One label array per head with n leading entries; labels in the head's label set."""
    if len(heads) == 1 and not isinstance(targets, (list, tuple)):
        targets = [targets]
    if len(targets) != len(heads):
        raise ValueError(f"{name} must hold one label array per head ({len(heads)}), got {len(targets)}")
    out = []
    for h, y in zip(heads, targets):
        y = np.asarray(y)
        if y.shape[0] != n:
            raise ValueError(f"{name} for head {h.name!r} has {y.shape[0]} rows, inputs have {n}")
        if not np.isfinite(y.astype(np.float64)).all():
            raise ValueError(f"{name} for head {h.name!r} contains NaN or inf")
        if h.binary:
            if not np.isin(y, (-1, 1)).all():
                raise ValueError(f"{name} for head {h.name!r} ({h.loss}) must be -1 or +1")
        elif h.loss != "squared" and (y.min() < 0 or y.max() >= h.size or (y != np.round(y)).any()):
            raise ValueError(f"{name} for head {h.name!r} must be integers in [0, {h.size}), "
                             f"got range [{y.min()}, {y.max()}]")
        out.append(y)
    return out


def head_loss(head: Head, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Differentiable mean loss of one head: scores (M, size), labels (M,)."""
    if head.loss not in SG_LOSSES:
        raise ValueError(f"head {head.name!r}: the loss {head.loss!r} has no surrogate-gradient form "
                         f"(SG trains {SG_LOSSES}); train this head with a convex method")
    if head.loss == "softmax":
        return F.cross_entropy(scores, y.long())
    if head.loss == "logistic":
        return F.softplus(-y.to(scores.dtype) * scores[:, 0]).mean()
    if head.loss == "hinge":
        return F.relu(1 - y.to(scores.dtype) * scores[:, 0]).mean()
    if head.loss == "hinge_ovr":
        sign = 2 * F.one_hot(y.long(), head.size).to(scores.dtype) - 1
        return F.relu(1 - sign * scores).sum(dim=1).mean()
    if head.size == 1:  # regression
        return 0.5 * ((scores[:, 0] - y.to(scores.dtype)) ** 2).mean()
    onehot = F.one_hot(y.long(), head.size).to(scores.dtype)
    return 0.5 * ((scores - onehot) ** 2).sum(dim=1).mean()


def smooth_heads(heads: list[Head]) -> list[Head]:
    """The heads SG trains: binary hinge becomes logistic (the hinge's kink stalls gradients at
    the margin); the other losses are kept."""
    return [Head(h.name, h.size, "logistic", h.weight) if h.loss == "hinge" else h for h in heads]
