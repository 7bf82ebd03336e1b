"""Interoperability: checkpoints, NIR graphs and snnTorch modules.

The NIR and snnTorch converters import their optional packages (``nir``, ``snntorch``) only
when called.
"""

from .checkpoint import FORMAT_VERSION, load_network, save_network
from .nir import from_nir, load_nir, save_nir, to_nir
from .snntorch_io import from_snntorch, to_snntorch

__all__ = ["FORMAT_VERSION", "from_nir", "from_snntorch", "load_network", "load_nir", "save_network",
           "save_nir", "to_nir", "to_snntorch"]
