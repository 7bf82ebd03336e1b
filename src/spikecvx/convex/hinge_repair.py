"""A near-optimal vertex of hinge + L1 repaired to the optimal one by a small dense primal simplex.

For one output over distinct rows (weights s summing to 1, A = y * X) the LP

    min  s^T xi + reg 1^T (wp + wm)   s.t.  A (wp - wm) + xi - sg = 1,   wp, wm, xi, sg >= 0

has bases fixed by a support S and margin rows M with |S| = |M| and B = A_MS regular: w_S =
B^-1 1, every other row's slack (xi when its margin is below 1, sg above) is basic, and each
basic coefficient's sign picks wp or wm. Any such pattern is therefore a *primal feasible* basis,
whatever its quality, and the primal simplex can start from it directly: the dual values are
lam_L = s_L on the rows inside the margin, 0 outside, and B^T lam_M = reg sign(w_S) - A_LS^T s_L;
a column off S with |A_j^T lam| > reg, or a margin row with lam_i outside [0, s_i], enters.

``repair`` keeps an explicit inverse of B (|S| ~ 500 on the dense benchmark), updates it per
pivot by a rank-one formula (a column or row replaced, or B bordered / deflated by one row and
column when a row enters or leaves the margin set), prices every column with one A^T lam
product, runs a two-pass (Harris) ratio test over the support and the rows off the margin, and
switches to Bland's rule (smallest index entering, exact minimum ratio leaving) after a run of
degenerate pivots, those whose objective drop is rounding noise (duplicate rows of opposite
labels make steps of 1e-15..1e-13 that are no progress). It stops with the optimal vertex,
certified in float64 over every row and column with the certificate's formula, or gives up
(``ok`` False) at its pivot budget, at a pivot element too small to trust, or on a singular
start, so that the caller's LP fallback decides; correctness never rests on the repair.
Measurements: docs/design/hinge.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

PIVOT_TOL = 1e-9  # a pivot element below this (relative to its column) is refused: give up
FEAS_TOL = 1e-9  # primal feasibility tolerance of the ratio test (Harris's first pass)
PRICE_TOL = 1e-11  # relative dual infeasibility below which a candidate does not enter
REFACTOR = 40  # pivots between accuracy checks of B's inverse (the margin rows' residuals)
DRIFT = 1e-10  # largest margin-row residual |A_M w - 1| before B is inverted anew
BLAND_AFTER = 30  # consecutive degenerate pivots before Bland's rule takes over
DEGENERATE_REL = 1e-12  # a pivot dropping the objective by at most this (relative) is degenerate
TIE_TOL = 1e-12  # ratios within this of the minimum tie in Bland's ratio test


@dataclass
class Repaired:
    """Outcome of ``repair``: the vertex (w, alpha) and its pattern (S, sign, M, L), its relative
    gap over the rows given, the pivots done and why it stopped ("optimal", "budget", "unsafe",
    "singular")."""

    w: np.ndarray
    alpha: np.ndarray
    ok: bool
    rel_gap: float
    pivots: int
    reason: str
    pattern: tuple | None = None


def _regular(A, S, M):
    """A regular square sub-block of A_MS: columns chosen by a rank-revealing QR of A_MS, then rows
    by one of its transpose restricted to them (duplicate columns, rows equal on S and
    surplus rows or columns are left out)."""
    if not len(S) or not len(M):
        return S[:0], M[:0], np.zeros((0, 0))
    B = A[np.ix_(M, S)]
    if len(S) == len(M):
        with np.errstate(all="ignore"):
            try:
                inv = np.linalg.inv(B)
                if np.isfinite(inv).all() and np.abs(B @ inv - np.eye(len(S))).max() < 1e-9:
                    return S, M, inv
            except np.linalg.LinAlgError:
                pass
    _, R, cp = sla.qr(B, mode="economic", pivoting=True, check_finite=False)
    d = np.abs(np.diag(R))
    r = int(np.count_nonzero(d > 1e-9 * d[0])) if d[0] > 0 else 0
    S = S[cp[:r]]
    _, R, rp = sla.qr(A[np.ix_(M, S)].T, mode="economic", pivoting=True, check_finite=False)
    M = M[rp[:r]]
    S, M = np.sort(S), np.sort(M)
    return S, M, np.linalg.inv(A[np.ix_(M, S)]) if r else np.zeros((0, 0))


def _gap(A, s, reg, w, alpha) -> float:
    """Relative duality gap of (w, alpha) with the certificate's formula."""
    primal = float(s @ np.maximum(0.0, 1.0 - A @ w)) + reg * float(np.abs(w).sum())
    top = float(np.abs(A.T @ (s * alpha)).max())
    scale = min(1.0, reg / top) if top > 0 else 1.0
    return (primal - scale * float(s @ alpha)) / max(1.0, abs(primal))


