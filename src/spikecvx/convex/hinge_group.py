"""Hinge + group L1 with several outputs, certified without a general cone solver.

Over distinct rows X (n x p) with labels Y in {-1, +1}^(n x C) and weights s > 0:

    min_W  sum_i s_i sum_c max(0, 1 - Y_ic x_i W_c) + reg * sum_j ||W_j||_2

is a second-order cone program. On dense spike dictionaries a sparse conic solver (Clarabel)
fills in its factorisations; here two stages find the optimum instead:

1. **A dense primal-dual interior point method** on the cone program (objective scaled by n)

       min  sum_ic cn_i xi_ic + cw sum_j t_j
       s.t. Y_ic x_i W_c + xi_ic - sg_ic = 1,   xi, sg >= 0,   (t_j, W_j) in the second-order cone,

   with Nesterov-Todd scaling and Mehrotra's predictor-corrector. Each Newton system, in the
   n C multipliers of the rows, is solved through the (p C) x (p C) matrix
   K = Theta^-1 + blockdiag_c(X^T diag(1 / D_c) X) (Woodbury identity): one Cholesky
   factorisation per iteration, single precision first, each solution refined against the exact
   float64 operator. These systems lose their accuracy near relative gap 1e-6 (the active cones'
   scalings spread over many orders of magnitude), so the method is not run to convergence.
2. **Newton's method on the optimality conditions of a pattern.** From relative gap
   ``ATTEMPT_GAP`` on, each iterate's complementarity sorts the groups into active (A: W_j != 0)
   and the row pairs (i, c) into the margin (M: Y_ic x_i W_c = 1, 0 <= alpha_ic <= 1), inside it
   (L: alpha = 1) and outside it (O: alpha = 0). Given the pattern, the optimum solves the square
   system of the margin equations on M and the stationarity conditions
   sum_i s_i alpha_ic Y_ic X_ij = reg W_jc / ||W_j|| on A, in (W_A, alpha_M); Newton's method
   converges quadratically from the iterate. Elements whose conditions the solution violates
   change sides (a pair off its side of the margin, a multiplier outside [0, 1], an inactive group
   whose dual norm passes reg) and Newton runs again, up to ``ROUNDS`` times.

The first solution whose duality gap, over every row and group in float64, is at most ``ACCEPT``
of the objective is returned; a pattern that does not certify costs one more iteration, never a
wrong answer. ``solve_hinge_group`` returns None when no pattern certifies (or K would be too
large); ``hinge_programs.hinge_socp`` then runs Clarabel. Measurements: docs/design/hinge.md.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg as sla

from .hinge_vertex import _cholesky, _syrk

ATTEMPT_GAP = 1e-4  # relative gap (and residual) of the iterate from which patterns are solved
ACCEPT = 1e-11  # relative duality gap at which a pattern's solution is returned
ROUNDS = 4  # side changes per pattern
MAX_MOVES = 0.02  # a pattern is abandoned when a round would move more than this share of its pairs
NEWTON_STEPS = 6  # Newton steps per pattern (it converges quadratically from the iterate)
MAX_PATTERN = 6000  # largest Newton system of a pattern (active coefficients plus margin pairs)
MAX_ITER = 60  # interior point iterations
REFINE = 6  # iterative refinement steps per Newton system of the interior point method
SOLVE_TOL = 1e-8  # relative residual such a solution must reach
MAX_ENTRIES = 6000**2  # largest (p C)^2 handled (K: 288 MB in float64)


def group_gap(X, Y, s, W, alpha, reg) -> float:
    """Relative duality gap of (W, alpha): the dual point U = -Y alpha s scaled into
    max_j ||X_j^T U|| <= reg, the gap divided by max(1, primal)."""
    primal = float(np.sum(s[:, None] * np.maximum(0.0, 1.0 - Y * (X @ W))))
    primal += reg * float(np.linalg.norm(W, axis=1).sum())
    top = float(np.linalg.norm(X.T @ (Y * alpha * s[:, None]), axis=1).max())
    scale = min(1.0, reg / top) if top > 0 else 1.0
    return (primal - scale * float(np.sum(s[:, None] * alpha))) / max(1.0, abs(primal))


def solve_hinge_group(X, Y, s, reg: float):
    """(W (p x C), alpha (n x C)) certified to relative gap ``ACCEPT``, or None.

    X: distinct rows (n x p), Y: labels in {-1, +1} (n x C, C >= 2), s: non-negative row weights,
    reg > 0. Rows of zero weight are left out (their alpha is 0). Equal columns are solved as one
    (||a|| + ||b|| >= ||a + b||, so an optimum puts their coefficients on one of them, the first):
    their split is otherwise free, and the optimality conditions of a pattern holding both would be
    singular."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    n, p = X.shape
    rows = np.flatnonzero(s > 0)
    if len(rows) == 0:
        return None
    cols = np.sort(np.unique(X[rows], axis=1, return_index=True)[1])
    if (len(cols) * Y.shape[1]) ** 2 > MAX_ENTRIES or reg <= 0:
        return None
    Xr, Yr, sr = X[np.ix_(rows, cols)], Y[rows], s[rows]
    for it in _iterates(Xr, Yr, sr, reg):
        if it["gap"] > ATTEMPT_GAP or it["feas"] > ATTEMPT_GAP:
            continue
        found = _solve_patterns(Xr, Yr, sr, reg, it)
        if found is not None:
            W = np.zeros((p, Y.shape[1]))
            W[cols] = found[0]
            alpha = np.zeros(Y.shape)
            alpha[rows] = found[1]
            return W, alpha
    return None


