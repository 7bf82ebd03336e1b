"""spikecvx: globally optimal training of spiking neural networks by parameter reconstruction.

The top-level names are loaded on first use, so ``import spikecvx.convex`` (a general sparse-GLM
engine) pulls in neither torch nor scikit-learn.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spikecvx")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# public name -> submodule that defines it
_EXPORTS = {
    "ParallelSNN": "snn", "lif_scan": "snn", "GrownSNN": "snn.grown",
    "SpikeDictionary": "dictionary", "sample_witnesses": "dictionary",
    "spike_dictionary": "dictionary", "transfer_witnesses": "dictionary",
    "SpikingClassifier": "train", "reconstruct": "train",
    "load_network": "interop", "save_network": "interop",
    "to_nir": "interop", "from_nir": "interop", "save_nir": "interop", "load_nir": "interop",
    "from_snntorch": "interop", "to_snntorch": "interop",
}
_SUBMODULES = ("convex", "snn", "dictionary", "train", "tasks", "experiments", "interop")

__all__ = ["convex", *_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'spikecvx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
