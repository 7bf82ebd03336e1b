"""Export to and import from NIR, the Neuromorphic Intermediate Representation (package ``nir``).

A ``ParallelSNN`` becomes the chain graph

    input -> fc0 -> lif0 -> fc1 -> lif1 -> ... -> lif{L-2} -> readout -> output

with ``Linear`` weights in NIR's (out, in) orientation (the K branches of every layer after the
first as one block-diagonal matrix), ``LIF`` neurons with tau = dt / (1 - beta), r = tau / dt,
v_leak = 0, v_reset = 0, v_threshold = threshold, and the readout as a ``Linear`` node. The
graph's output at step t is ``readout_weight`` applied to the last layer's spikes at step t; a
network with readout_at="last" reports the final step of that sequence.

NIR's LIF resets to v_reset after a spike. With a zero reset the spike trains of spikecvx's
delayed reset (the membrane is zeroed at the step after the spike) and of an immediate reset are
identical, so a network with reset="zero" and readout="spike" is represented exactly. A subtract
reset and the binarised membrane readout have no NIR form: ``to_nir`` refuses them unless
``lossy=True``. The derivation is in docs/design/interop.md.

The default ``dt`` is 1e-4, the step snnTorch assumes when it writes and reads NIR graphs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .._validation import check_bool, check_positive
from ..snn import ParallelSNN

DEFAULT_DT = 1e-4
_META = "spikecvx"  # prefix of the graph metadata keys written by ``to_nir``


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("NIR support needs the 'nir' package: pip install 'spikecvx[nir]'") from exc
    return nir


def _block_diag(w: torch.Tensor) -> np.ndarray:
    """(K, fan_in, fan_out) per-branch weights -> the (K*fan_out, K*fan_in) matrix (out, in)."""
    K, a, b = w.shape
    out = np.zeros((K * b, K * a), dtype=w.detach().cpu().numpy().dtype)
    for k in range(K):
        out[k * b:(k + 1) * b, k * a:(k + 1) * a] = w[k].detach().cpu().numpy().T
    return out


def unrepresentable(net: ParallelSNN) -> list[str]:
    """Features of ``net`` that NIR cannot represent exactly (empty list: exact export)."""
    issues = []
    if net.reset == "subtract":
        issues.append("reset='subtract' (NIR's LIF resets to v_reset=0; exported as a zero reset)")
    if net.readout == "membrane":
        issues.append("readout='membrane' (the binarised membrane 1[u - b >= 0] has no NIR node; "
                      "exported as the spike readout)")
    return issues


def to_nir(net: ParallelSNN, *, lossy: bool = False, dt: float = DEFAULT_DT):
    """Return the NIR graph of ``net`` (see the module docstring for the mapping).

    Raises ValueError naming the feature for a network NIR cannot represent exactly (subtract
    reset, membrane readout) unless ``lossy=True``, which exports the nearest exact network
    (zero reset, spike readout) and warns naming what is approximated. beta = 1 (no leak) has an
    infinite time constant and is always refused.
    """
    nir = _nir()
    if not isinstance(net, ParallelSNN):
        raise TypeError(f"net must be a ParallelSNN, got {type(net).__name__}")
    lossy = check_bool("lossy", lossy)
    dt = check_positive("dt", dt)
    if net.recurrent:
        raise ValueError("net has recurrent LIF layers: the NIR export writes feed-forward graphs "
                         "only and would drop the recurrent weights")
    if net.beta >= 1.0:
        raise ValueError("beta=1 (no leak) has an infinite NIR time constant tau = dt / (1 - beta); "
                         "NIR export needs beta < 1")
    issues = unrepresentable(net)
    if issues and not lossy:
        raise ValueError("NIR cannot represent this network exactly: " + "; ".join(issues)
                         + ". Pass lossy=True to export an approximation.")
    if issues:
        warnings.warn("lossy NIR export approximates " + "; ".join(issues), stacklevel=2)

    tau_value = dt / (1.0 - net.beta)
    nodes = {"input": nir.Input(input_type=np.array([net.d_in]))}
    edges = [("input", "fc0")]
    for i, w in enumerate(net.hidden):
        weight = w.detach().cpu().numpy().T.copy() if i == 0 else _block_diag(w)
        n = weight.shape[0]
        tau = np.full(n, tau_value)
        nodes[f"fc{i}"] = nir.Linear(weight=weight)
        nodes[f"lif{i}"] = nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(n),
                                   v_threshold=np.full(n, net.threshold), v_reset=np.zeros(n))
        nxt = f"fc{i + 1}" if i + 1 < len(net.hidden) else "readout"
        edges += [(f"fc{i}", f"lif{i}"), (f"lif{i}", nxt)]
    nodes["readout"] = nir.Linear(weight=net.readout_weight.detach().cpu().numpy().T.copy())
    nodes["output"] = nir.Output(output_type=np.array([net.n_out]))
    edges.append(("readout", "output"))
    metadata = {f"{_META}.beta": net.beta, f"{_META}.dt": dt, f"{_META}.branches": net.branches,
                f"{_META}.width": net.width, f"{_META}.readout_at": net.readout_at}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def save_nir(net: ParallelSNN, path: str | Path, *, lossy: bool = False, dt: float = DEFAULT_DT) -> Path:
    """Write ``to_nir(net, lossy=lossy, dt=dt)`` to ``path`` (NIR's HDF5 format); returns the path."""
    graph = to_nir(net, lossy=lossy, dt=dt)
    path = Path(path)
    _nir().write(path, graph)
    return path


def load_nir(path: str | Path, **kwargs) -> ParallelSNN:
    """Read a NIR file and return ``from_nir`` of its graph (keyword arguments pass through)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no NIR file at {str(path)!r}")
    return from_nir(_nir().read(path), **kwargs)


# ---------------------------------------------------------------------------- import
def _meta(graph, key, default=None):
    value = (graph.metadata or {}).get(f"{_META}.{key}", default)
    if isinstance(value, bytes):
        value = value.decode()
    return value.item() if isinstance(value, np.generic) else value


def _chain(graph) -> list[str]:
    """Node keys from the single Input to the single Output; ValueError for anything else."""
    nir = _nir()
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"graph must have exactly one Input and one Output node, got inputs {inputs} "
                         f"and outputs {outputs}")
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for src, dst in graph.edges:
        if src not in succ or dst not in succ:
            raise ValueError(f"graph edge ({src!r}, {dst!r}) names a node that is not in the graph")
        succ[src].append(dst)
    order, key = [inputs[0]], inputs[0]
    while key != outputs[0]:
        if len(succ[key]) != 1:
            raise ValueError(f"node {key!r} has {len(succ[key])} outgoing edges; a ParallelSNN is a "
                             "chain in which every node feeds exactly one next node")
        key = succ[key][0]
        if key in order:
            raise ValueError(f"node {key!r} closes a cycle; recurrent graphs have no ParallelSNN form")
        order.append(key)
    if len(order) != len(graph.nodes):
        extra = sorted(set(graph.nodes) - set(order))
        raise ValueError(f"nodes {extra} are not on the input-to-output chain")
    return order


def _weight(node, key) -> np.ndarray:
    nir = _nir()
    if isinstance(node, nir.Affine):
        if np.any(np.asarray(node.bias) != 0):
            raise ValueError(f"node {key!r} (Affine) has a non-zero bias; spikecvx networks have no biases")
    elif not isinstance(node, nir.Linear):
        raise ValueError(f"node {key!r} is a {type(node).__name__}; expected a Linear (or zero-bias Affine)")
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise ValueError(f"node {key!r}: weight must be 2-D (out, in), got shape {w.shape}")
    return w


def _lif_params(node, key, dt: float) -> tuple[float, float]:
    """(beta, threshold) of a LIF node whose neurons all share them; ValueError otherwise."""
    nir = _nir()
    if type(node) is not nir.LIF:
        raise ValueError(f"node {key!r} is a {type(node).__name__}; spikecvx maps only LIF neurons "
                         "(Input, Linear, LIF, Output nodes)")
    tau, r = np.asarray(node.tau, float).ravel(), np.asarray(node.r, float).ravel()
    v_leak, v_thr = np.asarray(node.v_leak, float).ravel(), np.asarray(node.v_threshold, float).ravel()
    v_reset = np.asarray(node.v_reset, float).ravel()
    for name, arr in (("tau", tau), ("v_threshold", v_thr)):
        if arr.size == 0 or np.any(arr != arr[0]):
            raise ValueError(f"node {key!r}: {name} differs between neurons; ParallelSNN shares it")
    if np.any(v_leak != 0) or np.any(v_reset != 0):
        raise ValueError(f"node {key!r}: v_leak and v_reset must be 0")
    if not np.allclose(r * dt / tau, 1.0, rtol=1e-9, atol=0):
        raise ValueError(f"node {key!r}: r * dt / tau must be 1 (unit input gain at dt={dt}), "
                         f"got {np.unique(r * dt / tau)}")
    if tau[0] < dt:
        raise ValueError(f"node {key!r}: tau={tau[0]} < dt={dt} gives a negative leak beta = 1 - dt / tau")
    if v_thr[0] <= 0:
        raise ValueError(f"node {key!r}: v_threshold must be > 0, got {v_thr[0]}")
    return 1.0 - dt / tau[0], float(v_thr[0])


def _is_block_diag(w: np.ndarray, K: int) -> bool:
    rows, cols = w.shape
    if rows % K or cols % K:
        return False
    b, a = rows // K, cols // K
    mask = np.kron(np.eye(K, dtype=bool), np.ones((b, a), dtype=bool))
    return not np.any(w[~mask])


def from_nir(graph, *, dt: float | None = None, readout_at: str | None = None) -> ParallelSNN:
    """Build the ``ParallelSNN`` of a NIR chain graph (Input, (Linear, LIF)+, [Linear], Output).

    ``dt`` (default: the graph's ``spikecvx.dt`` metadata, else 1e-4) turns tau into
    beta = 1 - dt / tau. The result has reset="zero", readout="spike" (exact: see
    docs/design/interop.md). A graph ending in a LIF node reads as an identity readout (the
    outputs are the spikes). ``readout_at`` defaults to the graph's metadata, else "last".
    The branch count is the graph's ``spikecvx.branches`` metadata (its block structure is
    checked), else the largest K for which every layer after the first is block-diagonal.
    Raises ValueError naming the node for anything without a ParallelSNN form.
    """
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph must be a nir.NIRGraph, got {type(graph).__name__}")
    dt = check_positive("dt", dt if dt is not None else float(_meta(graph, "dt", DEFAULT_DT)))
    order = _chain(graph)[1:-1]
    if not order:
        raise ValueError("graph has no nodes between its Input and Output")
    weights, params = [], []
    pos = 0
    while pos < len(order):
        key = order[pos]
        weights.append((key, _weight(graph.nodes[key], key)))
        if pos + 1 < len(order):
            lif_key = order[pos + 1]
            params.append((lif_key, _lif_params(graph.nodes[lif_key], lif_key, dt)))
            pos += 2
        else:
            pos += 1
    if not params:
        raise ValueError("graph has no LIF node; a ParallelSNN needs at least one LIF layer")
    ends_in_lif = len(weights) == len(params)
    beta, threshold = params[0][1]
    for key, (b, th) in params[1:]:
        if b != beta or th != threshold:
            raise ValueError(f"node {key!r}: beta/threshold ({b}, {th}) differ from the first LIF layer's "
                             f"({beta}, {threshold}); ParallelSNN shares them across layers")
    meta_beta = _meta(graph, "beta")
    if meta_beta is not None and abs(float(meta_beta) - beta) <= 1e-12:
        beta = float(meta_beta)  # the exact value spikecvx wrote (tau's round trip may differ by an ulp)

    hidden = [w for _, w in weights[:len(params)]]
    for (key, w), (_, prev) in zip(weights[1:], weights[:-1]):
        if w.shape[1] != prev.shape[0]:
            raise ValueError(f"node {key!r}: weight takes {w.shape[1]} inputs but the layer before has "
                             f"{prev.shape[0]} neurons")
    widths = [w.shape[0] for w in hidden]
    for (key, _), n in zip(weights[1:len(hidden) - 1], widths[1:-1]):
        if n != widths[0]:
            raise ValueError(f"node {key!r}: {n} neurons, but ParallelSNN's hidden layers before the last "
                             f"all have the first layer's width {widths[0]}")
    K = _branches(graph, weights[1:len(hidden)], widths)

    d_in = hidden[0].shape[1]
    readout = np.eye(widths[-1]) if ends_in_lif else weights[-1][1]
    dtype = torch.float64 if any(w.dtype == np.float64 for _, w in weights) else torch.float32
    at = readout_at if readout_at is not None else str(_meta(graph, "readout_at", "last"))
    width = widths[0] if len(hidden) > 1 else _unused_width(graph, K, widths[-1])
    net = ParallelSNN(d_in, readout.shape[0], layers=len(hidden) + 1, branches=K,
                      width=width, last_width=widths[-1],
                      beta=beta, threshold=threshold, reset="zero", readout="spike", readout_at=at,
                      seed=0, dtype=dtype)
    with torch.no_grad():
        net.hidden[0].copy_(torch.from_numpy(hidden[0].T.copy()))
        for i in range(1, len(hidden)):
            w = hidden[i]
            b, a = w.shape[0] // K, w.shape[1] // K
            blocks = np.stack([w[k * b:(k + 1) * b, k * a:(k + 1) * a].T for k in range(K)])
            net.hidden[i].copy_(torch.from_numpy(blocks))
        net.readout_weight.copy_(torch.from_numpy(np.ascontiguousarray(readout.T)))
    return net


def _branches(graph, later: list[tuple[str, np.ndarray]], widths: list[int]) -> int:
    """Branch count K: from the metadata (checked) or the largest block-diagonal K."""
    meta_k = _meta(graph, "branches")
    if meta_k is not None:
        if isinstance(meta_k, (bool, np.bool_)) or not isinstance(meta_k, (int, np.integer)) or meta_k < 1:
            raise ValueError(f"the graph's metadata '{_META}.branches' must be an integer >= 1, "
                             f"got {meta_k!r}")
        K = int(meta_k)
        for key, w in later:
            if not _is_block_diag(w, K):
                raise ValueError(f"node {key!r}: weight is not block-diagonal with {K} branches, as the "
                                 f"graph's metadata '{_META}.branches' states")
        if any(n % K for n in widths):
            raise ValueError(f"layer widths {widths} are not divisible by the {K} branches of the metadata")
        return K
    if not later:
        return 1
    g = int(np.gcd.reduce(widths + [w.shape[1] for _, w in later]))
    return max(k for k in range(1, g + 1) if g % k == 0 and all(_is_block_diag(w, k) for _, w in later))


def _unused_width(graph, K: int, default: int) -> int:
    """``width`` of a one-hidden-layer network (unused by it): the metadata's, else last_width."""
    width = _meta(graph, "width")
    return int(width) if width is not None and int(width) > 0 and int(width) % K == 0 else default
