"""The spike dictionary D: binary readout features of the witness network over a data set.

Built in batches of samples and chunks of time steps, so peak memory is the dictionary itself
(uint8, one byte per entry) plus one batch's activations. Optional de-duplication keeps one
column per distinct pattern and the map from every witness neuron to its column.

With ``distributed``, every rank builds the rows of its own samples and the de-duplication is
global: a column is a duplicate only if it equals the other column on every rank's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .._agree import agree
from .._validation import check_bool, check_int
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
    if matrix.shape[0] == 0:  # no rows: every column is the same (empty) pattern
        return np.zeros(min(1, matrix.shape[1]), dtype=np.intp), np.zeros(matrix.shape[1], dtype=np.intp)
    packed = np.packbits(np.ascontiguousarray(matrix.T, dtype=np.uint8), axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)  # renumber by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.ravel()]


def dedup_columns_distributed(matrix: np.ndarray, comm) -> tuple[np.ndarray, np.ndarray]:
    """``dedup_columns`` of the row-wise concatenation of every rank's ``matrix`` (same columns).

    Each rank labels its columns by their exact local pattern (``dedup_columns``'s inverse, a
    collision-free hash of the shard); the labels of all ranks are gathered, and two columns are
    the same pattern exactly when their labels agree on every rank. Every rank gets the same
    (first, inverse), distinct columns in order of first appearance. Communication: one
    all-gather of P int32 labels per rank.
    """
    labels = dedup_columns(matrix)[1].astype(np.int32)
    gathered = comm.allgather(labels)
    if any(len(g) != len(labels) for g in gathered):
        raise ValueError(f"the dictionary has {len(labels)} columns on rank {comm.rank} but "
                         f"{[len(g) for g in gathered]} across the ranks; every rank must use the same "
                         f"network")
    keys = np.ascontiguousarray(np.stack(gathered, axis=1))  # (P, world): a column's labels on every shard
    keys = keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1])))[:, 0]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.ravel()]


def _fingerprint(net: ParallelSNN) -> np.ndarray:
    """A few float64 moments of every hidden (and recurrent) weight tensor: equal on every rank for
    the same network."""
    out = []
    for w in list(net.hidden) + list(getattr(net, "recurrent_weights", [])):
        v = w.detach().to("cpu", torch.float64).reshape(-1)
        ramp = torch.linspace(-1.0, 1.0, len(v), dtype=torch.float64)
        out += [float(v.sum()), float((v * v).sum()), float((v * ramp).sum()), float(len(v))]
    return np.array(out + [net.beta, net.threshold, net.last_width], dtype=np.float64)


def _row_bytes(net: ParallelSNN) -> int:
    """Working bytes per (sample, step) row of one pass: twice the most that is alive at once (a
    layer's input, its currents and its float spikes; the last layer writes uint8 features into
    the dictionary instead), as the BLAS packs the operands of each product into buffers of about
    that size again (see docs/design/dictionary.md)."""
    item = torch.finfo(net.dtype).bits // 8
    widths = net.layer_widths
    ins = [net.d_in] + widths[:-1]
    alive = [a + w + (w if i < len(widths) - 1 else 0) for i, (a, w) in enumerate(zip(ins, widths))]
    return 2 * item * max(alive)


def estimate_bytes(net: ParallelSNN, n_samples: int, steps: int, batch_size: int) -> int:
    """Bytes needed: the uint8 dictionary plus one pass's activations (batch_size x steps rows)."""
    rows = n_samples * (steps if net.readout_at == "every" else 1)
    return rows * net.last_width + min(batch_size, n_samples) * steps * _row_bytes(net)


