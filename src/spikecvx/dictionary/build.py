"""The spike dictionary D: binary readout features of the witness network over a data set.

Built in batches of samples and chunks of time steps, so peak memory is the dictionary itself
(uint8, one byte per entry) plus one batch's activations. Optional de-duplication keeps one
column per distinct pattern and the map from every witness neuron to its column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..snn import ParallelSNN


@dataclass
class SpikeDictionary:
    """A binary dictionary and its map back to the witness neurons.

    Attributes:
        matrix: uint8 array (rows, n_columns) of 0/1; rows are samples ("last" readout) or
            (sample, step) pairs in sample-major order ("every" readout).
        column_of_neuron: (n_neurons,) index of the column that holds each neuron's pattern.
        representative: (n_columns,) one neuron (the first) whose pattern each column is.
        steps: time steps per sample in the rows (1 for the "last" readout).
        deduplicated: whether every column is a distinct pattern.
    """

    matrix: np.ndarray
    column_of_neuron: np.ndarray
    representative: np.ndarray
    steps: int = 1
    deduplicated: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def n_neurons(self) -> int:
        return len(self.column_of_neuron)

    @property
    def n_distinct(self) -> int:
        """Number of distinct columns (patterns); counted on demand when not de-duplicated."""
        if self.deduplicated:
            return self.matrix.shape[1]
        return len(dedup_columns(self.matrix)[0])

    def __array__(self, dtype=None, copy=None):
        return self.matrix if dtype is None else self.matrix.astype(dtype)

    def neuron_weights(self, coef: np.ndarray) -> np.ndarray:
        """Spread column coefficients (n_columns, ...) to neurons (n_neurons, ...).

        Each column's coefficient goes to its representative neuron; the other neurons with the
        same pattern get zero, so the network computes the same D @ coef with fewer neurons.
        """
        coef = np.asarray(coef)
        if coef.shape[0] != self.matrix.shape[1]:
            raise ValueError(
                f"coef has {coef.shape[0]} rows but the dictionary has {self.matrix.shape[1]} columns"
            )
        out = np.zeros((self.n_neurons,) + coef.shape[1:], dtype=coef.dtype)
        out[self.representative] = coef
        return out


def dedup_columns(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct columns of a 0/1 matrix: returns (first index of each distinct column, inverse).

    ``inverse[j]`` is the position among the distinct columns of column j; distinct columns are
    kept in order of first appearance.
    """
    packed = np.packbits(np.ascontiguousarray(matrix.T, dtype=np.uint8), axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)  # renumber by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.ravel()]


def estimate_bytes(net: ParallelSNN, n_samples: int, steps: int, batch_size: int) -> int:
    """Bytes needed: the uint8 dictionary plus one batch's activations (currents, spikes, membranes)."""
    rows = n_samples * (steps if net.readout_at == "every" else 1)
    widths = [p.shape[-1] * (net.branches if p.dim() == 3 else 1) for p in net.hidden]
    item = torch.finfo(net.dtype).bits // 8
    batch = min(batch_size, n_samples) * steps * (net.d_in + 3 * sum(widths)) * item
    return rows * net.last_width + batch


@torch.no_grad()
def spike_dictionary(
    net: ParallelSNN,
    X,
    batch_size: int = 512,
    time_dim: int = 1,
    dedup: bool = False,
    memory_limit: int | None = None,
    time_chunk: int | None = None,
    progress: bool = False,
) -> SpikeDictionary:
    """Binary dictionary of ``net``'s readout features over the inputs ``X``.

    Args:
        net: the witness network (its readout weights are ignored).
        X: inputs (N, T, d_in) (or (T, N, d_in) with ``time_dim=0``), tensor or array.
        batch_size: samples per forward pass; peak memory grows with it.
        dedup: keep only distinct columns (``column_of_neuron`` maps neurons back).
        memory_limit: bytes; raise ValueError before allocating if the estimate exceeds it.
        time_chunk: time steps per pass (default: all), to bound memory on long sequences.
        progress: show a progress bar.

    Returns:
        A ``SpikeDictionary`` with (N, P) rows for the "last" readout or (N*T, P) for "every".
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = torch.as_tensor(X)
    if x.dim() != 3:
        raise ValueError(f"X must be 3-D (N, T, d_in), got shape {tuple(x.shape)}")
    if time_dim == 0:
        x = x.transpose(0, 1)
    x = net._check_input(x, 1)  # validates width and finiteness, converts dtype/device
    N, T, _ = x.shape
    steps = T if net.readout_at == "every" else 1
    tc = T if time_chunk is None else max(1, int(time_chunk))
    need = estimate_bytes(net, N, min(T, tc), batch_size)
    if memory_limit is not None and need > memory_limit:
        raise ValueError(
            f"memory_limit={memory_limit} bytes is below the {need} bytes this dictionary needs "
            f"({N * steps} x {net.last_width} uint8 plus one batch); lower batch_size or raise it"
        )
    out = np.empty((N * steps, net.last_width), dtype=np.uint8)
    bar = tqdm(total=N, desc="dictionary", unit="sample", disable=not progress)
    for a in range(0, N, batch_size):
        xb = x[a : a + batch_size]
        state = None
        for t0 in range(0, T, tc):
            layers, state = net.run_layers(xb[:, t0 : t0 + tc], state)
            feats = net.readout_features(*layers[-1]).to(torch.uint8).cpu().numpy()
            if steps == 1:
                if t0 + tc >= T:
                    out[a : a + len(xb)] = feats[:, -1]
            else:
                block = out[a * T : (a + len(xb)) * T].reshape(len(xb), T, -1)
                block[:, t0 : t0 + tc] = feats
        bar.update(len(xb))
    bar.close()
    neurons = np.arange(net.last_width)
    if not dedup:
        return SpikeDictionary(out, neurons, neurons, steps)
    first, inverse = dedup_columns(out)
    return SpikeDictionary(np.ascontiguousarray(out[:, first]), inverse, first, steps, True)
