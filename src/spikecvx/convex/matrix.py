"""A read-only view of the design matrix D that the solvers need: products and column blocks.

Accepts dense arrays of any real or boolean dtype (uint8 dictionaries stay uint8) and scipy
sparse matrices; products are done in float64 over column chunks so a large uint8 dictionary is
never converted to float64 as a whole, and ``D^T U`` and the column norms of a uint8 dictionary
are computed by compiled loops that read it once (``_products``). ``matmul`` / ``rmatmul`` do the
same for a bare dense array (the working-set block the smooth solver receives, kept in D's dtype
by ``DesignMatrix.columns(idx, compact=True)``).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .._validation import check_real_array
from ._products import column_sq_norms_uint8, rmatmul_uint8

CHUNK_BYTES = 64 * 2**20


def chunk_columns(n: int) -> int:
    """Columns per float64 block of ``CHUNK_BYTES`` for a matrix with n rows."""
    return max(1, CHUNK_BYTES // (8 * max(1, n)))


def matmul(A: np.ndarray, W: np.ndarray) -> np.ndarray:
    """A @ W in float64 for a dense A of any real dtype, converting A a column block at a time."""
    if A.dtype == np.float64:
        return A @ W
    out = np.zeros((A.shape[0],) + W.shape[1:])
    step = chunk_columns(A.shape[0])
    for a in range(0, A.shape[1], step):
        out += A[:, a : a + step].astype(np.float64) @ W[a : a + step]
    return out


def rmatmul(A: np.ndarray, U: np.ndarray) -> np.ndarray:
    """A^T @ U in float64 for a dense A of any real dtype: a uint8 A by a compiled loop that reads
    it once (``_products``), other dtypes converted a column block at a time."""
    if A.dtype == np.float64:
        return A.T @ U
    if A.dtype == np.uint8 and U.ndim <= 2:
        out = rmatmul_uint8(A, U)
        if out is not None:
            return out
    out = np.empty((A.shape[1],) + U.shape[1:])
    step = chunk_columns(A.shape[0])
    for a in range(0, A.shape[1], step):
        out[a : a + step] = A[:, a : a + step].T.astype(np.float64) @ U
    return out


class DesignMatrix:
    """The matrix D (dense of any real dtype, or scipy sparse), checked: real and finite, 2-D,
    not empty. Complex, object and string data are refused (TypeError), never cast."""

    def __init__(self, D, name: str = "D") -> None:
        if hasattr(D, "matrix") and not sp.issparse(D):  # a SpikeDictionary or similar wrapper
            D = D.matrix
        if sp.issparse(D):
            check_real_array(name, D.data)
            D = sp.csc_matrix(D)
            self.sparse = True
        else:
            check_real_array(name, D)
            D = np.asarray(D)
            if D.dtype == bool:
                D = D.view(np.uint8)
            self.sparse = False
        if D.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {D.shape}")
        if D.shape[0] == 0 or D.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {D.shape})")
        self.D = D
        self.n, self.p = D.shape
        self.chunk = chunk_columns(self.n)

    @cached_property
    def column_norms(self) -> np.ndarray:
        """Euclidean norms of the columns, float64 (p,), computed once."""
        return np.sqrt(self.column_sq_norms)

    @cached_property
    def column_sq_norms(self) -> np.ndarray:
        """Squared Euclidean norms of the columns, float64 (p,), computed once, chunk by chunk."""
        if self.sparse:
            return np.asarray(self.D.multiply(self.D).sum(axis=0)).ravel().astype(np.float64)
        if self.D.dtype == np.uint8:
            out = column_sq_norms_uint8(self.D)
            if out is not None:
                return out
        out = np.empty(self.p)
        for a in range(0, self.p, self.chunk):
            block = self.D[:, a : a + self.chunk].astype(np.float64)
            out[a : a + self.chunk] = np.einsum("ij,ij->j", block, block)
        return out

    def columns(self, idx: np.ndarray, compact: bool = False) -> np.ndarray:
        """Columns idx as a Fortran-ordered array (n, len(idx)): float64, or with ``compact`` a
        dense uint8 D stays uint8 (8x less memory; ``matmul`` / ``rmatmul`` and the solver's
        kernels take it as it is)."""
        block = self.D[:, idx]
        block = block.toarray() if self.sparse else block
        keep = compact and block.dtype == np.uint8
        return np.asfortranarray(block, dtype=np.uint8 if keep else np.float64)

    def rmatmul(self, G: np.ndarray) -> np.ndarray:
        """D^T G for G (n, C), as float64 (p, C)."""
        if self.sparse:
            return np.asarray(self.D.T @ G, dtype=np.float64)
        return rmatmul(self.D, G)

    def matmul(self, W: np.ndarray) -> np.ndarray:
        """D W for W (p, C), using only the rows of W that are not all zero."""
        support = np.flatnonzero(np.any(W != 0, axis=1))
        if len(support) == 0:
            return np.zeros((self.n, W.shape[1]))
        out = np.zeros((self.n, W.shape[1]))
        for a in range(0, len(support), self.chunk):
            idx = support[a : a + self.chunk]
            out += self.columns(idx) @ W[idx]
        return out
