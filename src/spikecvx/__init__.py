"""spikecvx: globally optimal training of spiking neural networks by parameter reconstruction."""

from . import convex
from .dictionary import SpikeDictionary, sample_witnesses, spike_dictionary, transfer_witnesses
from .interop import load_network, save_network
from .snn import ParallelSNN, lif_scan
from .train import SpikingClassifier, reconstruct

__version__ = "0.2.0"

__all__ = [
    "convex", "ParallelSNN", "lif_scan", "SpikeDictionary", "sample_witnesses", "spike_dictionary",
    "transfer_witnesses", "SpikingClassifier", "reconstruct", "load_network", "save_network",
    "__version__",
]
