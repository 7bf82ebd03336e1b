"""Checkpoints of trained networks: weights + architecture config + format version, one file.

The file is a ``torch.save`` dictionary of plain types and tensors, read back with
``weights_only=True`` (no arbitrary code runs on load). Round trips are exact.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch

from ..snn import ParallelSNN

FORMAT = "spikecvx.ParallelSNN"
FORMAT_VERSION = 1


def save_network(net: ParallelSNN, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``net`` (and JSON-like ``metadata``) to ``path`` atomically."""
    if not isinstance(net, ParallelSNN):
        raise TypeError(f"net must be a ParallelSNN, got {type(net).__name__}")
    path = Path(path)
    blob = dict(format=FORMAT, version=FORMAT_VERSION, config=net.config(),
                dtype=str(net.dtype).removeprefix("torch."),
                state={k: v.detach().cpu() for k, v in net.state_dict().items()},
                metadata=json.loads(json.dumps(metadata or {}, default=_builtin)))
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
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


def load_network(path: str | Path, device: str | torch.device | None = None) -> tuple[ParallelSNN, dict]:
    """Read a network written by ``save_network``; returns (network, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a spikecvx network checkpoint")
    if blob["version"] > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {blob['version']}, newer than this spikecvx "
                         f"reads ({FORMAT_VERSION}); upgrade spikecvx")
    dtype = getattr(torch, blob["dtype"])
    net = ParallelSNN(**blob["config"], dtype=dtype)
    net.load_state_dict(blob["state"])
    if device is not None:
        net.to(device)
    return net.eval(), blob["metadata"]
