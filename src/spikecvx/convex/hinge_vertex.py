"""The optimal vertex of hinge + L1, identified by an interior point method instead of pivoted to.

For one output over distinct rows (weights s summing to 1, labels y, A = y * X), the LP

    min_w  sum_i s_i max(0, 1 - A_i w) + reg * ||w||_1

has a vertex solution fixed by its support S (with signs) and its margin rows M (A_i w = 1);
given S and M it is two dense solves with one LU factorisation: the margin equations
A_MS w_S = 1 and the support equations A_MS^T (s alpha)_M = reg sign(w_S) - A_LS^T s_L (L: the
rows inside the margin, alpha = 1). On dense columns an LP solver's cost is finding S and M
(thousands of simplex pivots, or a crossover after its interior point method).

``identify_ipm`` finds them with a dense primal-dual interior point method (Mehrotra's
predictor-corrector, one Cholesky factorisation of a normal matrix per iteration, float64 BLAS):
once its gap is small each iterate names a candidate pattern (a coefficient is in S when its
value exceeds its dual slack; a row is in M when both its slacks are below their duals), the
vertex of that pattern is built (``vertex``) and its duality gap is computed over every row and
column in float64 with the certificate's formula. The first vertex whose gap is at most
``accept`` is returned, so the method never needs to converge to full accuracy, and a wrong
pattern costs one more iteration, never a wrong answer. ``hinge_fast`` falls back to its LP when
no vertex certifies, and hands the identified basis to the LP for the next value of a path.
Measurements: docs/design/hinge.md.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from .matrix import DesignMatrix

ATTEMPT_GAP = 1e-3  # relative gap of the interior point iterate below which vertices are tried
CLOSE_GAP, CLOSE_ITERATIONS = 1e-4, 3  # iterations after a vertex within CLOSE_GAP before giving up
REFINE = 4  # iterative refinement steps per Newton system
SOLVE_TOL = 1e-8  # relative residual a Newton system's solution must reach
DROP = 1e-10  # row-space normal matrices leave out the columns with thw below this (relative)


@dataclass
class Identified:
    """Outcome of ``identify_ipm``: the vertex (w, alpha), its relative gap over the distinct rows
    and its pattern (S, sign, M, L): certified when ``ok``, else the best one tried (pattern None
    if none was); the work done either way."""

    w: np.ndarray
    alpha: np.ndarray
    ok: bool
    rel_gap: float = np.inf
    iterations: int = 0
    attempts: int = 0
    pattern: tuple | None = None


def _cholesky(K):
    """Cholesky factor of a symmetric positive semi-definite K, with the smallest diagonal shift
    (relative 1e-14, 1e-12, ...) that lets it through: the normal matrices of an interior point
    method lose rank near the optimum."""
    shift = 1e-14 * float(np.abs(np.diag(K)).max())
    for _ in range(6):
        try:
            return sla.cho_factor(K, check_finite=False)
        except np.linalg.LinAlgError:
            K[np.diag_indices_from(K)] += shift
            shift *= 100
    raise np.linalg.LinAlgError("normal matrix not positive definite")


def _gap(A, s, reg, S, w_S, alpha) -> float:
    """Relative duality gap of (w, alpha) for one output over the distinct rows, A = y * X (the
    certificate's formula: alpha scaled into the dual constraint)."""
    m = A[:, S] @ w_S
    primal = float(s @ np.maximum(0.0, 1.0 - m)) + reg * float(np.abs(w_S).sum())
    top = float(np.abs(A.T @ (s * alpha)).max())
    scale = min(1.0, reg / top) if top > 0 else 1.0
    dual = scale * float(s @ alpha)
    return (primal - dual) / max(1.0, abs(primal))


def vertex(A, s, reg, S, sign, M, L, alpha0: np.ndarray | None = None):
    """The vertex of support S (signs ``sign``) and margin rows M, L the rows with alpha = 1
    (A = y * X over the distinct rows, weights s): (w_S, alpha) from the margin equations
    A_MS w_S = 1 and the support equations A_MS^T (s alpha)_M = reg sign - A_LS^T s_L, by one LU
    factorisation when A_MS is square and regular. Otherwise (a degenerate vertex: rows equal on
    S, duplicate columns) w_S is the least-squares solution and alpha_M the estimate ``alpha0``
    plus the smallest correction that meets the support equations. Returns (w_S, alpha, whether
    the degenerate branch ran), or None when the equations give non-finite values."""
    A_MS = A[np.ix_(M, S)]
    rhs = reg * sign - A[np.ix_(L, S)].T @ s[L]
    w_S = v = None
    degenerate = len(M) != len(S)
    if not degenerate:
        with warnings.catch_warnings():  # a singular A_MS gives non-finite values
            warnings.simplefilter("ignore", sla.LinAlgWarning)
            lu = sla.lu_factor(A_MS, check_finite=False)
            w_S = sla.lu_solve(lu, np.ones(len(M)), check_finite=False)
            v = sla.lu_solve(lu, rhs, trans=1, check_finite=False)
    if w_S is None or not (np.isfinite(w_S).all() and np.isfinite(v).all()):
        degenerate = True
        w_S = sla.lstsq(A_MS, np.ones(len(M)), lapack_driver="gelsy", check_finite=False)[0]
        v0 = np.zeros(len(M)) if alpha0 is None else s[M] * alpha0[M]
        v = v0 + sla.lstsq(A_MS.T, rhs - A_MS.T @ v0, lapack_driver="gelsy", check_finite=False)[0]
    if not (np.isfinite(w_S).all() and np.isfinite(v).all()):
        return None
    alpha = np.zeros(len(s))
    alpha[L] = 1.0
    alpha[M] = np.clip(v / s[M], 0.0, 1.0)
    return w_S, alpha, degenerate


def _syrk(B: np.ndarray, rows: bool) -> np.ndarray:
    """B B^T (rows) or B^T B in B's precision, upper triangle filled (what the Cholesky
    factorisation reads)."""
    from scipy.linalg.blas import dsyrk, ssyrk

    Bt = np.ascontiguousarray(B).T  # Fortran order, no copy
    return (ssyrk if B.dtype == np.float32 else dsyrk)(1.0, Bt, trans=1 if rows else 0)


class _NormalSystem:
    """(A diag(thw) A^T + diag(dn)) dl = r, the Newton system of one interior point iteration.

    Factorised at one of three levels, each solution iteratively refined against the exact
    float64 operator, the next level taken when refinement misses ``SOLVE_TOL``: (0) single
    precision, in the coefficient space diag(1 / thw) + A^T diag(1 / dn) A (p x p) when A has
    fewer columns than rows, else in the row space leaving out the columns whose thw is below
    ``DROP`` of the largest; (1) the same in double precision; (2) the row space with every
    column in double precision. The coefficient-space solution divides by dn, which tends to 0
    on the margin rows, and both precision and dropped columns lose accuracy as the iterates
    approach the optimum: the levels rise then."""

    def __init__(self, A: np.ndarray, thw: np.ndarray, dn: np.ndarray, level: int) -> None:
        self.A, self.thw, self.dn = A, thw, dn
        self.factor(level)

    def factor(self, level: int) -> None:
        A, n, p = self.A, *self.A.shape
        self.level = level
        self.rows = n <= p or level == 2
        dtype = np.float32 if level == 0 else np.float64
        if self.rows:
            keep = np.flatnonzero(self.thw >= DROP * self.thw.max()) if level < 2 else np.arange(p)
            K = _syrk((A[:, keep] * np.sqrt(self.thw[keep])).astype(dtype, copy=False), rows=True)
            K[np.diag_indices(n)] += self.dn
        else:
            K = _syrk((A * (1.0 / np.sqrt(self.dn))[:, None]).astype(dtype, copy=False), rows=False)
            K[np.diag_indices(p)] += 1.0 / self.thw
        self.cf = _cholesky(K)

    def _chol_solve(self, r):
        x = sla.cho_solve(self.cf, r.astype(self.cf[0].dtype, copy=False), check_finite=False)
        return x.astype(np.float64)

    def _solve_once(self, r):
        if self.rows:
            return self._chol_solve(r)
        v = self._chol_solve(self.A.T @ (r / self.dn))
        return (r - self.A @ v) / self.dn

    def _residual(self, r, x):
        return r - self.A @ (self.thw * (self.A.T @ x)) - self.dn * x

    def solve(self, r: np.ndarray) -> np.ndarray:
        tol = SOLVE_TOL * max(1.0, float(np.abs(r).max()))
        x = self._solve_once(r)
        res = self._residual(r, x)
        for _ in range(REFINE):
            if np.abs(res).max() <= tol:
                break
            cand = x + self._solve_once(res)
            res_c = self._residual(r, cand)
            if np.abs(res_c).max() >= np.abs(res).max():
                break
            x, res = cand, res_c
        if self.level < 2 and np.abs(res).max() > tol:
            self.factor(self.level + 1)
            return self.solve(r)
        return x


def _step(vs, dvs) -> float:
    """Largest step in [0, 1] keeping every v + t dv non-negative."""
    t = 1.0
    for v, dv in zip(vs, dvs):
        neg = dv < 0
        if neg.any():
            t = min(t, float((-v[neg] / dv[neg]).min()))
    return t


def _pattern(X, Z, lam, cn, mode: str = "shrink"):
    """Candidate (S, sign, M, L) of an interior point iterate: S the coefficients above their dual
    slack, M the rows whose two slacks are both below their duals. A vertex of a basis has
    |M| = |S|; mode "shrink" moves the surplus margin rows whose multiplier is nearest a bound to
    it, or drops the surplus support columns of smallest value against their dual slack; "grow"
    adds the columns (rows) nearest to entering instead; "raw" keeps the pattern as it is."""
    (wp, wm, xi, sg), (zp, zm, zxi, zsg) = X, Z
    ratio = np.maximum(wp / zp, wm / zm)  # > 1: in S
    margin = np.maximum(xi / zxi, sg / zsg)  # < 1: in M
    S = np.flatnonzero(ratio > 1)
    M = np.flatnonzero(margin < 1)
    L = np.flatnonzero(xi >= zxi)
    extra = len(M) - len(S)
    if mode == "shrink" and extra > 0:
        a = lam[M] / cn[M]
        order = np.argsort(np.minimum(a, 1.0 - a))
        drop = M[order[:extra]]
        L = np.sort(np.concatenate([L, drop[lam[drop] / cn[drop] > 0.5]]))
        M = np.sort(M[order[extra:]])
    elif mode == "shrink" and extra < 0:
        S = np.sort(S[np.argsort(-ratio[S])[: len(M)]])
    elif mode == "grow" and extra > 0:
        out = np.flatnonzero(ratio <= 1)
        S = np.sort(np.concatenate([S, out[np.argsort(-ratio[out])[:extra]]]))
    elif mode == "grow" and extra < 0:
        out = np.flatnonzero(margin >= 1)
        add = out[np.argsort(margin[out])[:-extra]]
        M = np.sort(np.concatenate([M, add]))
        L = np.setdiff1d(L, add)
    return S, np.sign(wp[S] - wm[S]), M, L


def identify_ipm(Du: DesignMatrix, y: np.ndarray, s: np.ndarray, reg: float, accept: float,
                 max_iter: int = 40) -> Identified:
    """``_identify`` on the rows of positive weight (rows of weight 0 change nothing; their alpha
    is 0 and they are in no pattern)."""
    rows = np.flatnonzero(s > 0)
    if len(rows) == len(s):
        return _identify(Du, y, s, reg, accept, max_iter)
    out = _identify(DesignMatrix(Du.D[rows]), y[rows], s[rows], reg, accept, max_iter)
    alpha = np.zeros(len(s))
    alpha[rows] = out.alpha
    out.alpha = alpha
    if out.pattern is not None:
        S, sign, M, L = out.pattern
        out.pattern = (S, sign, rows[M], rows[L])
    return out


def _identify(Du: DesignMatrix, y: np.ndarray, s: np.ndarray, reg: float, accept: float,
              max_iter: int) -> Identified:
    """The vertex of hinge + L1 for one output (distinct rows Du, labels y, weights s summing to
    1), by a dense primal-dual interior point method on

        min  s^T xi + reg 1^T (wp + wm)   s.t.  A (wp - wm) + xi - sg = 1,   wp, wm, xi, sg >= 0

    (A = y * Du, scaled by n) whose row multipliers are lam = n s alpha. Once the iterate's
    relative gap is below ``ATTEMPT_GAP``, each new candidate pattern's vertex is built and
    certified; returns the first with relative gap <= ``accept`` (``ok``), or ``ok`` False (with
    the best vertex tried) after ``max_iter`` iterations, ``CLOSE_ITERATIONS`` iterations after a
    vertex within ``CLOSE_GAP``, or when the Newton systems fail."""
    n, p = len(y), Du.p
    A0 = y[:, None] * Du.columns(np.arange(p))  # Fortran order, as the column block comes
    k = float(n)  # objective scaled so that s is about 1
    cw, cn = reg * k, s * k
    X = [np.ones(p), np.ones(p), np.ones(n), np.ones(n)]  # wp, wm, xi, sg
    Z = [np.full(p, cw), np.full(p, cw), cn.copy(), np.ones(n)]  # their dual slacks
    lam = np.zeros(n)
    out = Identified(np.zeros(p), np.zeros(n), False)
    tried: set = set()
    best_res, level, close = np.inf, 0, 0
    for it in range(max_iter):
        out.iterations = it + 1
        wp, wm, xi, sg = X
        u = A0.T @ lam
        rp = 1.0 - A0 @ (wp - wm) - xi + sg
        rd = [cw - u - Z[0], cw + u - Z[1], cn - lam - Z[2], lam - Z[3]]
        mu = sum(float(x @ z) for x, z in zip(X, Z)) / (2 * p + 2 * n)
        pobj = cw * float(wp.sum() + wm.sum()) + float(cn @ xi)
        dobj = float(lam.sum())
        res = float(np.abs(rp).max())
        best_res = min(best_res, res)
        if res > max(1e3 * best_res, 1e-3):  # the Newton systems have lost their accuracy
            break
        if out.rel_gap <= CLOSE_GAP:  # near the vertex: exact Newton systems from here on
            level = 2
            close += 1
            if close > CLOSE_ITERATIONS:  # near but not at the vertex: the LP repairs the best one
                break
        if abs(pobj - dobj) <= ATTEMPT_GAP * max(1.0, abs(pobj)):
            for mode in ("shrink", "grow", "raw"):  # square patterns first
                S, sign, M, L = pattern = _pattern(X, Z, lam, cn, mode)
                key = (S.tobytes(), M.tobytes())
                if not len(S) or key in tried:
                    continue
                tried.add(key)
                try:
                    v = vertex(A0, s, reg, S, sign, M, L, lam / cn)
                except np.linalg.LinAlgError:  # a failed factorisation: the pattern is not a vertex
                    v = None
                if v is None:
                    continue
                out.attempts += 1
                gap = _gap(A0, s, reg, S, v[0], v[1])
                if gap < out.rel_gap:  # the best pattern so far: a basis for the LP if none certifies
                    out.rel_gap = gap
                    out.w = np.zeros(p)
                    out.w[S] = v[0]
                    out.alpha, out.pattern = v[1], pattern
                if gap <= accept:
                    out.ok = True
                    return out
        th = [x / z for x, z in zip(X, Z)]
        thw, dn = th[0] + th[1], th[2] + th[3]
        try:
            system = _NormalSystem(A0, thw, dn, level)
        except np.linalg.LinAlgError:
            break

        def direction(rc, th=th, rd=rd, system=system, rp=rp, X=X, Z=Z):
            h = [t * (c / x - d) for t, c, x, d in zip(th, rc, X, rd)]
            dl = system.solve(rp - (h[2] - h[3]) - A0 @ (h[0] - h[1]))
            du = A0.T @ dl
            dx = [th[0] * du + h[0], -th[1] * du + h[1], th[2] * dl + h[2], -th[3] * dl + h[3]]
            dz = [(c - z * d) / x for c, z, d, x in zip(rc, Z, dx, X)]
            return dx, dl, dz

        try:  # a factorisation that fails at a higher precision level ends the identifier (LP fallback)
            dx, dl, dz = direction([-x * z for x, z in zip(X, Z)])  # affine predictor
            ap, ad = _step(X, dx), _step(Z, dz)
            mu_aff = sum(float((x + ap * a) @ (z + ad * b))
                         for x, a, z, b in zip(X, dx, Z, dz)) / (2 * p + 2 * n)
            sig = (mu_aff / mu) ** 3
            dx, dl, dz = direction([sig * mu - x * z - a * b for x, z, a, b in zip(X, Z, dx, dz)])
        except np.linalg.LinAlgError:
            break
        ap, ad = 0.995 * _step(X, dx), 0.995 * _step(Z, dz)
        X = [x + ap * a for x, a in zip(X, dx)]
        Z = [z + ad * b for z, b in zip(Z, dz)]
        lam = lam + ad * dl
        level = max(level, system.level)
    return out