# --- stage 2: Newton's method on a pattern --------------------------------------------------------


def _pattern(it):
    """(L, O, M, A) of an interior point iterate, by complementarity: a row pair is inside the
    margin when its hinge slack is larger than that slack's dual, outside when the slack above
    the margin is, else on it; a group is active when its coefficients' norm passes the dual
    slack of its cone."""
    L = it["xi"] > it["zxi"]
    O = ~L & (it["sg"] > it["zsg"])
    M = ~L & ~O
    zk = it["zk"]
    A = np.linalg.norm(it["xk"][:, 1:], axis=1) > zk[:, 0] - np.linalg.norm(zk[:, 1:], axis=1)
    return L, O, M, A


def _solve_patterns(X, Y, s, reg, it):
    """The iterate's pattern solved by Newton's method, its violated elements moved and solved
    again: (W, alpha) once the gap is at most ACCEPT, else None."""
    L, O, M, A = _pattern(it)
    W, alpha = it["W"], np.clip(it["lam"] / it["cn"], 0.0, 1.0)
    best = np.inf
    for _ in range(ROUNDS):
        solved = _newton(X, Y, s, reg, W, alpha, L, M, A)
        if solved is None:
            return None
        W, alpha, raw = solved
        gap = group_gap(X, Y, s, W, alpha, reg)
        if gap <= ACCEPT:
            return W, alpha
        if not gap < best:
            return None
        best = gap
        margin = Y * (X @ W)
        dual_norm = np.linalg.norm(X.T @ (Y * alpha * s[:, None]), axis=1)
        to_M = (O & (margin < 1.0)) | (L & (margin > 1.0))
        to_L, to_O = M & (raw > 1.0), M & (raw < 0.0)
        add = ~A & (dual_norm > reg)
        drop = A & (np.linalg.norm(W, axis=1) == 0.0)
        moves = int(to_M.sum() + to_L.sum() + to_O.sum())
        if moves > MAX_MOVES * max(1, int(M.sum())) + 10 or not (moves or add.any() or drop.any()):
            return None
        L = (L & ~to_M) | to_L
        O = (O & ~to_M) | to_O
        M = (M & ~to_L & ~to_O) | to_M
        A = (A | add) & ~drop
        alpha = np.where(to_M, 0.5, alpha)
    return None


