"""Compiled products with a dense uint8 matrix (spike dictionaries), read once in its own dtype.

The float64 route of ``matrix.rmatmul`` converts D a column block at a time and multiplies with
BLAS: the conversion writes 8 bytes for every byte of D, so on a large dictionary it costs several
times the product. These loops read each byte of D once and accumulate in float64 (the results
match BLAS up to rounding: only the order of the sums differs). ``row_hashes`` gives ``weights``
the integer row keys that find repeated rows, in exact (wrapping) int64 arithmetic, so identical
rows always get identical keys. Both memory orders are handled: a C-ordered D is read row by row,
a Fortran-ordered one (its transpose C-ordered) column by column.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _accumulate_rows(M, coef, out):  # pragma: no cover - compiled
    """out (K, m) += coef^T M for M (r, m) uint8 C-ordered and coef (r, K): each row of M
    scaled into each row of out (a float64 or a wrapping int64 out)."""
    for r in range(M.shape[0]):
        row = M[r]
        for k in range(coef.shape[1]):
            c = coef[r, k]
            if c != 0:
                o = out[k]
                for j in range(row.shape[0]):
                    o[j] += c * row[j]


@njit(cache=True, fastmath={"reassoc", "contract"})  # reassociation lets the float sums vectorise
def _row_dots(M, V, out):  # pragma: no cover - compiled
    """out (r, K) = M V^T for M (r, m) uint8 C-ordered and V (K, m) C-ordered, out float64 or
    (wrapping) int64 and zero on entry."""
    for r in range(M.shape[0]):
        row = M[r]
        for k in range(V.shape[0]):
            v = V[k]
            s = out[r, k]
            for j in range(row.shape[0]):
                s += row[j] * v[j]
            out[r, k] = s


@njit(cache=True)
def _sq_rows(D):  # pragma: no cover - compiled
    """Column sums of squares (p,) of a C-ordered D (n, p) uint8, in int64."""
    n, p = D.shape
    out = np.zeros(p, dtype=np.int64)
    for i in range(n):
        row = D[i]
        for j in range(p):
            out[j] += row[j] * row[j]
    return out


@njit(cache=True)
def _sq_cols(DT):  # pragma: no cover - compiled
    """The same for DT = D^T (p, n) uint8 C-ordered."""
    p, n = DT.shape
    out = np.zeros(p, dtype=np.int64)
    for j in range(p):
        col = DT[j]
        s = np.int64(0)
        for i in range(n):
            s += col[i] * col[i]
        out[j] = s
    return out


def _layout(D: np.ndarray):
    """('rows', D) for a C-contiguous D, ('cols', D^T) for a Fortran-contiguous one, else None."""
    if D.flags.c_contiguous:
        return "rows", D
    if D.flags.f_contiguous:
        return "cols", D.T
    return None


def rmatmul_uint8(D: np.ndarray, U: np.ndarray) -> np.ndarray | None:
    """D^T U in float64, (p,) or (p, C), for a contiguous uint8 D (n, p) and U (n,) or (n, C);
    None when D is not contiguous (the caller's route then applies)."""
    U = np.asarray(U, dtype=np.float64)
    if U.shape[0] != D.shape[0]:
        raise ValueError(f"U must have D's {D.shape[0]} rows, got shape {U.shape}")
    how = _layout(D)
    if how is None:
        return None
    U2 = U if U.ndim == 2 else U[:, None]
    n, p = D.shape
    if how[0] == "rows":  # D's rows scaled by U's and summed: (C, p)
        out = np.zeros((U2.shape[1], p))
        _accumulate_rows(how[1], np.ascontiguousarray(U2), out)
        out = out.T
    else:  # D's columns dotted with U's: (p, C)
        out = np.zeros((p, U2.shape[1]))
        _row_dots(how[1], np.ascontiguousarray(U2.T), out)
    return np.ascontiguousarray(out).reshape((p,) + U.shape[1:])


def column_sq_norms_uint8(D: np.ndarray) -> np.ndarray | None:
    """Squared column norms (p,) float64 of a contiguous uint8 D (exact); None when D is not
    contiguous."""
    how = _layout(D)
    if how is None:
        return None
    return (_sq_rows if how[0] == "rows" else _sq_cols)(how[1]).astype(np.float64)


def row_hashes(D: np.ndarray, R: np.ndarray) -> np.ndarray | None:
    """Integer row keys D R (n, K) in wrapping int64 for a contiguous uint8 D and integer R
    (p, K); None when D is not contiguous."""
    R = np.ascontiguousarray(R, dtype=np.int64)
    if R.ndim != 2 or R.shape[0] != D.shape[1]:
        raise ValueError(f"R must be 2-D with D's {D.shape[1]} columns as rows, got shape {R.shape}")
    how = _layout(D)
    if how is None:
        return None
    n, K = D.shape[0], R.shape[1]
    if how[0] == "rows":  # D's rows dotted with R's columns
        out = np.zeros((n, K), dtype=np.int64)
        _row_dots(how[1], np.ascontiguousarray(R.T), out)
        return out
    out = np.zeros((K, n), dtype=np.int64)  # D's columns scaled by R's rows and summed
    _accumulate_rows(how[1], R, out)
    return np.ascontiguousarray(out.T)
