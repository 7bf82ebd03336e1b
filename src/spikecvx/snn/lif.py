"""Functional leaky integrate-and-fire (LIF) scan: the one neuron convention of spikecvx.

Semantics are those of snnTorch's ``Leaky`` (reset_delay=True), so weights trained there mean
the same thing here. With u_0 = 0 and r_t = H(u_{t-1} - theta) (the previous step's spike,
carried without gradient as in snnTorch):

    subtract:  u_t = beta * u_{t-1} + I_t - theta * r_t
    zero:      u_t = beta * (1 - r_t) * u_{t-1} + I_t
    spike:     s_t = H(u_t - theta)        (strict ``>``)

A recurrent layer adds the input V^T s_{t-1} of its own previous spikes to I_t, as snnTorch's
``RLeaky`` (all_to_all=True, reset_delay=True) does: u_t = beta * u_{t-1} + I_t + V^T s_{t-1}
- theta * r_t under subtraction, and u_t = beta * (1 - r_t) * u_{t-1} + I_t + V^T s_{t-1} under
reset to zero (this is the Leaky convention above; ``RLeaky``'s reset to zero also discards the
input of the step after a spike, see docs/design/recurrent.md). The gradient flows through
s_{t-1} into V, as in ``RLeaky``.

The surrogate-gradient model, the dictionary builder and the reconstructed network all call
this function, so a weight matrix means the same thing everywhere.
"""

from __future__ import annotations

import numpy as np
import torch

from .._validation import check_choice, check_positive, check_real, check_real_array
from ._lif_kernel import run_kernel
from .surrogate import SURROGATE_GRADS, spike

RESETS = ("subtract", "zero")


def check_beta(beta) -> None:
    """Raise unless ``beta`` is a real scalar, array or tensor whose every value lies in [0, 1]."""
    if isinstance(beta, (torch.Tensor, np.ndarray)):
        check_real_array("beta", beta)
    else:
        check_real("beta", beta)
    b = torch.as_tensor(beta, dtype=torch.float64)
    if bool((b < 0).any()) or bool((b > 1).any()):
        raise ValueError(f"beta must lie in [0, 1], got {beta!r}")


def check_time_dim(time_dim) -> int:
    """Return ``time_dim`` unless it is not 0 or 1 (the time axis of (N, T, ...) or (T, N, ...))."""
    if isinstance(time_dim, bool) or not isinstance(time_dim, (int, np.integer)):
        raise TypeError(f"time_dim must be the integer 0 or 1, got {type(time_dim).__name__}")
    if time_dim not in (0, 1):
        raise ValueError(f"time_dim must be 0 (time first) or 1 (batch first), got {time_dim!r}")
    return int(time_dim)