def _newton(X, Y, s, reg, W0, alpha0, L, M, A):
    """Newton's method on the optimality conditions of the pattern (L, M, A): returns (W, alpha
    with alpha_M clipped to [0, 1], alpha with alpha_M as solved), or None when its Jacobian is
    singular."""
    n, C = Y.shape
    groups = np.flatnonzero(A)
    a = len(groups)
    mi, mc = np.nonzero(M)
    m = len(mi)
    if a == 0:
        return None
    Xa = X[:, groups]
    W = W0[groups].copy()
    norms = np.linalg.norm(W, axis=1)
    new = norms <= 1e-12 * max(1.0, float(norms.max()))
    if new.any():  # a group entering: start along its dual direction
        g = Xa[:, new].T @ (Y * alpha0 * s[:, None])
        W[new] = 1e-8 * g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
    am = alpha0[mi, mc].copy()
    inside = L.astype(np.float64)
    g0 = Xa.T @ (Y * inside * s[:, None])  # the stationarity sums of the rows inside the margin
    k = a * C
    if k + m > MAX_PATTERN:
        return None
    # unknowns (W_A by group then output, alpha_M); equations (stationarity on A, margins on M)
    J = np.zeros((k + m, k + m))
    J[k + np.arange(m)[:, None], np.arange(a)[None, :] * C + mc[:, None]] = Y[mi, mc][:, None] * Xa[mi]
    J[np.arange(a)[:, None] * C + mc[None, :], k + np.arange(m)[None, :]] = (
        (s[mi] * Y[mi, mc])[None, :] * Xa[mi].T)
    eye = np.eye(C)
    idx = np.arange(a)[:, None] * C + np.arange(C)[None, :]
    scale = 1.0 + float(np.abs(g0).max())
    for _ in range(NEWTON_STEPS):
        norms = np.linalg.norm(W, axis=1)
        if not np.all(norms > 0):
            return None
        u = W / norms[:, None]
        f_margin = np.einsum("mj,mj->m", Xa[mi], W[:, mc].T) * Y[mi, mc] - 1.0
        g = g0.copy()
        np.add.at(g.T, mc, ((s[mi] * Y[mi, mc] * am)[:, None] * Xa[mi]))
        F = np.concatenate([(g - reg * u).ravel(), f_margin])
        if np.abs(F).max() <= 1e-15 * scale:
            break
        block = -(reg / norms)[:, None, None] * (eye[None] - u[:, :, None] * u[:, None, :])
        J[:k, :k] = 0.0
        J[idx[:, :, None], idx[:, None, :]] = block
        step = _newton_step(J, F)
        if step is None:
            return None
        W = W + step[:k].reshape(a, C)
        am = am + step[k:]
    W_full = np.zeros((X.shape[1], C))
    W_full[groups] = W
    raw = inside.copy()
    raw[mi, mc] = am
    alpha = inside.copy()
    alpha[mi, mc] = np.clip(am, 0.0, 1.0)
    return W_full, alpha, raw


def _newton_step(J, F):
    """The solution of J step = -F; the least-squares one where J is singular (degenerate
    patterns: duplicate columns, more margin pairs than the active coefficients fix), None when
    that fails too."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", sla.LinAlgWarning)
        try:
            step = sla.lu_solve(sla.lu_factor(J, check_finite=False), -F, check_finite=False)
            if np.all(np.isfinite(step)) and np.abs(J @ step + F).max() <= 1e-8 * np.abs(F).max():
                return step
            step = sla.lstsq(J, -F, check_finite=False)[0]
        except (np.linalg.LinAlgError, ValueError):
            return None
    return step if np.all(np.isfinite(step)) else None


# --- stage 1: the interior point method -----------------------------------------------------------


def _jdot(u, v):
    """u0 v0 - u1 . v1 for each row: the cone's quadratic form."""
    return u[:, 0] * v[:, 0] - np.einsum("ij,ij->i", u[:, 1:], v[:, 1:])


def _jprod(u, v):
    """Jordan product u o v = (u . v, u0 v1 + v0 u1), row by row."""
    out = np.empty_like(u)
    out[:, 0] = np.einsum("ij,ij->i", u, v)
    out[:, 1:] = u[:, :1] * v[:, 1:] + v[:, :1] * u[:, 1:]
    return out


def _jdiv(lam, r):
    """x with lam o x = r, row by row (lam in the interior of the cone)."""
    det = _jdot(lam, lam)
    x = np.empty_like(r)
    x[:, 0] = (lam[:, 0] * r[:, 0] - np.einsum("ij,ij->i", lam[:, 1:], r[:, 1:])) / det
    x[:, 1:] = (r[:, 1:] - x[:, :1] * lam[:, 1:]) / lam[:, :1]
    return x


def _nt_scaling(x, z):
    """Nesterov-Todd scalings W and W^-1 (p x m x m, symmetric) of the cone pairs (x, z): W z = W^-1 x."""
    nx, nz = np.sqrt(_jdot(x, x)), np.sqrt(_jdot(z, z))
    xb, zb = x / nx[:, None], z / nz[:, None]
    gamma = np.sqrt((1.0 + np.einsum("ij,ij->i", xb, zb)) / 2.0)
    zb[:, 1:] *= -1.0
    wb = (xb + zb) / (2.0 * gamma[:, None])  # the normalised scaling point
    wb[:, 0] += 1.0
    v = wb / np.sqrt(2.0 * wb[:, :1])  # its square root in the cone's algebra
    J = np.diag(np.r_[1.0, -np.ones(x.shape[1] - 1)])
    eta = np.sqrt(nx / nz)[:, None, None]
    Jv = v.copy()
    Jv[:, 1:] *= -1.0
    return eta * (2.0 * v[:, :, None] * v[:, None, :] - J), (2.0 * Jv[:, :, None] * Jv[:, None, :] - J) / eta


