"""Sample weights and row merging: the rows a solver works on, and how they map back.

A problem with sample weights w (scikit-learn's meaning: the objective is
sum_i w_i loss_i / sum_i w_i + reg * penalty) is solved over its rows of positive weight, with
normalised weights s_i = w_i / sum(w). Identical (row, label) pairs have identical loss terms,
so they are merged into one row carrying the sum of their weights: the objective, its optimum
and its certificate are unchanged, and spike dictionaries repeat rows often (a dictionary of
T-step binary inputs has at most 2^T distinct rows). Merging is done only when it pays
(``MERGE_RATIO``); the duplicates are found with one product of D with two random vectors (a row
hash) and the grouping is verified exactly before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._validation import check_real_array
from ._products import row_hashes
from .matrix import DesignMatrix

# Rows are merged when the distinct (row, label) pairs number fewer than this fraction of the
# rows of positive weight: below it the smaller problem saves more than the bookkeeping costs.
MERGE_RATIO = 0.9
# Row hash: products with _HASH_COLUMNS random integer vectors below _HASH_RANGE: for a uint8 D in
# wrapping int64 (``_products.row_hashes``, exact), otherwise in float64 (exact for integer-valued
# D of up to about 2^53 / (P * max|D| * _HASH_RANGE)); seed: any fixed value, the grouping is
# verified.
_HASH_SEED = 20261129
_HASH_COLUMNS = 2
_HASH_RANGE = 2**24


@dataclass
class RowReduction:
    """The rows a solver works on: ``rows`` (original index of one representative per kept row),
    ``inverse`` (n,) (the kept row of each original row, -1 for a row of zero weight), and the
    normalised weights: ``weights`` (m,) of the kept rows (sums over merged rows) and
    ``sample_weights`` (n,) of the original rows; both sum to 1."""

    rows: np.ndarray
    inverse: np.ndarray
    weights: np.ndarray
    sample_weights: np.ndarray

    @property
    def merged(self) -> bool:
        """Whether some kept row stands for several original rows."""
        return len(self.rows) < int(np.count_nonzero(self.inverse >= 0))

    def expand(self, U: np.ndarray) -> np.ndarray:
        """A dual point of the kept rows as one of the original rows: each kept row's value is
        shared among its rows in proportion to their weights (0 on rows of zero weight), which
        leaves D^T U and the weighted conjugate unchanged."""
        out = np.zeros((len(self.inverse), U.shape[1]))
        pos = self.inverse >= 0
        k = self.inverse[pos]
        out[pos] = U[k] * (self.sample_weights[pos] / self.weights[k])[:, None]
        return out


def weight_array(sample_weight, n: int) -> np.ndarray:
    """``sample_weight`` as a float64 (n,) array of non-negative numbers (not normalised).
    Raises TypeError / ValueError naming ``sample_weight``."""
    if isinstance(sample_weight, (str, bytes)) or np.ndim(sample_weight) == 0:
        raise TypeError(f"sample_weight must be an array of {n} non-negative numbers, got "
                        f"{type(sample_weight).__name__}")
    check_real_array("sample_weight", sample_weight)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},) (one weight per row of D), got {w.shape}")
    if (w < 0).any():
        raise ValueError(f"sample_weight must be non-negative, got {w.min()!r}")
    return w


def check_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    """``sample_weight`` as float64 (n,) normalised to sum 1, or None for none (or equal weights,
    which is the unweighted problem). Raises TypeError / ValueError naming ``sample_weight``."""
    if sample_weight is None:
        return None
    w = weight_array(sample_weight, n)
    with np.errstate(over="ignore"):
        total = w.sum()
    if not np.isfinite(total):
        raise ValueError("sample_weight is too large: its sum is not finite in float64; rescale it")
    if total <= 0:
        raise ValueError("sample_weight is all zero: at least one sample must have a positive weight")
    if np.all(w == w[0]):
        return None
    return w / total


def reduce_rows(M: DesignMatrix, Y: np.ndarray, s: np.ndarray | None,
                merge: bool = True) -> RowReduction | None:
    """The rows to solve over: rows of zero weight dropped, identical (row, label) pairs merged
    (when ``merge`` and when it pays, see ``MERGE_RATIO``). None when the problem is used as it is
    (no weights, or equal ones, and no merging)."""
    n = M.n
    s_full = np.full(n, 1.0 / n) if s is None else s
    pos = np.flatnonzero(s_full > 0)
    groups = _duplicate_groups(M, Y, pos) if merge else None
    if groups is None:
        if s is None:
            return None
        first, inv = pos, np.arange(len(pos))
    else:
        first, inv = groups
    inverse = np.full(n, -1)
    inverse[pos] = inv
    weights = np.bincount(inv, weights=s_full[pos], minlength=len(first))
    return RowReduction(first, inverse, weights, s_full)


def _duplicate_groups(M: DesignMatrix, Y: np.ndarray, pos: np.ndarray):
    """(representative rows, group of each row in ``pos``) when the distinct (row, label) pairs
    among the rows ``pos`` number fewer than ``MERGE_RATIO`` of them, else None.

    Rows are hashed by one product with random integer vectors; the grouping is checked row by row
    against its representative, and an exact comparison of the rows' bytes replaces it in the
    (improbable) case of a collision."""
    m = len(pos)
    if m < 2:
        return None
    # integer-valued hash vectors: on integer-valued D (spike dictionaries) the products are exact,
    # so identical rows get identical keys whatever order the sums run in
    r = np.random.default_rng(_HASH_SEED).integers(1, _HASH_RANGE, size=(M.p, _HASH_COLUMNS))
    h = row_hashes(M.D, r) if not M.sparse and M.D.dtype == np.uint8 else None
    if h is not None:  # exact integer keys, their bits compared as bytes below
        h = h[pos].view(np.float64)
    else:
        h = M.matmul(r.astype(np.float64))[pos] + 0.0  # + 0.0: -0.0 and 0.0 are the same key
    keys = np.ascontiguousarray(np.concatenate([h, Y[pos] + 0.0], axis=1))
    _, first, inv = np.unique(keys.view(np.dtype((np.void, keys.shape[1] * 8)))[:, 0],
                              return_index=True, return_inverse=True)
    if len(first) >= MERGE_RATIO * m:
        return None
    inv = inv.ravel()
    if not _same_rows(M, pos, pos[first[inv]]):
        first, inv = _exact_groups(M, Y, pos)
        if len(first) >= MERGE_RATIO * m:
            return None
    # groups numbered by their first row, whatever order the keys sorted in
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return pos[first[order]], rank[inv]


def _same_rows(M: DesignMatrix, rows: np.ndarray, reps: np.ndarray) -> bool:
    """Whether D[rows] == D[reps] exactly (in chunks of rows for a dense D)."""
    if M.sparse:
        D = sp.csr_matrix(M.D)
        return (D[rows] != D[reps]).nnz == 0
    step = max(1, M.chunk * M.n // max(1, M.p))
    return all(np.array_equal(M.D[rows[a : a + step]], M.D[reps[a : a + step]])
               for a in range(0, len(rows), step))


def _exact_groups(M: DesignMatrix, Y: np.ndarray, pos: np.ndarray):
    """Distinct (row, label) pairs among rows ``pos`` by their bytes: (first, inverse)."""
    X = M.D[pos]
    X = np.ascontiguousarray(X.toarray() if sp.issparse(X) else X)
    if X.dtype.kind == "f":
        X = X + 0.0
    keys = np.concatenate([X.view(np.uint8).reshape(len(pos), -1),
                           np.ascontiguousarray(Y[pos] + 0.0).view(np.uint8)], axis=1)
    _, first, inv = np.unique(keys.view(np.dtype((np.void, keys.shape[1])))[:, 0],
                              return_index=True, return_inverse=True)
    return first, inv.ravel()