def repair(A: np.ndarray, s: np.ndarray, reg: float, S, M, accept: float,
           max_pivots: int = 500) -> Repaired:
    """The optimal vertex of hinge + L1 by the primal simplex from the basis of pattern (S, M).

    A: (n, p) float64, y * X over the distinct rows; s: their weights (positive, summing to 1);
    S, M: column and row indices of the starting pattern (made square and regular first). Returns
    ``ok`` True when the simplex reached optimality and the vertex's relative gap is at most
    ``accept``."""
    n, p = A.shape
    try:
        S, M, Binv = _regular(A, np.asarray(S, dtype=np.int64), np.asarray(M, dtype=np.int64))
    except np.linalg.LinAlgError:  # no regular block found: the caller's LP decides
        return Repaired(np.zeros(p), np.zeros(n), False, np.inf, 0, "singular")
    S, M = list(S), list(M)
    inM = np.zeros(n, dtype=bool)
    inM[M] = True
    w = np.zeros(p)
    if len(S):
        w[S] = Binv @ np.ones(len(S))
    m = A @ w
    inside = m < 1.0  # side of the rows off M: alpha = 1 (xi basic) or alpha = 0 (sg basic)
    sign = np.where(w[S] < 0, -1.0, 1.0)
    lamL = np.where(inside & ~inM, s, 0.0)
    gL = A.T @ lamL  # A^T lam over the rows at alpha = 1, updated as rows change side
    pivots, since, degenerate = 0, 0, 0
    reason = "budget"
    while pivots <= max_pivots:
        k = len(S)
        Sa, Ma = np.asarray(S, dtype=np.int64), np.asarray(M, dtype=np.int64)
        lamM = Binv.T @ (reg * sign - gL[Sa]) if k else np.zeros(0)
        lam = lamL.copy()
        lam[Ma] = lamM
        g = A.T @ lam if k else gL.copy()
        # pricing: relative dual infeasibilities of the columns off S and of the margin rows
        col = np.abs(g) / reg - 1.0
        col[Sa] = -np.inf
        sM = s[Ma]
        row = np.maximum(lamM / sM - 1.0, -lamM / sM) if k else np.zeros(0)
        bland = degenerate >= BLAND_AFTER
        cand_c = np.flatnonzero(col > PRICE_TOL)
        cand_r = np.flatnonzero(row > PRICE_TOL)
        if not len(cand_c) and not len(cand_r):
            reason = "optimal"
            break
        if pivots == max_pivots:
            break
        if bland:  # smallest index first (columns, then rows)
            enter_col = len(cand_c) > 0
            e = int(cand_c[0]) if enter_col else int(cand_r[np.argmin(Ma[cand_r])])
        else:
            bc = int(cand_c[np.argmax(col[cand_c])]) if len(cand_c) else -1
            br = int(cand_r[np.argmax(row[cand_r])]) if len(cand_r) else -1
            enter_col = br < 0 or (bc >= 0 and col[bc] >= row[br])
            e = bc if enter_col else br
        # direction of w (dw) and of the margins (dm) per unit of the entering variable
        dw = np.zeros(p)
        if enter_col:
            t_sign = 1.0 if g[e] > 0 else -1.0
            if k:
                dw[Sa] = -t_sign * (Binv @ A[Ma, e])
            dw[e] = t_sign
        else:
            t_sign = -1.0 if lamM[e] > sM[e] else 1.0  # xi enters (margin falls) or sg (rises)
            dw[Sa] = t_sign * Binv[:, e]
        dm = A @ dw
        # ratio test over the basic coefficients and the basic slacks of the rows off M
        vals = np.concatenate([sign * w[Sa], np.where(inside, 1.0 - m, m - 1.0)])
        rates = np.concatenate([sign * dw[Sa], np.where(inside, -dm, dm)])
        rates[k + Ma] = 0.0  # the margin rows' slacks are non-basic
        vals = np.maximum(vals, 0.0)
        scale_r = max(1.0, float(np.abs(rates).max()))
        block = np.flatnonzero(rates < -1e-12 * scale_r)
        if not len(block):
            reason = "unsafe"  # unbounded: impossible for this LP, so numerically lost
            break
        ratio = vals[block] / -rates[block]
        if bland:  # exact minimum ratio, ties broken by the smallest index
            t_min = float(ratio.min())
            near = block[ratio <= t_min + TIE_TOL * max(1.0, t_min)]
            keys = np.where(near < k, Sa[np.minimum(near, k - 1)] if k else 0, p + near - k)
            leave = int(near[np.argmin(keys)])
        else:  # Harris: the largest rate among the rows within FEAS_TOL of blocking first
            t_max = float(((vals[block] + FEAS_TOL) / -rates[block]).min())
            near = block[ratio <= t_max]
            leave = int(near[np.argmax(-rates[near])])
        t = max(0.0, float(vals[leave] / -rates[leave]))
        # degenerate: the objective drop is rounding noise next to the objective itself
        drop = t * (reg * col[e] if enter_col else sM[e] * row[e])
        objective = float(s @ np.maximum(0.0, 1.0 - m)) + reg * float(np.abs(w).sum())
        degenerate = degenerate + 1 if drop <= DEGENERATE_REL * objective else 0
        # the basis change, with its inverse updated
        try:
            if enter_col and leave < k:  # column e replaces S[leave]
                d = Binv @ A[Ma, e]
                Binv = _replace_column(Binv, d, leave)
                S[leave] = e
                sign[leave] = t_sign
            elif enter_col:  # row i joins M, column e joins S
                i = leave - k
                Binv = _border(Binv, A[i, Sa], A[Ma, e], A[i, e])
                S.append(e)
                M.append(i)
                sign = np.append(sign, t_sign)
                inM[i] = True
            elif leave < k:  # margin row M[e] leaves M, column S[leave] leaves S
                i = M[e]
                Binv = _deflate(Binv, leave, e)
                del S[leave], M[e]
                sign = np.delete(sign, leave)
                inM[i] = False
                inside[i] = t_sign < 0
            else:  # row i replaces margin row M[e]
                i, out = leave - k, M[e]
                Binv = _replace_row(Binv, A[i, Sa], e)
                M[e] = i
                inM[i], inM[out] = True, False
                inside[out] = t_sign < 0
        except FloatingPointError:
            reason = "unsafe"
            break
        pivots += 1
        since += 1
        Sa, Ma = np.asarray(S, dtype=np.int64), np.asarray(M, dtype=np.int64)
        fresh = since >= REFACTOR
        if fresh:  # every REFACTOR pivots: margins afresh, and B inverted anew if they drifted
            since = 0
            w = np.zeros(p)
            w[Sa] = Binv @ np.ones(len(S))
            m = A @ w
            if len(S) and np.abs(m[Ma] - 1.0).max() > DRIFT:
                try:
                    Binv = np.linalg.inv(A[np.ix_(Ma, Sa)])
                except np.linalg.LinAlgError:
                    reason = "unsafe"
                    break
        w = np.zeros(p)
        if len(S):
            w[Sa] = Binv @ np.ones(len(S))
        if np.any(sign * w[Sa] < -1e-7 * max(1.0, float(np.abs(w).max()))):
            reason = "unsafe"  # the basis lost primal feasibility: rounding took over
            break
        m = A @ w if fresh else m + t * dm
        new = np.where(inside & ~inM, s, 0.0)
        changed = np.flatnonzero(new != lamL)
        if fresh:
            gL = A.T @ new
        elif len(changed):
            gL += A[changed].T @ (new[changed] - lamL[changed])
        lamL = new
    Sa, Ma = np.asarray(S, dtype=np.int64), np.asarray(M, dtype=np.int64)
    alpha = np.where(inside & ~inM, 1.0, 0.0)
    if len(S):
        alpha[Ma] = np.clip(lam[Ma] / s[Ma], 0.0, 1.0) if reason == "optimal" else 0.0
    if reason != "optimal":
        return Repaired(w, alpha, False, np.inf, pivots, reason)
    w[Sa] = np.where(sign * w[Sa] < 0, 0.0, w[Sa])  # a degenerate zero on the wrong side by rounding
    gap = _gap(A, s, reg, w, alpha)
    L = np.flatnonzero(inside & ~inM)
    return Repaired(w, alpha, gap <= accept, gap, pivots, reason, (Sa, sign.copy(), Ma, L))