def _cone_step(x, dx) -> float:
    """Largest t in [0, 1] keeping every row of x + t dx in the cone."""
    a, b, c = _jdot(dx, dx), _jdot(x, dx), _jdot(x, x)
    disc = b * b - a * c
    hit = (a < 0) | ((b < 0) & (disc >= 0))
    if not hit.any():
        return 1.0
    t = c[hit] / (-b[hit] + np.sqrt(np.maximum(disc[hit], 0.0)))
    return float(min(1.0, t.min()))


def _step(vs, dvs, cone_x, cone_dx) -> float:
    """Largest step in [0, 1] keeping the non-negative vs and the cone rows feasible."""
    t = _cone_step(cone_x, cone_dx)
    for v, dv in zip(vs, dvs):
        neg = dv < 0
        if neg.any():
            t = min(t, float((-v[neg] / dv[neg]).min()))
    return t


class _Newton:
    """The rows' Newton system (D + B Theta B^T) dl = r of one iteration, solved through K."""

    def __init__(self, X, Y, D, Theta, Tinv, single: bool) -> None:
        self.X, self.Y, self.D, self.Theta, self.Tinv = X, Y, D, Theta, Tinv
        self.factor(single)

    def factor(self, single: bool) -> None:
        X, D = self.X, self.D
        p, C = X.shape[1], D.shape[1]
        self.single = single
        dtype = np.float32 if single else np.float64
        K = np.zeros((p * C, p * C), dtype=dtype)
        for c in range(C):
            K[c * p : (c + 1) * p, c * p : (c + 1) * p] = _syrk(
                np.asfortranarray(X * (1.0 / np.sqrt(D[:, c]))[:, None], dtype=dtype), rows=False)
        j = np.arange(p)
        for c in range(C):
            for d in range(c, C):
                K[c * p + j, d * p + j] += self.Tinv[:, c, d]
        try:
            self.cf = _cholesky(K)
        except np.linalg.LinAlgError:
            if not single:
                raise
            self.factor(single=False)

    def apply(self, v):
        """(D + B Theta B^T) v, exactly in float64."""
        u = self.X.T @ (self.Y * v)
        return self.D * v + self.Y * (self.X @ np.einsum("jcd,jd->jc", self.Theta, u))

    def _solve_once(self, r):
        p, C = self.Theta.shape[0], self.D.shape[1]
        rD = r / self.D
        rhs = (self.X.T @ (self.Y * rD)).T.reshape(-1)  # output-major, as K
        v = sla.cho_solve(self.cf, rhs.astype(self.cf[0].dtype, copy=False), check_finite=False)
        v = v.astype(np.float64).reshape(C, p).T
        return rD - self.Y * (self.X @ v) / self.D

    def solve(self, r):
        tol = SOLVE_TOL * float(np.abs(r).max())
        x = self._solve_once(r)
        res = r - self.apply(x)
        for _ in range(REFINE):
            if np.abs(res).max() <= tol:
                break
            cand = x + self._solve_once(res)
            res_c = r - self.apply(cand)
            if np.abs(res_c).max() >= np.abs(res).max():
                break
            x, res = cand, res_c
        if self.single and np.abs(res).max() > tol:
            self.factor(single=False)
            return self.solve(r)
        return x


class _Direction:
    """The Newton directions of one interior point iteration, for any right-hand side of the
    complementarity equations: (dxi, dsg, dxk, dl, dzxi, dzsg, dzk)."""

    def __init__(self, X, Y, v, residuals, single: bool) -> None:
        self.X, self.Y, self.v = X, Y, v
        self.rp, self.rd_xi, self.rd_sg, self.rd_k = residuals
        self.Wn, self.Winv = _nt_scaling(v["xk"], v["zk"])
        self.W2 = self.Wn @ self.Wn
        P = self.Winv @ self.Winv
        Tinv = P[:, 1:, 1:] - P[:, 1:, :1] * P[:, :1, 1:] / P[:, :1, :1]  # W2's coefficient block, inverted
        self.lam_k = np.einsum("jab,jb->ja", self.Wn, v["zk"])
        self.th_xi, self.th_sg = v["xi"] / v["zxi"], v["sg"] / v["zsg"]
        self.system = _Newton(X, Y, self.th_xi + self.th_sg, np.ascontiguousarray(self.W2[:, 1:, 1:]), Tinv,
                              single)

    def __call__(self, rc_xi, rc_sg, rc_k):
        X, Y, v = self.X, self.Y, self.v
        q = np.einsum("jab,jb->ja", self.Wn, _jdiv(self.lam_k, rc_k))
        h_xi = rc_xi / v["zxi"] - self.th_xi * self.rd_xi
        h_sg = rc_sg / v["zsg"] - self.th_sg * self.rd_sg
        h_k = q - np.einsum("jab,jb->ja", self.W2, self.rd_k)
        dl = self.system.solve(self.rp - h_xi + h_sg - Y * (X @ h_k[:, 1:]))
        du = X.T @ (Y * dl)
        dzk = self.rd_k.copy()
        dzk[:, 1:] -= du
        dxk = h_k + np.einsum("jab,jb->ja", self.W2[:, :, 1:], du)
        return h_xi + self.th_xi * dl, h_sg - self.th_sg * dl, dxk, dl, self.rd_xi - dl, self.rd_sg + dl, dzk


