"""Interoperability: checkpoints of trained networks."""

from .checkpoint import FORMAT_VERSION, load_network, save_network

__all__ = ["FORMAT_VERSION", "load_network", "save_network"]
