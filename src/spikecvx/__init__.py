"""spikecvx: globally optimal training of spiking neural networks by parameter reconstruction."""

from . import convex
from .dictionary import SpikeDictionary, sample_witnesses, spike_dictionary, transfer_witnesses
from .snn import ParallelSNN, lif_scan

__version__ = "0.1.0"

__all__ = [
    "convex", "ParallelSNN", "lif_scan", "SpikeDictionary", "sample_witnesses",
    "spike_dictionary", "transfer_witnesses", "__version__",
]
