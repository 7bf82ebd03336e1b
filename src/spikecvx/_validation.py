"""Small argument checks shared by every layer: errors name the argument and what was expected.

This module imports numpy only; torch tensors are recognised by duck typing, so the convex
engine (which must not import torch) can use every check here.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def _is_torch_tensor(value) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "is_floating_point")


def check_finite(name: str, value) -> None:
    """Raise ValueError if an array or tensor holds NaN or inf.

    Fast path: a finite sum proves every entry finite (NaN and inf propagate through a sum) and
    needs no temporary the size of the input; only when the sum is not finite (a bad entry, or
    overflow) is every entry tested.
    """
    if _is_torch_tensor(value):
        import torch

        if value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got complex dtype {value.dtype}")
        if value.is_floating_point() and value.numel():
            if bool(torch.isfinite(value.sum())):
                return
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} contains NaN or inf values")
        return
    arr = np.asarray(value)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must hold real numbers, got complex dtype {arr.dtype}")
    if arr.dtype.kind == "f" and arr.size:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(arr.sum()):
                return
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf values")


def check_real_array(name: str, value) -> None:
    """Raise TypeError unless ``value`` holds real (bool, integer or float) numbers, and
    ValueError if any entry is NaN or inf. Complex, object and string arrays are refused."""
    if _is_torch_tensor(value):
        if value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got complex dtype {value.dtype}")
        check_finite(name, value)
        return
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    check_finite(name, arr)


def check_real(name: str, value) -> float:
    """Return ``value`` as a finite float; strings, complex numbers and NaN / inf are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if not (_is_torch_tensor(value) and value.numel() == 1 and not value.is_complex()):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """Return ``value`` as float, raising unless it is a finite real number > 0 (or >= 0)."""
    v = check_real(name, value)
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def check_choice(name: str, value, choices):
    """Raise ValueError unless ``value`` is one of ``choices`` (TypeError for a non-string)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {sorted(choices)}; got {type(value).__name__}")
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


def check_bool(name: str, value) -> bool:
    """Return ``value`` unless it is not a bool (numpy bools accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_device(device, name: str = "device"):
    """``device`` as a ``torch.device`` that can hold tensors on this machine (None stays None).

    Refuses, naming ``name``: a value that is not a string or torch.device, a string that is no
    torch device, and a device this machine lacks (CUDA without a GPU, a CUDA index past the last).
    torch is imported here only, so the modules that do not need it stay free of it.
    """
    if device is None:
        return None
    import torch

    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be a string such as 'cpu' or 'cuda', or a torch.device; "
                        f"got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"{name} {str(device)!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} {str(device)!r}: CUDA is not available on this machine")
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as err:
        raise ValueError(f"{name} {str(device)!r} is not available on this machine: {err}") from None
    return dev
