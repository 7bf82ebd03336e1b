"""Convert between snnTorch ``nn.Sequential`` networks and ``ParallelSNN``.

The snnTorch side is the tutorial network ``Linear, Leaky, Linear, Leaky, ..., Linear`` (the last
Linear is the readout) or the same ending in ``Leaky`` (its spikes are the output). spikecvx's LIF
is snnTorch's ``Leaky`` with reset_delay=True, so a converted network spikes identically.

Run a module from ``to_snntorch`` one step at a time, as snnTorch expects::

    import snntorch.utils
    snntorch.utils.reset(seq)                        # membranes to rest before each sequence
    outs = torch.stack([seq(x[:, t]) for t in range(x.shape[1])], dim=1)   # (N, T, n_out)

``outs`` equals ``net(x)`` for readout_at="every"; for readout_at="last" take ``outs[:, -1]``.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .._validation import check_bool
from ..snn import ParallelSNN


def _snn():
    try:
        import snntorch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("snnTorch conversion needs the 'snntorch' package: pip install snntorch") from exc
    return snntorch


def _scalar(layer, index: int, name: str) -> float:
    value = torch.as_tensor(getattr(layer, name)).detach()
    if value.numel() != 1:
        raise ValueError(f"layer {index} (Leaky): {name} has {value.numel()} values (one per neuron); "
                         "ParallelSNN takes one scalar shared by every neuron")
    return float(value.reshape(()))


def _leaky_params(layer, index: int) -> tuple[float, float, str]:
    """(beta, threshold, reset) of a Leaky layer, refusing what ParallelSNN cannot reproduce."""
    beta, threshold = _scalar(layer, index, "beta"), _scalar(layer, index, "threshold")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"layer {index} (Leaky): beta={beta} outside [0, 1] (snnTorch clamps it; "
                         "spikecvx refuses rather than clamp)")
    if threshold <= 0:
        raise ValueError(f"layer {index} (Leaky): threshold must be > 0, got {threshold}")
    reset = layer.reset_mechanism
    if reset not in ("subtract", "zero"):
        raise ValueError(f"layer {index} (Leaky): reset_mechanism={reset!r}; only 'subtract' and 'zero' map")
    if not layer.reset_delay and reset == "subtract":
        raise ValueError(f"layer {index} (Leaky): reset_delay=False with reset_mechanism='subtract' "
                         "subtracts in the spiking step; spikecvx subtracts one step later")
    if layer.inhibition:
        raise ValueError(f"layer {index} (Leaky): inhibition=True (winner-take-all) has no ParallelSNN form")
    if layer.state_quant:
        raise ValueError(f"layer {index} (Leaky): state_quant (quantised membrane) has no ParallelSNN form")
    graded = torch.as_tensor(layer.graded_spikes_factor).detach()
    if graded.numel() != 1 or float(graded.reshape(())) != 1.0:
        raise ValueError(f"layer {index} (Leaky): graded_spikes_factor must be 1 (binary spikes)")
    return beta, threshold, reset


def _linear_weight(layer, index: int) -> torch.Tensor:
    if layer.bias is not None and bool(torch.any(layer.bias != 0)):
        raise ValueError(f"layer {index} (Linear): bias is non-zero; spikecvx networks have no biases")
    return layer.weight.detach()


def from_snntorch(module: nn.Sequential, *, readout_at: str = "last") -> ParallelSNN:
    """Build a ``ParallelSNN`` (branches=1, readout="spike") that spikes like ``module``.

    ``module`` alternates ``nn.Linear`` and ``snntorch.Leaky`` and ends with a Linear readout or
    a Leaky whose spikes are the output (read as an identity readout). All Leaky layers must
    share beta, threshold and reset; biases must be absent or zero. ``readout_at`` says which
    steps' outputs ``forward`` returns (the snnTorch module gives one output per step).
    Raises ValueError naming the layer index and attribute for anything that cannot be mapped.
    """
    snntorch = _snn()
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"module must be a torch.nn.Sequential, got {type(module).__name__}")
    layers = list(module)
    weights, params = [], []
    for i, layer in enumerate(layers):
        want_linear = i % 2 == 0
        if want_linear and type(layer) is not nn.Linear:
            raise ValueError(f"layer {i} is {type(layer).__name__}; expected nn.Linear (the network must "
                             "alternate Linear and Leaky layers)")
        if not want_linear and type(layer) is not snntorch.Leaky:
            raise ValueError(f"layer {i} is {type(layer).__name__}; expected snntorch.Leaky (the network "
                             "must alternate Linear and Leaky layers)")
        if want_linear:
            weights.append(_linear_weight(layer, i))
        else:
            params.append((i, _leaky_params(layer, i)))
    if not params:
        raise ValueError("module has no Leaky layer; expected Linear, Leaky[, Linear, Leaky ...][, Linear]")
    beta, threshold, reset = params[0][1]
    for i, (b, th, r) in params[1:]:
        pairs = (("beta", b, beta), ("threshold", th, threshold), ("reset_mechanism", r, reset))
        for name, got, want in pairs:
            if got != want:
                raise ValueError(f"layer {i} (Leaky): {name}={got!r} differs from layer 1's {want!r}; "
                                 "ParallelSNN shares it across layers")
    n_hidden = len(params)
    hidden = weights[:n_hidden]
    widths = [w.shape[0] for w in hidden]
    for j in range(1, n_hidden - 1):
        if widths[j] != widths[0]:
            raise ValueError(f"layer {2 * j} (Linear): out_features={widths[j]} differs from layer 0's "
                             f"{widths[0]}; ParallelSNN's hidden layers before the last share one width")
    readout = weights[n_hidden] if len(weights) > n_hidden else torch.eye(widths[-1], dtype=hidden[0].dtype)
    dtype = torch.float64 if any(w.dtype == torch.float64 for w in weights) else torch.float32
    net = ParallelSNN(hidden[0].shape[1], readout.shape[0], layers=n_hidden + 1, branches=1,
                      width=widths[0] if n_hidden > 1 else widths[-1], last_width=widths[-1], beta=beta,
                      threshold=threshold, reset=reset, readout="spike", readout_at=readout_at,
                      seed=0, dtype=dtype)
    with torch.no_grad():
        net.hidden[0].copy_(hidden[0].T)
        for i in range(1, n_hidden):
            net.hidden[i].copy_(hidden[i].T[None])
        net.readout_weight.copy_(readout.T)
    return net


def _dense(w: torch.Tensor) -> torch.Tensor:
    """(K, fan_in, fan_out) branch weights -> block-diagonal (K*fan_out, K*fan_in) Linear weight."""
    return torch.block_diag(*[w[k].detach().T for k in range(w.shape[0])])


def to_snntorch(net: ParallelSNN, *, lossy: bool = False) -> nn.Sequential:
    """Return ``Linear, Leaky, ..., Leaky, Linear`` computing ``net`` step by step (see module docstring).

    Leaky layers use init_hidden=True and reset_delay=True (spikecvx's convention); branches
    become block-diagonal Linear weights; no Linear has a bias. readout="membrane" has no
    snnTorch form: refused with ValueError unless ``lossy=True``, which uses the spike readout
    and warns.
    """
    snntorch = _snn()
    if not isinstance(net, ParallelSNN):
        raise TypeError(f"net must be a ParallelSNN, got {type(net).__name__}")
    lossy = check_bool("lossy", lossy)
    if net.recurrent:
        raise ValueError("net has recurrent LIF layers: the snnTorch export builds Leaky layers "
                         "only and would drop the recurrent weights")
    if net.readout == "membrane":
        msg = ("readout='membrane' (the binarised membrane 1[u - b >= 0]) has no snnTorch layer; "
               "the spike readout takes its place")
        if not lossy:
            raise ValueError(msg + ". Pass lossy=True to accept this approximation.")
        warnings.warn("lossy snnTorch export: " + msg, stacklevel=2)
    mods: list[nn.Module] = []
    for i, w in enumerate(net.hidden):
        weight = w.detach().T if i == 0 else _dense(w)
        lin = nn.Linear(weight.shape[1], weight.shape[0], bias=False, dtype=net.dtype)
        with torch.no_grad():
            lin.weight.copy_(weight)
        mods += [lin, snntorch.Leaky(beta=torch.tensor(net.beta, dtype=net.dtype),
                                     threshold=torch.tensor(net.threshold, dtype=net.dtype),
                                     reset_mechanism=net.reset, init_hidden=True, reset_delay=True)]
    readout = nn.Linear(net.last_width, net.n_out, bias=False, dtype=net.dtype)
    with torch.no_grad():
        readout.weight.copy_(net.readout_weight.detach().T)
    mods.append(readout)
    return nn.Sequential(*mods).to(net.device)

