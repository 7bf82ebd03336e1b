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
   K = Theta^-1 + blockdiag_c(X^T diag(1 / D_c) X) (Woodbury identity), each solution refined
   against the exact float64 operator (``_Newton``: while it is accurate enough, through the
   cones' rank-one coupling of the outputs, C + 1 factorisations of p x p). From relative gap
   ``SCREEN_GAP`` the iterations go on with the groups the iterate ranks first. These systems
   lose their accuracy near relative gap 1e-6 (the active cones' scalings spread over many
   orders of magnitude), so the method is not run to convergence.
2. **Newton's method on the optimality conditions of a pattern.** From relative gap
   ``ATTEMPT_GAP`` on, each iterate's complementarity sorts the groups into active (A: W_j != 0)
   and the row pairs (i, c) into the margin (M: Y_ic x_i W_c = 1, 0 <= alpha_ic <= 1), inside it
   (L: alpha = 1) and outside it (O: alpha = 0). Given the pattern, the optimum solves the square
   system of the margin equations on M and the stationarity conditions
   sum_i s_i alpha_ic Y_ic X_ij = reg W_jc / ||W_j|| on A, in (W_A, alpha_M); Newton's method
   converges quadratically from the iterate. Elements whose conditions the solution violates
   change sides (a pair off its side of the margin, a multiplier outside [0, 1], an inactive group
   whose dual norm passes reg, an active group whose coefficients vanish) and Newton runs again,
   up to ``ROUNDS`` times.

The first solution whose duality gap, over every row and group in float64, is at most ``ACCEPT``
times max(1, objective) is returned; a pattern that does not certify costs one more iteration, never a
wrong answer. ``solve_hinge_group`` returns None when no pattern certifies (or K would be too
large); ``hinge_programs.hinge_socp`` then runs Clarabel. Measurements: docs/design/hinge.md.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg as sla

from ._dense import blas_limit, cholesky, max_step, refine, syrk

ATTEMPT_GAP = 1e-4  # relative gap (and residual) of the iterate from which patterns are solved
ACCEPT = 1e-11  # relative duality gap at which a pattern's solution is returned
ROUNDS = 4  # Newton solves per pattern (with the side changes between them)
MAX_MOVES = 0.02  # a pattern is abandoned when a round would move more than 10 + this share of M
NEWTON_STEPS = 12  # Newton steps per pattern
CHORD_RATE = 0.1  # the Jacobian's factors are kept while each step shrinks the residual this much
ROUNDING = 1e-12  # a residual below this (relative) that stops shrinking is rounding
BACKWARD = 1e-12  # a pattern's Newton step is accepted at this normwise backward error
BACKTRACK = 8  # step halvings before a Newton step is given up
LSTSQ_MAX = 600  # singular Newton systems up to this size are solved by least squares, larger fail
MAX_PATTERN = 6000  # largest pattern system (active coefficients + tied margin pairs; ~0.9 GB at this size)
MAX_ITER = 60  # interior point iterations
REFINE = 6  # iterative refinement steps per Newton system of the interior point method
SOLVE_TOL = 1e-8  # relative residual such a solution must reach
MAX_ENTRIES = 6000**2  # largest (p C)^2 handled (K: 288 MB in float64)
COUPLED = 1e-6  # level 0 of the Newton systems keeps the cones' coupling where c_j > COUPLED a_j
# screening: from relative gap SCREEN_GAP on, the iterations go on with the SCREEN_KEEP x (groups
# whose complementarity ratio passes SCREEN_RATIO) groups the iterate ranks first, when that is at
# most SCREEN_SHARE of them and there are at least SCREEN_MIN_GROUPS; after SCREEN_ATTEMPTS failed
# patterns or SCREEN_ITERATIONS iterations the whole problem resumes. The numbers: where the
# optimal groups rank in the iterates (docs/design/hinge.md).
SCREEN_GAP, SCREEN_RATIO, SCREEN_KEEP, SCREEN_SHARE = 5e-2, 0.01, 1.6, 0.8
SCREEN_MIN_GROUPS, SCREEN_ATTEMPTS, SCREEN_ITERATIONS = 200, 3, 20


def group_gap(X: np.ndarray, Y: np.ndarray, s: np.ndarray, W: np.ndarray, alpha: np.ndarray,
              reg: float) -> float:
    """Relative duality gap of (W, alpha): the dual point U = -Y alpha s scaled into
    max_j ||X_j^T U|| <= reg, the gap divided by max(1, primal)."""
    return _gap_parts(X, Y, s, W, alpha, reg)[0]


def _gap_parts(X, Y, s, W, alpha, reg):
    """``group_gap`` with the margins Y * (X W) and the groups' dual norms ||X_j^T (Y alpha s)||
    it is computed from (the side changes of ``_solve_patterns`` read them too)."""
    margin = Y * (X @ W)
    dual_norm = np.linalg.norm(X.T @ (Y * alpha * s[:, None]), axis=1)
    primal = float(np.sum(s[:, None] * np.maximum(0.0, 1.0 - margin)))
    primal += reg * float(np.linalg.norm(W, axis=1).sum())
    top = float(dual_norm.max())
    scale = min(1.0, reg / top) if top > 0 else 1.0
    gap = (primal - scale * float(np.sum(s[:, None] * alpha))) / max(1.0, abs(primal))
    return gap, margin, dual_norm


def solve_hinge_group(X, Y, s, reg: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(W (p x C), alpha (n x C)) certified to relative gap ``ACCEPT``, or None.

    X: distinct rows (n x p), Y: labels in {-1, +1} (n x C), s: non-negative row weights, reg > 0.
    Rows of zero weight are left out (their alpha is 0). Equal columns are solved as one
    (||a|| + ||b|| >= ||a + b||, so an optimum puts their coefficients on one of them, the first):
    their split is otherwise free, and the optimality conditions of a pattern holding both would be
    singular. At reg >= reg_max the answer is W = 0, alpha = 1 (gap 0)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or s.shape != (X.shape[0],) or Y.shape[0] != X.shape[0]:
        raise ValueError(f"X (n x p), Y (n x C) and s (n,) must agree: got X {X.shape}, Y {Y.shape}, "
                         f"s {s.shape}")
    if not (np.all(np.isfinite(s)) and np.all(s >= 0)):
        raise ValueError("s must be finite and non-negative")
    if not (np.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be positive and finite, got {reg}")
    n, p = X.shape
    rows = np.flatnonzero(s > 0)
    if len(rows) == 0:
        return None
    cols = np.sort(np.unique(X[rows], axis=1, return_index=True)[1])
    Xr, Yr, sr = X[np.ix_(rows, cols)], Y[rows], s[rows]
    W, alpha = np.zeros((p, Y.shape[1])), np.zeros(Y.shape)
    if np.linalg.norm(Xr.T @ (Yr * sr[:, None]), axis=1).max() <= reg:  # reg >= reg_max: W = 0
        alpha[rows] = 1.0
        return W, alpha
    if (len(cols) * Y.shape[1]) ** 2 > MAX_ENTRIES:
        return None
    # one BLAS thread, as in hinge_vertex: numpy's and scipy's OpenBLAS copies spin against each
    # other with two threads each on 2 cores (docs/design/hinge.md)
    with blas_limit(1), np.errstate(over="ignore"):
        try:
            found = _solve(Xr, Yr, sr, reg)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            found = None  # a numerical failure: the caller's general solver answers
    if found is None:
        return None
    W[cols] = found[0]
    alpha[rows] = found[1]
    return W, alpha


def _solve(X, Y, s, reg):
    """Interior point iterations on the whole problem; from relative gap SCREEN_GAP on, iterations
    on the groups the iterate ranks first (``_screened``), resuming the whole problem when those
    do not certify. Every pattern is solved and certified on the whole problem."""
    screen = X.shape[1] >= SCREEN_MIN_GROUPS
    for it in _iterates(X, Y, s, reg):
        if it["gap"] <= ATTEMPT_GAP and it["feas"] <= ATTEMPT_GAP:
            found = _solve_patterns(X, Y, s, reg, it)
            if found is not None:
                return found
        if screen and it["gap"] <= SCREEN_GAP:
            screen = False
            kept = _screened(it)
            if 0 < len(kept) <= SCREEN_SHARE * X.shape[1]:
                found = _solve_screened(X, Y, s, reg, it, kept)
                if found is not None:
                    return found
    return None


def _screened(it) -> np.ndarray:
    """The groups to keep: SCREEN_KEEP times as many as pass the complementarity ratio
    SCREEN_RATIO (norm of the coefficients over the cone's dual slack), the highest ratios."""
    ratio = _group_ratio(it)
    k = min(len(ratio), int(np.ceil(SCREEN_KEEP * np.count_nonzero(ratio > SCREEN_RATIO))))
    return np.sort(np.argsort(-ratio, kind="stable")[:k])


def _solve_screened(X, Y, s, reg, it, kept):
    """Iterations on the groups ``kept`` (the others fixed at W = 0), from the iterate ``it``; their
    patterns, expanded to every group (the others inactive), solved on the whole problem, which
    brings back a group the screening left out when few are."""
    p, C1 = it["xk"].shape
    start = dict(it, xk=it["xk"][kept], zk=it["zk"][kept])
    failed = 0
    for sub in _iterates(X[:, kept], Y, s, reg, start=start, max_iter=SCREEN_ITERATIONS):
        if sub["gap"] > ATTEMPT_GAP or sub["feas"] > ATTEMPT_GAP:
            continue
        xk, zk = np.zeros((p, C1)), np.zeros((p, C1))
        zk[:, 0] = np.inf  # the groups left out: inactive
        xk[kept], zk[kept] = sub["xk"], sub["zk"]
        W = np.zeros((p, C1 - 1))
        W[kept] = sub["W"]
        found = _solve_patterns(X, Y, s, reg, dict(sub, xk=xk, zk=zk, W=W))
        if found is not None:
            return found
        failed += 1
        if failed >= SCREEN_ATTEMPTS:
            return None
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
    return L, O, M, _group_ratio(it) > 1.0


def _group_ratio(it) -> np.ndarray:
    """Each group's complementarity ratio: its coefficients' norm over its cone's dual slack."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero slack: inf (or nan for 0 / 0)
        return np.linalg.norm(it["xk"][:, 1:], axis=1) / _cone_slack(it["zk"])


def _cone_slack(z) -> np.ndarray:
    """z_0 - ||z_1|| of each cone row, without the cancellation near the cone's boundary."""
    norm = np.linalg.norm(z[:, 1:], axis=1)
    with np.errstate(invalid="ignore"):  # z_0 = inf (a group left out): inf
        return np.where(np.isinf(z[:, 0]), np.inf, _jdot(z, z) / (z[:, 0] + norm))


def _solve_patterns(X, Y, s, reg, it):
    """The iterate's pattern solved by Newton's method, its violated elements moved and solved
    again: (W, alpha) once the gap is at most ACCEPT, else None."""
    L, O, M, A = _pattern(it)
    W, alpha = it["W"], np.clip(it["lam"] / it["cn"], 0.0, 1.0)
    best = np.inf
    for rounds in range(ROUNDS):
        solved = _newton(X, Y, s, reg, W, alpha, L, M, A)
        if solved is None:
            return None
        W, alpha, raw = solved
        gap, margin, dual_norm = _gap_parts(X, Y, s, W, alpha, reg)
        if gap <= ACCEPT:
            return W, alpha
        if not gap < best or rounds == ROUNDS - 1:
            return None
        best = gap
        to_M = (O & (margin < 1.0)) | (L & (margin > 1.0))
        to_L, to_O = M & (raw > 1.0), M & (raw < 0.0)
        add = ~A & (dual_norm > reg)
        norms = np.linalg.norm(W, axis=1)
        drop = A & (norms <= 1e-9 * norms.max())
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
    with alpha_M clipped to [0, 1], alpha with alpha_M as solved), or None when it fails.

    Margin pairs with equal rows on the active groups (and equal output and label) share one
    margin equation, and their multipliers move from ``alpha0`` by one common shift: on spike
    dictionaries many pairs tie, and their split, which the active groups do not see, stays the
    interior point iterate's."""
    C = Y.shape[1]
    groups = np.flatnonzero(A)
    a = len(groups)
    if a == 0:
        return None
    mi, mc = np.nonzero(M)
    Xa = X[:, groups]
    W = W0[groups].copy()
    norms = np.linalg.norm(W, axis=1)
    new = norms <= 1e-12 * max(1.0, float(norms.max()))
    if new.any():  # a group entering: start along its dual direction
        g = Xa[:, new].T @ (Y * alpha0 * s[:, None])
        W[new] = 1e-8 * g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
    inside = L.astype(np.float64)
    start = inside.copy()
    start[mi, mc] = alpha0[mi, mc]
    g0 = Xa.T @ (Y * start * s[:, None])  # the stationarity sums at the starting multipliers
    keys = np.concatenate([Xa[mi], mc[:, None], Y[mi, mc][:, None]], axis=1)
    _, rep, member = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    member = member.ravel()
    ri, rc, m = mi[rep], mc[rep], len(rep)
    weight = np.bincount(member, weights=s[mi], minlength=m) * Y[ri, rc]  # each tie's summed s_i Y_ic
    k = a * C
    if k + m > MAX_PATTERN:
        return None
    # unknowns (W_A by group then output, the ties' shifts); equations (stationarity on A, margins)
    J = np.zeros((k + m, k + m))
    J[k + np.arange(m)[:, None], np.arange(a)[None, :] * C + rc[:, None]] = Y[ri, rc][:, None] * Xa[ri]
    J[np.arange(a)[:, None] * C + rc[None, :], k + np.arange(m)[None, :]] = weight[None, :] * Xa[ri].T
    eye = np.eye(C)
    idx = np.arange(a)[:, None] * C + np.arange(C)[None, :]
    scale = 1.0 + float(np.abs(g0).max())

    def residual(W, shift):
        """(F, norms, directions) at (W, shift); F is None where a group's coefficients vanish."""
        norms = np.linalg.norm(W, axis=1)
        if not np.all(norms > 0):
            return None, norms, None
        u = W / norms[:, None]
        g = g0.copy()
        np.add.at(g.T, rc, (weight * shift)[:, None] * Xa[ri])
        f_margin = np.einsum("mj,mj->m", Xa[ri], W[:, rc].T) * Y[ri, rc] - 1.0
        return np.concatenate([(g - reg * u).ravel(), f_margin]), norms, u

    shift = np.zeros(m)
    F, norms, u = residual(W, shift)
    if F is None:
        return None
    solver, fresh, last = None, False, np.inf
    for _ in range(NEWTON_STEPS):
        size = float(np.abs(F).max())
        slow = size > CHORD_RATE * last
        if size <= 1e-15 * scale or (slow and size <= ROUNDING * scale):
            break  # solved, or at the level of rounding
        if solver is None or slow:  # (re)factor at the current point
            J[:k, :k] = 0.0
            J[idx[:, :, None], idx[:, None, :]] = -(reg / norms)[:, None, None] * (
                eye[None] - u[:, :, None] * u[:, None, :])
            solver, fresh = _linear_solver(J), True
        last = size
        step = solver(-F)
        if step is None:
            return None
        t = 1.0
        for _ in range(BACKTRACK):  # halve the step until the residual shrinks
            trial = residual(W + t * step[:k].reshape(a, C), shift + t * step[k:])
            if trial[0] is not None and float(np.abs(trial[0]).max()) < size:
                break
            t /= 2.0
        else:
            if fresh:
                return None
            solver = None  # the kept factors no longer give a descent step: refactor here
            continue
        W, shift = W + t * step[:k].reshape(a, C), shift + t * step[k:]
        (F, norms, u), fresh = trial, False
    W_full = np.zeros((X.shape[1], C))
    W_full[groups] = W
    raw = inside.copy()
    raw[mi, mc] = alpha0[mi, mc] + shift[member]
    return W_full, np.clip(raw, 0.0, 1.0), raw


def _linear_solver(J):
    """A function solving J x = b (None when it fails): by J's LU factors, or by least squares
    where J is singular (degenerate patterns: more margin pairs than the active coefficients fix)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", sla.LinAlgWarning)
        try:
            lu = sla.lu_factor(J, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            lu = None
    J = J.copy()  # the caller updates its matrix in place
    norm = float(np.abs(J).sum(axis=1).max())

    def solve(b):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", sla.LinAlgWarning)
            try:
                if lu is not None:
                    x = sla.lu_solve(lu, b, check_finite=False)
                    if np.all(np.isfinite(x)) and (np.abs(J @ x - b).max()
                                                   <= BACKWARD * (norm * np.abs(x).max() + np.abs(b).max())):
                        return x
                if len(J) > LSTSQ_MAX:
                    return None
                x = sla.lstsq(J, b, check_finite=False)[0]
            except (np.linalg.LinAlgError, ValueError):
                return None
        return x if np.all(np.isfinite(x)) else None

    return solve


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
    return min(_cone_step(cone_x, cone_dx), max_step(vs, dvs))


class _Newton:
    """The rows' Newton system (D + B Theta B^T) dl = r of one iteration, solved through K.

    Each cone's block of Theta is a multiple of the identity plus a rank-one term, so
    K = K0 - V diag(c) V^T with K0 = blockdiag_c(X^T diag(1 / D_c) X + diag(a)): the outputs are
    coupled only through p rank-one terms. Factorised at one of three levels, each solution
    iteratively refined against the exact float64 operator, the next level taken when refinement
    misses ``SOLVE_TOL``: (0) K0's C blocks of p x p and the p x p capacitance matrix
    diag(1 / c) - V^T K0^-1 V of the Woodbury identity, in single precision; (1) all of K in
    single precision; (2) in double precision. Level 0 costs C + 1 factorisations of p x p
    instead of one of (p C) x (p C); near the optimum its subtraction loses accuracy."""

    def __init__(self, X, Y, D, Theta, coupling, level: int) -> None:
        self.X, self.Y, self.D, self.Theta = X, Y, D, Theta
        self.a, self.c, self.u = coupling  # Theta_j^-1 = a_j I - c_j u_j u_j^T
        self.factor(level)

    def factor(self, level: int) -> None:
        X, D = self.X, self.D
        p, C = X.shape[1], D.shape[1]
        self.level = level
        dtype = np.float64 if level == 2 else np.float32
        blocks = [syrk(np.asfortranarray(X * (1.0 / np.sqrt(D[:, c]))[:, None], dtype=dtype), rows=False)
                  for c in range(C)]
        j = np.arange(p)
        try:
            if level == 0:
                self._factor_coupled(blocks)
                return
            K = np.zeros((p * C, p * C), dtype=dtype)
            for c, block in enumerate(blocks):
                K[c * p : (c + 1) * p, c * p : (c + 1) * p] = block
                K[c * p + j, c * p + j] += self.a
            for c in range(C):
                for d in range(c, C):
                    K[c * p + j, d * p + j] -= self.c * self.u[:, c] * self.u[:, d]
            self.cf = cholesky(K)
        except np.linalg.LinAlgError:
            if level == 2:
                raise
            self.factor(level + 1)

    def _factor_coupled(self, blocks) -> None:
        """Level 0: the Cholesky factors of K0's blocks, Z_c = K0_c^-1 diag(u_c) on the groups whose
        coupling is not negligible, and the Cholesky factor of the capacitance matrix over those."""
        p = len(self.a)
        self.coupled = np.flatnonzero(self.c > COUPLED * self.a)
        u = self.u[self.coupled].astype(np.float32)
        cap = np.diag((1.0 / self.c[self.coupled]).astype(np.float32))
        self.blocks, self.Z = [], []
        for c, block in enumerate(blocks):
            block[np.diag_indices(p)] += self.a
            self.blocks.append(cholesky(block))
            E = np.zeros((p, len(self.coupled)), dtype=np.float32)
            E[self.coupled, np.arange(len(self.coupled))] = u[:, c]
            self.Z.append(sla.cho_solve(self.blocks[-1], E, check_finite=False))
            cap -= u[:, c, None] * self.Z[-1][self.coupled]
        self.cap = cholesky(cap) if len(self.coupled) else None

    def apply(self, v):
        """(D + B Theta B^T) v, exactly in float64."""
        u = self.X.T @ (self.Y * v)
        return self.D * v + self.Y * (self.X @ np.einsum("jcd,jd->jc", self.Theta, u))

    def _k_solve(self, rhs):
        """K^-1 rhs for rhs (p x C), in the factors' precision, returned in float64."""
        p, C = rhs.shape
        if self.level > 0:
            dtype = self.cf[0].dtype
            v = sla.cho_solve(self.cf, rhs.T.reshape(-1).astype(dtype), check_finite=False)
            return v.reshape(C, p).T.astype(np.float64)
        y = np.stack([sla.cho_solve(cf, rhs[:, c].astype(np.float32), check_finite=False)
                      for c, cf in enumerate(self.blocks)], axis=1)
        if self.cap is not None:
            u = self.u[self.coupled].astype(np.float32)
            z = sla.cho_solve(self.cap, np.sum(u * y[self.coupled], axis=1), check_finite=False)
            y += np.stack([Z @ z for Z in self.Z], axis=1)
        return y.astype(np.float64)

    def _solve_once(self, r):
        rD = r / self.D
        v = self._k_solve(self.X.T @ (self.Y * rD))
        return rD - self.Y * (self.X @ v) / self.D

    def solve(self, r):
        tol = SOLVE_TOL * float(np.abs(r).max())
        x, err = refine(self._solve_once, lambda r_, x_: r_ - self.apply(x_), r, tol, REFINE)
        if self.level < 2 and err > tol:
            self.factor(self.level + 1)
            return self.solve(r)
        return x


def _coupling(Theta):
    """(a, c, u) with Theta_j^-1 = a_j I - c_j u_j u_j^T: each cone's block of the squared
    Nesterov-Todd scaling is a multiple of the identity plus a rank-one term."""
    lam, vec = np.linalg.eigh(Theta)
    a = 1.0 / lam[:, 0]
    return a, np.maximum(a - 1.0 / lam[:, -1], 0.0), vec[:, :, -1]


class _Direction:
    """The Newton directions of one interior point iteration, for any right-hand side of the
    complementarity equations: (dxi, dsg, dxk, dl, dzxi, dzsg, dzk)."""

    def __init__(self, X, Y, v, residuals, level: int) -> None:
        self.X, self.Y, self.v = X, Y, v
        self.rp, self.rd_xi, self.rd_sg, self.rd_k = residuals
        self.Wn, self.Winv = _nt_scaling(v["xk"], v["zk"])
        self.W2 = self.Wn @ self.Wn
        self.lam_k = np.einsum("jab,jb->ja", self.Wn, v["zk"])
        self.th_xi, self.th_sg = v["xi"] / v["zxi"], v["sg"] / v["zsg"]
        Theta = np.ascontiguousarray(self.W2[:, 1:, 1:])
        self.system = _Newton(X, Y, self.th_xi + self.th_sg, Theta, _coupling(Theta), level)

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


def _iterates(X, Y, s, reg, start=None, max_iter: int = MAX_ITER):
    """The interior point iterates, each a dict of its variables with its relative gap ``gap`` and
    largest scaled residual ``feas``, from all ones or from ``start`` (an iterate's variables);
    ends after ``max_iter`` or when a Newton system fails."""
    n, p = X.shape
    C = Y.shape[1]
    cn = np.repeat((s * n)[:, None], C, axis=1)
    cw = float(reg * n)
    if start is None:
        v = dict(xi=np.ones((n, C)), sg=np.ones((n, C)), zxi=cn.copy(), zsg=np.ones((n, C)),
                 xk=np.zeros((p, C + 1)), zk=np.zeros((p, C + 1)), lam=np.zeros((n, C)))
        v["xk"][:, 0] = 1.0
        v["zk"][:, 0] = cw
    else:
        v = {k: start[k] for k in ("xi", "sg", "zxi", "zsg", "xk", "zk", "lam")}
    e = np.zeros((p, C + 1))
    e[:, 0] = 1.0
    deg = 2 * n * C + p
    level = 0 if start is None else start["level"]
    for _ in range(max_iter):
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
        yield dict(v, W=xk[:, 1:].copy(), cn=cn, gap=gap, feas=feas, level=level)
        mu = (float((xi * zxi).sum() + (sg * zsg).sum()) + float(np.einsum("ij,ij->", xk, zk))) / deg
        try:
            direction = _Direction(X, Y, v, (rp, rd_xi, rd_sg, rd_k), level)
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
        level = direction.system.level  # the level these systems needed: the next ones start there
        ap = 0.99 * _step([xi, sg], [dxi, dsg], xk, dxk)
        ad = 0.99 * _step([zxi, zsg], [dzxi, dzsg], zk, dzk)
        if min(ap, ad) < 1e-6:
            return  # the directions have lost their accuracy
        v = dict(xi=xi + ap * dxi, sg=sg + ap * dsg, xk=xk + ap * dxk,
                 zxi=zxi + ad * dzxi, zsg=zsg + ad * dzsg, zk=zk + ad * dzk, lam=lam + ad * dl)
