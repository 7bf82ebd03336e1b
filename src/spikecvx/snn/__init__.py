"""Neurons: the functional LIF scan, surrogate spike functions and ``ParallelSNN``."""

from .lif import lif_scan
from .network import ParallelSNN
from .surrogate import SURROGATE_GRADS, heaviside, spike

__all__ = ["lif_scan", "ParallelSNN", "SURROGATE_GRADS", "heaviside", "spike"]