def _check(piv: float, ref: float) -> None:
    if not np.isfinite(piv) or abs(piv) <= PIVOT_TOL * max(1.0, ref):
        raise FloatingPointError("pivot element too small")


def _replace_column(Binv, d, q):
    """Inverse of B with column q replaced by c, given d = B^-1 c (rows of B^-1 follow S); in
    place."""
    _check(d[q], float(np.abs(d).max()))
    r = Binv[q] / d[q]
    Binv -= np.outer(d, r)
    Binv[q] = r
    return Binv


def _replace_row(Binv, a, r):
    """Inverse of B with row r replaced by a (columns of B^-1 follow M); in place."""
    h = a @ Binv
    _check(h[r], float(np.abs(h).max()))
    c = Binv[:, r] / h[r]
    Binv -= np.outer(c, h)
    Binv[:, r] = c
    return Binv


def _border(Binv, a, c, delta):
    """Inverse of [[B, c], [a^T, delta]] (B^-1 given)."""
    if not len(a):
        _check(delta, abs(delta))
        return np.array([[1.0 / delta]])
    u, v = Binv @ c, a @ Binv
    sigma = delta - float(a @ u)
    _check(sigma, max(abs(delta), float(np.abs(a).max()) * float(np.abs(u).max())))
    k = len(a)
    out = np.empty((k + 1, k + 1))
    out[:k, :k] = Binv + np.outer(u, v) / sigma
    out[:k, k] = -u / sigma
    out[k, :k] = -v / sigma
    out[k, k] = 1.0 / sigma
    return out


def _deflate(Binv, q, r):
    """Inverse of B with its column q and row r removed (B^-1's row q and column r)."""
    piv = Binv[q, r]
    _check(piv, float(np.abs(Binv[q]).max()))
    out = Binv - np.outer(Binv[:, r], Binv[q]) / piv
    return np.delete(np.delete(out, q, axis=0), r, axis=1)
