"""Checkpoints of trained networks: weights + architecture config + format version, one file.

The file is a ``torch.save`` dictionary of plain types and tensors, read back with
``weights_only=True`` (no arbitrary code runs on load). Round trips are exact. A ``ParallelSNN``
is stored as its config, dtype and state; a ``GrownSNN`` (witness search) as the list of its
blocks, each stored and checked like a ``ParallelSNN``, and the blocks' sources.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import tempfile
from pathlib import Path

import torch

from .._validation import check_device
from ..snn import ParallelSNN
from ..snn.grown import GrownSNN

FORMAT = "spikecvx.ParallelSNN"
GROWN_FORMAT = "spikecvx.GrownSNN"
FORMAT_VERSION = 1


def _entry(net: ParallelSNN) -> dict:
    config = net.config()
    if not config["recurrent"]:  # feed-forward files stay readable by versions without the key
        del config["recurrent"]
    return dict(config=config, dtype=str(net.dtype).removeprefix("torch."),
                state={k: v.detach().cpu() for k, v in net.state_dict().items()})


def save_network(net: ParallelSNN | GrownSNN, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``net`` (a ``ParallelSNN`` or a ``GrownSNN``) and JSON-like ``metadata`` to ``path``
    atomically."""
    meta = json.loads(json.dumps(metadata or {}, default=_builtin))
    if isinstance(net, ParallelSNN):
        blob = dict(format=FORMAT, version=FORMAT_VERSION, **_entry(net), metadata=meta)
    elif isinstance(net, GrownSNN):
        blob = dict(format=GROWN_FORMAT, version=FORMAT_VERSION, blocks=[_entry(b) for b in net.blocks],
                    sources=list(net.sources), metadata=meta)
    else:
        raise TypeError(f"net must be a ParallelSNN or a GrownSNN, got {type(net).__name__}")
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # the permissions of a plain new file, not mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _builtin(value):
    """JSON fallback for numpy scalars and arrays in metadata."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON serialisable")


def load_network(path: str | Path,
                 device: str | torch.device | None = None) -> tuple[ParallelSNN | GrownSNN, dict]:
    """Read a network written by ``save_network``; returns (network, metadata).

    A file that is not a complete, untampered checkpoint raises ValueError naming the file (and
    the block of a ``GrownSNN``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, empty, random bytes or foreign pickles: torch raises many types
        raise ValueError(f"{path} is not a readable spikecvx network checkpoint "
                         f"(torch.load failed with {type(err).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") not in (FORMAT, GROWN_FORMAT):
        raise ValueError(f"{path} is not a spikecvx network checkpoint (no format {FORMAT!r} or "
                         f"{GROWN_FORMAT!r})")
    version = blob.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: 'version' must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version}, newer than this spikecvx "
                         f"reads ({FORMAT_VERSION}); upgrade spikecvx")
    grown = blob["format"] == GROWN_FORMAT
    needed = {"blocks", "sources", "metadata"} if grown else {"config", "dtype", "state", "metadata"}
    missing = needed - set(blob)
    if missing:
        raise ValueError(f"{path} is missing the entries {sorted(missing)}")
    metadata = blob["metadata"]
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: 'metadata' must be a dictionary, got {type(metadata).__name__}")
    if not grown:
        net = _network(path, blob, "")
    else:
        blocks, sources = blob["blocks"], blob["sources"]
        if not isinstance(blocks, list) or not blocks:
            raise ValueError(f"{path}: 'blocks' must be a non-empty list of networks")
        if not isinstance(sources, list) or len(sources) != len(blocks) or not all(
                isinstance(x, str) for x in sources):
            raise ValueError(f"{path}: 'sources' must be a list of {len(blocks)} strings, got {sources!r}")
        nets = []
        for i, entry in enumerate(blocks):
            if not isinstance(entry, dict) or {"config", "dtype", "state"} - set(entry):
                raise ValueError(f"{path}: block {i} must be a dictionary with config, dtype and state")
            nets.append(_network(path, entry, f" block {i}"))
        try:
            net = GrownSNN(nets, sources)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: invalid blocks: {err}") from None
    if device is not None:
        net.to(check_device(device))
    return net.eval(), metadata


def _network(path: Path, blob: dict, where: str) -> ParallelSNN:
    """The ``ParallelSNN`` of one checkpoint entry (config, dtype, state), checked."""
    config, state = blob["config"], blob["state"]
    if blob["dtype"] not in _DTYPES:
        raise ValueError(f"{path}{where}: 'dtype' must be one of {sorted(_DTYPES)}, got {blob['dtype']!r}")
    if not isinstance(config, dict):
        raise ValueError(f"{path}{where}: 'config' must be a dictionary, got {type(config).__name__}")
    config = {"recurrent": False} | config  # files written before recurrent layers existed
    expected = set(_CONFIG_KEYS)
    if set(config) != expected:
        extra, lacking = sorted(map(str, set(config) - expected)), sorted(expected - set(config))
        problems = [f"has unknown keys {extra}"] if extra else []
        problems += [f"lacks {lacking}"] if lacking else []
        raise ValueError(f"{path}{where}: 'config' {' and '.join(problems)}")
    try:
        net = ParallelSNN(**config, dtype=_DTYPES[blob["dtype"]])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}{where}: invalid network config: {err}") from None
    _check_state(f"{path}{where}", net, state)
    net.load_state_dict(state)
    return net


_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# what ParallelSNN.config() holds: the constructor's arguments except those not saved there
_NOT_SAVED = ("seed", "dtype", "device")
_CONFIG_KEYS = tuple(k for k in inspect.signature(ParallelSNN).parameters if k not in _NOT_SAVED)


def _check_state(path: Path | str, net: ParallelSNN, state) -> None:
    """Raise ValueError unless ``state`` holds exactly ``net``'s tensors, of their shapes, finite."""
    if not isinstance(state, dict):
        raise ValueError(f"{path}: 'state' must be a dictionary of tensors, got {type(state).__name__}")
    own = net.state_dict()
    if set(state) != set(own):
        raise ValueError(f"{path}: 'state' has tensors {sorted(map(str, state))}, expected {sorted(own)}")
    for name, ref in own.items():
        value = state[name]
        if not isinstance(value, torch.Tensor) or value.shape != ref.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{path}: state tensor {name!r} must have shape {tuple(ref.shape)}, got {shape}")
        if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
            raise ValueError(f"{path}: state tensor {name!r} must hold finite real numbers")
