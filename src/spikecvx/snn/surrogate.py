"""Surrogate spike functions: exact Heaviside forward, smooth derivative backward.

Names and default slopes follow snnTorch (atan with alpha = 2, fast sigmoid and sigmoid with
slope 25), so users can carry their settings over.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._validation import check_choice


def heaviside(x: torch.Tensor, strict: bool = True) -> torch.Tensor:
    """1 where x > 0 (strict, the spike convention) or x >= 0 (the membrane-readout convention)."""
    return (x > 0).to(x.dtype) if strict else (x >= 0).to(x.dtype)


def atan_grad(x: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Derivative of (1/pi) arctan(pi/2 alpha x) + 1/2."""
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * x) ** 2)


def fast_sigmoid_grad(x: torch.Tensor, slope: float = 25.0) -> torch.Tensor:
    """Derivative of x / (1 + slope |x|) (scaled as in snnTorch)."""
    return 1.0 / (slope * x.abs() + 1.0) ** 2


def sigmoid_grad(x: torch.Tensor, slope: float = 25.0) -> torch.Tensor:
    """Derivative of sigmoid(slope x)."""
    s = torch.sigmoid(slope * x)
    return slope * s * (1 - s)


def triangular_grad(x: torch.Tensor, width: float = 1.0) -> torch.Tensor:
    """Triangle of half-width ``width`` and unit area: max(0, 1 - |x|/width) / width."""
    return torch.clamp(1 - x.abs() / width, min=0) / width


def straight_through_grad(x: torch.Tensor) -> torch.Tensor:
    """Identity derivative (straight-through estimator)."""
    return torch.ones_like(x)


SURROGATE_GRADS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "atan": atan_grad,
    "fast_sigmoid": fast_sigmoid_grad,
    "sigmoid": sigmoid_grad,
    "triangular": triangular_grad,
    "straight_through": straight_through_grad,
}


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grad_fn, strict):
        ctx.save_for_backward(x)
        ctx.grad_fn = grad_fn
        return heaviside(x, strict)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.grad_fn(x), None, None


def spike(x: torch.Tensor, surrogate: str = "atan", strict: bool = True) -> torch.Tensor:
    """Heaviside step of ``x`` whose backward pass uses the named surrogate derivative.

    Without autograd (no_grad or a tensor that needs no grad) this is the plain step.
    """
    check_choice("surrogate", surrogate, SURROGATE_GRADS)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return heaviside(x, strict)
    return _SpikeFn.apply(x, SURROGATE_GRADS[surrogate], strict)