def plan_passes(net: ParallelSNN, n_samples: int, steps: int, batch_size: int | None,
                time_chunk: int | None, work_bytes: int | None = None) -> tuple[int, int]:
    """Samples and time steps per pass. What the caller leaves as None is chosen so that one pass
    needs at most ``work_bytes`` (default: half the dictionary, within [1 MiB, 256 MiB]); whole
    sequences are preferred, long ones are cut into time chunks."""
    if work_bytes is None:
        dict_bytes = n_samples * (steps if net.readout_at == "every" else 1) * net.last_width
        work_bytes = min(max(dict_bytes // 2, 1 << 20), 256 << 20)
    rows = max(1, work_bytes // _row_bytes(net))
    if batch_size is None:
        batch_size = max(1, min(n_samples, rows // steps if time_chunk is None else rows // time_chunk))
    if time_chunk is None:
        time_chunk = max(1, min(steps, rows // batch_size))
    return int(batch_size), int(time_chunk)


@torch.no_grad()
def spike_dictionary(
    net: ParallelSNN,
    X,
    batch_size: int | None = None,
    time_dim: int = 1,
    dedup: bool = False,
    memory_limit: int | None = None,
    time_chunk: int | None = None,
    progress: bool = False,
    distributed=None,
) -> SpikeDictionary:
    """Binary dictionary of ``net``'s readout features over the inputs ``X``.

    Args:
        net: the witness network (its readout weights are ignored).
        X: inputs (N, T, d_in) (or (T, N, d_in) with ``time_dim=0``), tensor or array.
        batch_size: samples per pass (default: chosen so one pass's activations take at most
            half the dictionary's size, within [1 MiB, 256 MiB]).
        dedup: keep only distinct columns (``column_of_neuron`` maps neurons back).
        memory_limit: bytes; raise ValueError before allocating if the estimate exceeds it.
        time_chunk: time steps per pass (default: chosen like ``batch_size``).
        progress: show a progress bar.
        distributed: True (the default torch.distributed process group) or a process group:
            ``X`` holds this rank's samples (possibly none), the rows returned are this rank's,
            and ``dedup`` keeps the columns that are distinct over all ranks' rows, the same
            columns in the same order on every rank. Every rank must pass the same network.
            Without ``dedup``, ``n_distinct`` counts the patterns of this rank's rows only.

    Returns:
        A ``SpikeDictionary`` with (N, P) rows for the "last" readout or (N*T, P) for "every".

    Each pass is ``net.write_features``: on the CPU it writes the binary features straight into
    the uint8 dictionary.
    """
    comm = None
    if distributed is not None and distributed is not False:
        from ..distributed import communicator

        comm = communicator(distributed)

    def check():  # this rank's arguments; with ``distributed`` every rank raises when one does
        if not isinstance(net, ParallelSNN):
            raise TypeError(f"net must be a ParallelSNN, got {type(net).__name__}")
        for name, value in (("batch_size", batch_size), ("time_chunk", time_chunk),
                            ("memory_limit", memory_limit)):
            if value is not None:
                check_int(name, value)
        check_bool("dedup", dedup)
        check_bool("progress", progress)
        x = net.check_input(X, time_dim, name="X")  # checks shape, dtype and values; converts
        N, T, _ = x.shape
        if comm is None and N == 0:
            raise ValueError(f"X must hold at least one sample, got shape {tuple(np.shape(X))}")
        bs, tc = plan_passes(net, max(N, 1), T, batch_size, time_chunk)
        need = estimate_bytes(net, N, tc, bs)
        if memory_limit is not None and need > memory_limit:
            raise ValueError(
                f"memory_limit={memory_limit} bytes is below the {need} bytes this dictionary needs "
                f"({N * (T if net.readout_at == 'every' else 1)} x {net.last_width} uint8 plus one "
                f"pass); lower batch_size or raise it"
            )
        return x, bs, tc

    x, bs, tc = check() if comm is None else agree(comm, check)
    N, T, _ = x.shape
    if comm is not None:
        comm.check_same("the witness network (net)", _fingerprint(net))
        comm.check_same("the number of time steps of X", [T])
        if comm.sum_scalar(N) == 0:
            raise ValueError("X must hold at least one sample on some rank, but every rank's X is empty")
    steps = T if net.readout_at == "every" else 1
    out = np.empty((N * steps, net.last_width), dtype=np.uint8)
    bar = tqdm(total=N, desc="dictionary", unit="sample", disable=not progress)
    for a in range(0, N, bs):
        xb = x[a : a + bs]
        n = len(xb)
        rows = out[a * steps : (a + n) * steps].reshape(n, steps, -1)
        state = None
        for t0 in range(0, T, tc):
            t1 = min(T, t0 + tc)
            if net.readout_at == "every":
                target = rows[:, t0:t1]
            else:
                target = rows if t1 == T else None
            state = net.write_features(xb[:, t0:t1], state, target)
        bar.update(n)
    bar.close()
    neurons = np.arange(net.last_width)
    if not dedup:
        return SpikeDictionary(out, neurons, neurons, steps)
    first, inverse = dedup_columns(out) if comm is None else dedup_columns_distributed(out, comm)
    return SpikeDictionary(np.ascontiguousarray(out[:, first]), inverse, first, steps, True)