def _iterates(X, Y, s, reg):
    """The interior point iterates, each a dict of its variables with its relative gap ``gap`` and
    largest scaled residual ``feas``; ends after MAX_ITER or when a Newton system fails."""
    n, p = X.shape
    C = Y.shape[1]
    cn = np.repeat((s * n)[:, None], C, axis=1)
    cw = float(reg * n)
    v = dict(xi=np.ones((n, C)), sg=np.ones((n, C)), zxi=cn.copy(), zsg=np.ones((n, C)),
             xk=np.zeros((p, C + 1)), zk=np.zeros((p, C + 1)), lam=np.zeros((n, C)))
    v["xk"][:, 0] = 1.0
    v["zk"][:, 0] = cw
    e = np.zeros((p, C + 1))
    e[:, 0] = 1.0
    deg = 2 * n * C + p
    single = True
    for _ in range(MAX_ITER):
        xi, sg, zxi, zsg, xk, zk, lam = (v[k] for k in ("xi", "sg", "zxi", "zsg", "xk", "zk", "lam"))
        rp = 1.0 - Y * (X @ xk[:, 1:]) - xi + sg
        rd_xi, rd_sg = cn - lam - zxi, lam - zsg
        rd_k = -zk
        rd_k[:, 0] += cw
        rd_k[:, 1:] -= X.T @ (Y * lam)
        pobj = float((cn * xi).sum() + cw * xk[:, 0].sum())
        gap = abs(pobj - float(lam.sum())) / max(1.0, abs(pobj))
        feas = max(float(np.abs(rp).max()),
                   float(np.abs(rd_xi).max() + np.abs(rd_sg).max()) / max(1.0, float(cn.max())),
                   float(np.abs(rd_k).max()) / max(1.0, cw))
        yield dict(v, W=xk[:, 1:].copy(), cn=cn, gap=gap, feas=feas)
        mu = (float((xi * zxi).sum() + (sg * zsg).sum()) + float(np.einsum("ij,ij->", xk, zk))) / deg
        try:
            direction = _Direction(X, Y, v, (rp, rd_xi, rd_sg, rd_k), single)
            single = direction.system.single
            aff = direction(-xi * zxi, -sg * zsg, -_jprod(direction.lam_k, direction.lam_k))
            ap = _step([xi, sg], aff[:2], xk, aff[2])
            ad = _step([zxi, zsg], aff[4:6], zk, aff[6])
            mu_aff = (float(((xi + ap * aff[0]) * (zxi + ad * aff[4])).sum()
                            + ((sg + ap * aff[1]) * (zsg + ad * aff[5])).sum())
                      + float(np.einsum("ij,ij->", xk + ap * aff[2], zk + ad * aff[6]))) / deg
            sigma = (mu_aff / mu) ** 3
            corr = _jprod(np.einsum("jab,jb->ja", direction.Winv, aff[2]),
                          np.einsum("jab,jb->ja", direction.Wn, aff[6]))
            dxi, dsg, dxk, dl, dzxi, dzsg, dzk = direction(
                sigma * mu - xi * zxi - aff[0] * aff[4], sigma * mu - sg * zsg - aff[1] * aff[5],
                sigma * mu * e - _jprod(direction.lam_k, direction.lam_k) - corr)
        except np.linalg.LinAlgError:
            return
        ap = 0.99 * _step([xi, sg], [dxi, dsg], xk, dxk)
        ad = 0.99 * _step([zxi, zsg], [dzxi, dzsg], zk, dzk)
        if min(ap, ad) < 1e-6:
            return  # the directions have lost their accuracy
        v = dict(xi=xi + ap * dxi, sg=sg + ap * dsg, xk=xk + ap * dxk,
                 zxi=zxi + ad * dzxi, zsg=zsg + ad * dzsg, zk=zk + ad * dzk, lam=lam + ad * dl)
