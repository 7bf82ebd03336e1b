"""The optimal vertex of hinge + L1, identified by a smoothed hinge instead of pivoted to.

For one output over distinct rows (weights s, labels y, A = y * X), the LP

    min_w  sum_i s_i max(0, 1 - A_i w) + reg * ||w||_1

has a vertex solution fixed by its support S (with signs) and its margin rows M (A_i w = 1);
given S and M it is two dense solves: the margin equations A_MS w_S = 1 and the support
equations A_MS^T (s alpha)_M = reg sign(w_S) - A_LS^T s_L (L: the rows inside the margin, alpha
= 1). Finding S and M is the whole cost of an LP solver on dense columns (thousands of pivots).

Here S and M come from the Huber-smoothed hinge h_d(t) = t^2 / (2 d) on 0 < t < d (t = 1 - A_i w),
t - d / 2 beyond, minimised with L1 by an active-set Newton method: on a sign pattern of w and a
zone pattern of the rows the objective is quadratic, the Newton step is one dense Cholesky of
A_QF^T diag(s_Q / d) A_QF (Q: the rows of the quadratic zone, F: the free coefficients), and an
exact line search along the step (the objective is piecewise quadratic in the step length) finds
the next pattern. Its alpha_i = clip(t_i / d, 0, 1) are the hinge multipliers of the smoothed
problem, and as d decreases its Q rows and support become M and S. Each d ends with an attempt at
the vertex; the vertex is accepted only if the certificate over every row and column (float64,
``hinge_fast.certificate``'s formula) is tight, otherwise the caller falls back to the LP, handed
the basis this identification suggests (``basis_hint``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

from .matrix import DesignMatrix

DELTAS_COLD = (0.5, 0.1, 1e-2, 1e-3, 1e-4, 1e-5)  # smoothing widths from a cold start
DELTAS_WARM = (1e-2, 1e-3, 1e-4, 1e-5)  # ... and from the previous value of a path
MAX_NEWTON = 60  # Newton steps per width
MAX_ENTER = 30  # most coefficients entering the free set per step
DEBUG = False
RIDGE = 1e-6
REFINE = 2  # iterative refinement steps per Newton system
ATTEMPT_GAP = 1e-3  # relative gap below which each new pattern's vertex is tried


@dataclass
class Identified:
    """Outcome of ``identify``: the vertex (w, alpha) and its certificate when found (``ok``),
    else the last smoothed point; counts of the work done."""

    w: np.ndarray
    alpha: np.ndarray
    ok: bool
    rel_gap: float = np.inf
    newton: int = 0
    products: int = 0
    widths: list = field(default_factory=list)
    pattern: tuple | None = None  # (S, sign, M, L) of the certified vertex


class _Columns:
    """Float64 columns of the distinct-row dictionary, cached as the free set grows."""

    def __init__(self, Du: DesignMatrix, y: np.ndarray) -> None:
        self.Du, self.y = Du, y
        self.idx = np.zeros(0, dtype=np.int64)
        self.A = np.zeros((len(y), 0))  # y * X[:, idx]
        self.pos: dict[int, int] = {}

    def get(self, js: np.ndarray) -> np.ndarray:
        new = [int(j) for j in js if int(j) not in self.pos]
        if new:
            block = self.y[:, None] * self.Du.columns(np.asarray(new))
            for k, j in enumerate(new):
                self.pos[j] = self.A.shape[1] + k
            self.A = np.hstack([self.A, block])
        return self.A[:, [self.pos[int(j)] for j in js]]


def _line_search(t, b, s, delta, lin, tmax):
    """argmin over tau in [0, tmax] of sum_i s_i h_d(t_i - tau b_i) + tau lin (convex, piecewise
    quadratic): the root of its derivative, bracketed between sorted breakpoints."""

    def slope(tau):
        return lin - float(s @ (b * np.clip((t - tau * b) / delta, 0.0, 1.0)))

    if slope(0.0) >= 0:
        return 0.0
    nz = b != 0
    bp = np.concatenate([t[nz] / b[nz], (t[nz] - delta) / b[nz]])
    bp = np.unique(bp[(bp > 0) & (bp < tmax)])
    bp = np.append(bp, tmax) if np.isfinite(tmax) else bp
    lo, hi = 0, len(bp) - 1  # find the first breakpoint with slope >= 0
    if hi < 0 or slope(bp[hi]) < 0:
        if np.isfinite(tmax):
            return tmax
        # beyond the last breakpoint the slope is constant: no finite minimiser unless it is >= 0
        a = bp[hi] if hi >= 0 else 0.0
        sa, sb = slope(a), slope(a + 1.0)
        return a + 1.0 if sb <= sa else a + (-sa) / (sb - sa)
    while lo < hi:
        mid = (lo + hi) // 2
        if slope(bp[mid]) >= 0:
            hi = mid
        else:
            lo = mid + 1
    right = bp[lo]
    left = bp[lo - 1] if lo > 0 else 0.0
    sl, sr = slope(left), slope(right)
    return right if sr == sl else left + (right - left) * (-sl) / (sr - sl)  # slope is linear between


def _smoothed(t, s, delta):
    """sum_i s_i h_d(t_i), the smoothed hinge."""
    return float(s @ np.where(t >= delta, t - delta / 2, np.where(t > 0, t * t / (2 * delta), 0.0)))


def _gap(Du, y, s, w_idx, w_val, alpha, reg, cols: _Columns):
    """Relative duality gap of (w, alpha) for one output over the distinct rows (the certificate's
    formula: alpha scaled into the dual constraint)."""
    m = cols.get(w_idx) @ w_val if len(w_idx) else np.zeros(len(y))
    primal = float(s @ np.maximum(0.0, 1.0 - m)) + reg * float(np.abs(w_val).sum())
    top = float(np.abs(Du.rmatmul((y * s * alpha)[:, None])[:, 0]).max())
    scale = min(1.0, reg / top) if top > 0 else 1.0
    dual = scale * float(s @ alpha)
    return (primal - dual) / max(1.0, abs(primal))


def vertex(Du, y, s, reg, S, sign, M, L, cols: _Columns):
    """The vertex of support S (signs ``sign``) and margin rows M, L the rows with alpha = 1:
    (w_S, alpha) from the margin and support equations (least squares when |M| != |S|)."""
    A_MS = cols.get(S)[M]
    rhs = reg * sign - cols.get(S)[L].T @ s[L]
    if len(M) == len(S):
        try:
            lu = sla.lu_factor(A_MS, check_finite=False)
            w_S = sla.lu_solve(lu, np.ones(len(M)), check_finite=False)
            v = sla.lu_solve(lu, rhs, trans=1, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return None
    else:
        w_S = np.linalg.lstsq(A_MS, np.ones(len(M)), rcond=None)[0]
        v = np.linalg.lstsq(A_MS.T, rhs, rcond=None)[0]
    if not (np.isfinite(w_S).all() and np.isfinite(v).all()):
        return None
    alpha = np.zeros(len(y))
    alpha[L] = 1.0
    alpha[M] = np.clip(v / s[M], 0.0, 1.0)
    return w_S, alpha


def identify(Du: DesignMatrix, y: np.ndarray, s: np.ndarray, reg: float, w0: np.ndarray | None,
             accept: float, deltas=None) -> Identified:
    """Smoothed-hinge active-set Newton for one output, decreasing width, a vertex attempt after
    each width; ``ok`` when a vertex certifies to rel. gap <= ``accept``. w0: a warm start (p,)."""
    p = Du.p
    cols = _Columns(Du, y)
    w = np.zeros(p) if w0 is None else np.asarray(w0, dtype=np.float64).copy()
    if deltas is None:
        deltas = DELTAS_COLD if w0 is None or not w0.any() else DELTAS_WARM
    out = Identified(w, np.zeros(len(y)), False)
    sy = s * y
    for delta in deltas:
        out.widths.append(delta)
        for _ in range(MAX_NEWTON):
            F = np.flatnonzero(w)
            m = cols.get(F) @ w[F] if len(F) else np.zeros(len(y))
            t = 1.0 - m
            alpha = np.clip(t / delta, 0.0, 1.0)
            g = Du.rmatmul((sy * alpha)[:, None])[:, 0]  # = -gradient of the smooth part
            out.products += 1
            viol = np.abs(g) - reg
            viol[F] = -np.inf
            enter = np.flatnonzero(viol > 1e-12 * reg)
            if len(enter) > MAX_ENTER:
                enter = enter[np.argpartition(-viol[enter], MAX_ENTER - 1)[:MAX_ENTER]]
            res_S = np.abs(g[F] - reg * np.sign(w[F])).max() if len(F) else 0.0
            if not len(enter) and res_S <= 1e-11 * reg:
                break
            free = np.concatenate([F, enter])
            sigma = np.concatenate([np.sign(w[F]), np.sign(g[enter])])
            A = cols.get(free)
            Q = np.flatnonzero((t > 0) & (t < delta))
            AQ = A[Q] * np.sqrt(s[Q] / delta)[:, None]
            H = AQ.T @ AQ
            grad = reg * sigma - g[free]
            mu = RIDGE * max(float(np.trace(H)) / len(free), 1e-300) + 1e-14
            H[np.diag_indices_from(H)] += mu
            try:
                d = -sla.cho_solve(sla.cho_factor(H, check_finite=False), grad, check_finite=False)
            except np.linalg.LinAlgError:
                d = -grad
            if grad @ d >= 0:
                d = -grad
            out.newton += 1
            wf = w[free]
            shrink = sigma * d < 0
            with np.errstate(divide="ignore", invalid="ignore"):
                hits = np.where(shrink & (wf != 0), -wf / d, np.inf)
            tmax = float(hits.min()) if len(hits) else np.inf
            b = A @ d
            lin = reg * float(sigma @ d)
            # the step to the minimum along d with the L1 term linear on this orthant, then the
            # coefficients that crossed zero projected onto it (kept if the objective decreases),
            # else the step to the first coefficient reaching zero
            tau = _line_search(t, b, s, delta, lin, np.inf)
            f0 = _smoothed(t, s, delta) + reg * float(np.abs(wf).sum())
            cand = None
            if tau > tmax:  # projected steps, halved until the objective decreases
                step = tau
                for _ in range(40):
                    c = wf + step * d
                    c[np.sign(c) != sigma] = 0.0
                    fc = _smoothed(1.0 - A @ c, s, delta) + reg * float(np.abs(c).sum())
                    if fc < f0 - 1e-15 * abs(f0):
                        cand, tau = c, step
                        break
                    step *= 0.5
                    if step <= tmax:
                        break
            if cand is None:
                tau = _line_search(t, b, s, delta, lin, tmax)
                cand = wf + tau * d
                if tau == tmax:
                    cand[hits <= tmax * (1 + 1e-12)] = 0.0
                cand[np.sign(cand) != sigma] = 0.0
            if DEBUG:
                print(f"d={delta:g} F={len(F)} enter={len(enter)} Q={len(Q)} tau={tau:.3g} tmax={tmax:.3g} "
                      f"f={f0:.10g} res={res_S:.2e} viol={viol.max():.2e}")
            if tau <= 0:
                break
            w[free] = cand
        # vertex attempt: support S, margin rows M = the quadratic zone, L = beyond it
        F = np.flatnonzero(w)
        m = cols.get(F) @ w[F] if len(F) else np.zeros(len(y))
        t = 1.0 - m
        M = np.flatnonzero((t > 0) & (t < delta))
        L = np.flatnonzero(t >= delta)
        out.alpha = np.clip(t / delta, 0.0, 1.0)
        if not len(F):
            continue
        v = vertex(Du, y, s, reg, F, np.sign(w[F]), M, L, cols)
        if v is None:
            continue
        w_S, alpha = v
        gap = _gap(Du, y, s, F, w_S, alpha, reg, cols)
        out.products += 1
        if gap <= accept:
            wv = np.zeros(p)
            wv[F] = w_S
            out.w, out.alpha, out.ok, out.rel_gap = wv, alpha, True, gap
            return out
        out.rel_gap = min(out.rel_gap, gap)
    out.w = w
    return out


def _cholesky(K):
    """Cholesky factor of a symmetric positive semi-definite K, with the smallest diagonal shift
    (relative 1e-14, 1e-12, ...) that lets it through: the normal matrices of an interior point
    method lose rank near the optimum."""
    shift = 1e-14 * float(np.abs(np.diag(K)).max())
    for _ in range(6):
        try:
            return sla.cho_factor(K, check_finite=False)
        except np.linalg.LinAlgError:
            if DEBUG:
                print("   cholesky shift", shift)
            K[np.diag_indices_from(K)] += shift
            shift *= 100
    raise np.linalg.LinAlgError("normal matrix not positive definite")


def _syrk(B: np.ndarray, rows: bool) -> np.ndarray:
    """B B^T (rows) or B^T B, upper triangle filled (what the Cholesky factorisation reads)."""
    from scipy.linalg.blas import dsyrk

    Bt = np.ascontiguousarray(B).T  # Fortran order, no copy
    return dsyrk(1.0, Bt, trans=1 if rows else 0)


def identify_ipm(Du: DesignMatrix, y: np.ndarray, s: np.ndarray, reg: float, accept: float,
                 max_iter: int = 80) -> Identified:
    """Dense primal-dual interior point method (Mehrotra predictor-corrector) on the hinge LP

        min  s^T xi + reg 1^T (wp + wm)   s.t.  A (wp - wm) + xi - sg = 1,   wp, wm, xi, sg >= 0,

    whose row multipliers are lam = s * alpha. The Newton systems are solved in the coefficient
    space, K dw = r with K = diag(1 / (th_p + th_m)) + A^T diag(1 / (th_xi + th_sg)) A (one
    Cholesky per iteration; th = x / z). From the second iteration on, each iterate names a
    candidate support (wp or wm above its dual slack) and margin rows (xi and sg both below
    theirs); the vertex of that pattern is built and certified over every column (``vertex``),
    and the first that certifies to ``accept`` is returned."""
    n, p = len(y), Du.p
    cache = _Columns(Du, y)
    A0 = cache.get(np.arange(p))
    k = float(n)  # objective scaled so that s is about 1
    cw, cn = reg * k, s * k
    wp, wm, xi, sg = np.ones(p), np.ones(p), np.ones(n), np.ones(n)
    zp, zm, zxi, zsg = np.full(p, cw), np.full(p, cw), cn.copy(), np.full(n, 1.0)
    lam = np.zeros(n)
    out = Identified(np.zeros(p), np.zeros(n), False)
    N = 2 * p + 2 * n
    tried = set()
    best_res = np.inf
    state = {"row_space": n <= p}
    for it in range(max_iter):
        u = A0.T @ lam
        rp = 1.0 - A0 @ (wp - wm) - xi + sg
        rdp, rdm, rdxi, rdsg = cw - u - zp, cw + u - zm, cn - lam - zxi, lam - zsg
        gapv = float(wp @ zp + wm @ zm + xi @ zxi + sg @ zsg)
        mu = gapv / N
        pobj = cw * float(wp.sum() + wm.sum()) + float(cn @ xi)
        dobj = float(lam.sum())
        out.newton = it + 1
        if DEBUG:
            print(f"it {it} pobj {pobj:.10g} dobj {dobj:.10g} mu {mu:.2e} rp {np.abs(rp).max():.1e}")
        res = float(np.abs(rp).max())
        best_res = min(best_res, res)
        if res > max(1e3 * best_res, 1e-3):  # the Newton systems have lost their accuracy
            break
        if abs(pobj - dobj) <= ATTEMPT_GAP * max(1.0, abs(pobj)):
            S = np.flatnonzero((wp > zp) | (wm > zm))
            Mrows = np.flatnonzero((xi < zxi) & (sg < zsg))
            L = np.flatnonzero(xi >= zxi)
            # a square pattern: the margin rows whose multiplier is nearest a bound go to that
            # bound, the support columns nearest zero leave
            if len(Mrows) > len(S):
                a = lam[Mrows] / cn[Mrows]
                order = np.argsort(np.minimum(a, 1.0 - a))
                drop = Mrows[order[: len(Mrows) - len(S)]]
                L = np.sort(np.concatenate([L, drop[lam[drop] / cn[drop] > 0.5]]))
                Mrows = np.sort(Mrows[order[len(Mrows) - len(S):]])
            elif len(S) > len(Mrows):
                ratio = np.maximum(wp[S] / zp[S], wm[S] / zm[S])
                S = np.sort(S[np.argsort(-ratio)[: len(Mrows)]])
            key = (S.tobytes(), Mrows.tobytes())
            if len(S) and key not in tried:
                tried.add(key)
                v = vertex(Du, y, s, reg, S, np.sign(wp[S] - wm[S]), Mrows, L, cache)
                if v is not None:
                    gap = _gap(Du, y, s, S, v[0], v[1], reg, cache)
                    out.products += 1
                    out.rel_gap = min(out.rel_gap, gap)
                    if DEBUG:
                        print(f"   vertex |S|={len(S)} |M|={len(Mrows)} gap {gap:.2e}")
                    if gap <= accept:
                        out.w[S] = v[0]
                        out.alpha, out.ok = v[1], True
                        out.pattern = (S, np.sign(wp[S] - wm[S]), Mrows, L)
                        return out
        if abs(pobj - dobj) <= 1e-12 * max(1.0, abs(pobj)) and np.abs(rp).max() <= 1e-12:
            break
        thp, thm, thxi, thsg = wp / zp, wm / zm, xi / zxi, sg / zsg
        dn, thw = thxi + thsg, thp + thm
        fac = {}

        def factor(row_space):
            fac["rows"] = row_space
            if row_space:  # Newton systems in the row space: (A diag(thw) A^T + diag(dn)) dl = r
                Kn = _syrk(A0 * np.sqrt(thw), rows=True)
                Kn[np.diag_indices(n)] += dn
            else:  # in the coefficient space: (diag(1 / thw) + A^T diag(1 / dn) A) v = A^T r / dn
                Kn = _syrk(A0 * (1.0 / np.sqrt(dn))[:, None], rows=False)
                Kn[np.diag_indices(p)] += 1.0 / thw
            fac["cf"] = _cholesky(Kn)

        def msolve(r):
            if fac["rows"]:
                return sla.cho_solve(fac["cf"], r, check_finite=False)
            v = sla.cho_solve(fac["cf"], A0.T @ (r / dn), check_finite=False)
            return (r - A0 @ v) / dn  # loses accuracy as some dn approach 0: checked below

        def nsolve(r):
            """(A diag(thw) A^T + diag(dn))^-1 r, iteratively refined; in the row space once the
            coefficient space's solution has lost its accuracy."""
            dl = msolve(r)
            res = r - A0 @ (thw * (A0.T @ dl)) - dn * dl
            for _ in range(REFINE):
                cand = dl + msolve(res)
                res_c = r - A0 @ (thw * (A0.T @ cand)) - dn * cand
                if np.abs(res_c).max() >= np.abs(res).max():
                    break
                dl, res = cand, res_c
            if np.abs(res).max() > 1e-9 * max(1.0, float(np.abs(r).max())) and not fac["rows"]:
                factor(True)
                state["row_space"] = True
                return nsolve(r)
            return dl

        try:
            factor(state["row_space"])
        except np.linalg.LinAlgError:
            break

        def direction(rcp, rcm, rcxi, rcsg):
            hw = thp * (rcp / wp - rdp) - thm * (rcm / wm - rdm)
            hn = thxi * (rcxi / xi - rdxi) - thsg * (rcsg / sg - rdsg)
            dl = nsolve(rp - hn - A0 @ hw)
            du = A0.T @ dl
            dwp = thp * (du + rcp / wp - rdp)
            dwm = thm * (-du + rcm / wm - rdm)
            dxi = thxi * (dl + rcxi / xi - rdxi)
            dsg = thsg * (-dl + rcsg / sg - rdsg)
            dz = [(rc - z * dx) / x for rc, z, dx, x in
                  ((rcp, zp, dwp, wp), (rcm, zm, dwm, wm), (rcxi, zxi, dxi, xi), (rcsg, zsg, dsg, sg))]
            return [dwp, dwm, dxi, dsg], dl, dz

        def step(vs, dvs):
            t = 1.0
            for v, dv in zip(vs, dvs):
                neg = dv < 0
                if neg.any():
                    t = min(t, float((-v[neg] / dv[neg]).min()))
            return t

        X, Z = [wp, wm, xi, sg], [zp, zm, zxi, zsg]
        dx, dl, dz = direction(*[-x * z for x, z in zip(X, Z)])  # affine predictor
        ap, ad = step(X, dx), step(Z, dz)
        mu_aff = sum(float((x + ap * a) @ (z + ad * b)) for x, a, z, b in zip(X, dx, Z, dz)) / N
        sig = (mu_aff / mu) ** 3
        dx, dl, dz = direction(*[sig * mu - x * z - a * b for x, z, a, b in zip(X, Z, dx, dz)])
        ap, ad = 0.995 * step(X, dx), 0.995 * step(Z, dz)
        wp, wm, xi, sg = (x + ap * a for x, a in zip(X, dx))
        zp, zm, zxi, zsg = (z + ad * b for z, b in zip(Z, dz))
        lam = lam + ad * dl
    out.alpha = np.clip(lam / (s * k), 0.0, 1.0)
    return out
