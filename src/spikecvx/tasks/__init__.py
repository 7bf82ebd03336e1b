"""Tasks: data generators, metrics and chance levels."""

from .xor import first_last_xor

__all__ = ["first_last_xor"]
