"""Dictionary layer: witness weights and the binary spike dictionary built from them."""

from .build import (
    SpikeDictionary,
    dedup_columns,
    dedup_columns_distributed,
    estimate_bytes,
    spike_dictionary,
)
from .witnesses import WITNESS_KINDS, sample_witnesses, transfer_witnesses

__all__ = [
    "SpikeDictionary", "dedup_columns", "dedup_columns_distributed", "estimate_bytes", "spike_dictionary",
    "WITNESS_KINDS", "sample_witnesses", "transfer_witnesses",
]
