"""Small argument checks shared by every layer: errors name the argument and what was expected."""

from __future__ import annotations

import math

import numpy as np
import torch


def check_finite(name: str, value) -> None:
    """Raise ValueError if an array or tensor holds NaN or inf.

    Fast path: a finite sum proves every entry finite (NaN and inf propagate through a sum) and
    needs no temporary the size of the input; only when the sum is not finite (a bad entry, or
    overflow) is every entry tested.
    """
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and value.numel():
            if bool(torch.isfinite(value.sum())):
                return
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} contains NaN or inf values")
        return
    arr = np.asarray(value)
    if arr.dtype.kind in "fc" and arr.size:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(arr.sum()):
                return
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf values")


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float, raising ValueError unless it is finite and > 0 (or >= 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def check_choice(name: str, value: str, choices) -> str:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_int(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as int, raising unless it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)