def lif_scan(
    currents: torch.Tensor,
    beta: float | torch.Tensor = 0.99,
    threshold: float = 1.0,
    reset: str = "subtract",
    surrogate: str = "atan",
    time_dim: int = 1,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    recurrent: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run LIF neurons over time.

    Args:
        currents: input currents, (N, T, M) when ``time_dim=1`` (default) or (T, N, M) when
            ``time_dim=0``.
        beta: leak in [0, 1], a scalar or one value per neuron (M,).
        threshold: firing threshold (> 0).
        reset: "subtract" (snnTorch default) or "zero".
        surrogate: name of the surrogate derivative used when gradients are needed.
        time_dim: which dimension of ``currents`` is time (0 or 1).
        init: optional state (u, s) at the step before the first one, each (N, M): the
            membrane and the spike that resets it. Lets a long sequence be scanned in chunks.
        recurrent: optional recurrent weights, (M, M) or (G, M/G, M/G) for G groups of
            consecutive neurons (branches) that only feed back within their group. Row j holds
            the weights of neuron j's spike onto the neurons of its group; None: no recurrence.

    Returns:
        (spikes, membranes), both shaped like ``currents``.
    """
    if not isinstance(currents, torch.Tensor):
        raise TypeError(f"currents must be a torch.Tensor, got {type(currents).__name__}")
    if not currents.is_floating_point():
        raise TypeError(f"currents must be a real floating-point tensor, got dtype {currents.dtype}")
    if currents.dim() != 3:
        raise ValueError(f"currents must be 3-D (N, T, M) or (T, N, M), got shape {tuple(currents.shape)}")
    time_dim = check_time_dim(time_dim)
    check_beta(beta)
    theta = check_positive("threshold", threshold)
    check_choice("reset", reset, RESETS)
    check_choice("surrogate", surrogate, SURROGATE_GRADS)
    if recurrent is not None:
        recurrent = check_recurrent(recurrent, currents)

    needs_grad = torch.is_grad_enabled() and (
        currents.requires_grad or (recurrent is not None and recurrent.requires_grad))
    if not needs_grad and currents.device.type == "cpu" and currents.dtype in KERNEL_DTYPES:
        batch_major = currents if time_dim == 1 else currents.transpose(0, 1)
        spikes, mems = _scan_cpu(batch_major, beta, theta, reset, init, recurrent)
        return (spikes, mems) if time_dim == 1 else (spikes.transpose(0, 1), mems.transpose(0, 1))
    cur = currents if time_dim == 0 else currents.transpose(0, 1)
    beta_t = torch.as_tensor(beta, dtype=cur.dtype, device=cur.device)
    if needs_grad:
        spikes, mems = _scan_autograd(cur, beta_t, theta, reset, surrogate, init, recurrent)
    else:
        spikes, mems = _scan_inplace(cur, beta_t, theta, reset, init, recurrent)
    if time_dim == 1:
        spikes, mems = spikes.transpose(0, 1), mems.transpose(0, 1)
    return spikes, mems


KERNEL_DTYPES = (torch.float32, torch.float64)  # what the compiled CPU scan handles


def check_recurrent(recurrent, currents: torch.Tensor) -> torch.Tensor:
    """Return the recurrent weights as (G, M/G, M/G) after checking them against ``currents``."""
    if not isinstance(recurrent, torch.Tensor):
        raise TypeError(f"recurrent must be a torch.Tensor or None, got {type(recurrent).__name__}")
    M = currents.shape[-1]
    if recurrent.dim() == 2:
        recurrent = recurrent[None]
    if recurrent.dim() != 3 or recurrent.shape[1] != recurrent.shape[2] or \
            recurrent.shape[0] * recurrent.shape[1] != M:
        raise ValueError(f"recurrent must have shape ({M}, {M}) or (G, {M}/G, {M}/G) for the {M} "
                         f"neurons of currents, got {tuple(recurrent.shape)}")
    if recurrent.dtype != currents.dtype or recurrent.device != currents.device:
        raise TypeError(f"recurrent must have the dtype and device of currents ({currents.dtype}, "
                        f"{currents.device}), got {recurrent.dtype}, {recurrent.device}")
    return recurrent


def recurrent_input(s: torch.Tensor, recurrent: torch.Tensor) -> torch.Tensor:
    """V^T s per group: s (N, M) spikes, recurrent (G, M/G, M/G) -> (N, M) input currents."""
    N, M = s.shape
    G, m = recurrent.shape[0], recurrent.shape[1]
    return torch.bmm(s.reshape(N, G, m).transpose(0, 1), recurrent).transpose(0, 1).reshape(N, M)


def beta_vector(beta, width: int, dtype: torch.dtype) -> np.ndarray:
    """The leak as a contiguous (width,) array for the compiled kernel."""
    b = torch.as_tensor(beta, dtype=dtype).cpu().numpy()
    return np.ascontiguousarray(np.broadcast_to(b, (width,)))


def cpu_state(init, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Writable (membrane, previous spike) arrays for the kernel: copies of ``init`` or zeros."""
    if init is None:
        return np.zeros(shape, dtype=_NP[dtype]), np.zeros(shape, dtype=_NP[dtype])
    u, s = (torch.as_tensor(v).detach().to(dtype).cpu().numpy() for v in init)
    return np.broadcast_to(u, shape).copy(), np.broadcast_to(s, shape).copy()


_NP = {torch.float32: np.float32, torch.float64: np.float64}


def _scan_cpu(cur, beta, theta, reset, init, recurrent=None):
    """No-grad scan on the CPU through the compiled kernel; batch-major in and out. With grouped
    recurrent weights each group of neurons is one kernel call on views of the arrays."""
    N, T, M = cur.shape
    c = cur.detach().contiguous().numpy()
    u, r = cpu_state(init, (N, M), cur.dtype)
    spikes, mems = np.empty_like(c), np.empty_like(c)
    b = beta_vector(beta, M, cur.dtype)
    rec = None if recurrent is None else recurrent.detach().contiguous().numpy()
    G = 1 if rec is None else rec.shape[0]
    m = M // G
    for g in range(G):
        cols = slice(g * m, (g + 1) * m)
        run_kernel(c[None, ..., cols], b[cols], theta, reset == "zero", u[None, :, cols],
                   r[None, :, cols], spikes[None, ..., cols], mems[None, ..., cols],
                   rec=None if rec is None else rec[g:g + 1])
    return torch.from_numpy(spikes), torch.from_numpy(mems)


def _scan_autograd(cur, beta, theta, reset, surrogate, init, recurrent=None):
    """Differentiable scan (time-major input); builds the graph for surrogate-gradient training."""
    if init is None:
        u, r = torch.zeros_like(cur[0]), torch.zeros_like(cur[0])
    else:
        u, r = init[0], init[1].detach()
    s = None if init is None else init[1]
    spikes, mems = [], []
    for t in range(cur.shape[0]):
        if reset == "subtract":
            u = beta * u + cur[t]
        else:
            u = beta * (1 - r) * u + cur[t]
        if recurrent is not None and s is not None:
            u = u + recurrent_input(s, recurrent)  # through s, not r: V learns from its spikes
        if reset == "subtract":
            u = u - theta * r
        s = spike(u - theta, surrogate)
        r = s.detach()
        spikes.append(s)
        mems.append(u)
    return torch.stack(spikes), torch.stack(mems)


@torch.no_grad()
def _scan_inplace(cur, beta, theta, reset, init, recurrent=None):
    """No-grad scan (time-major input) writing into preallocated outputs; no graph, few temporaries."""
    mems = torch.empty_like(cur)
    spikes = torch.empty_like(cur)
    u = torch.zeros_like(cur[0]) if init is None else init[0].clone()
    tmp = torch.empty_like(u)
    for t in range(cur.shape[0]):
        # same operation order as snnTorch (beta * u + I - theta * r) so results match bitwise
        s_prev = None if t == 0 and init is None else (spikes[t - 1] if t > 0 else init[1])
        if s_prev is not None and reset == "zero":
            torch.mul(s_prev, -1.0, out=tmp).add_(1.0)
            u.mul_(tmp)
        u.mul_(beta).add_(cur[t])
        if s_prev is not None and recurrent is not None:
            u.add_(recurrent_input(s_prev, recurrent))
        if s_prev is not None and reset == "subtract":
            u.add_(s_prev, alpha=-theta)
        mems[t].copy_(u)
        torch.gt(u, theta, out=spikes[t])
    return spikes, mems
