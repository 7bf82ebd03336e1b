"""Proximal Newton for the smooth losses on a working set of columns.

Each iteration minimises the quadratic model of the loss plus the penalty by compiled coordinate
descent (``_kernels``), takes an Armijo backtracking step on the true objective, and extrapolates
the iterates (Anderson acceleration); for penalties that are linear on each sign orthant (L1) a
damped Newton step on the support, taken from fresh curvature, with entries that would change
sign moved to zero (an active-set correction), finishes the job. The per-sample Hessians are
exact, including the coupled softmax one. The working-set block X may be float64 or uint8 (a
binary dictionary is never widened as a whole: products go through ``matrix.matmul``).
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.linalg.lapack import dpotrs as _potrs

from ._kernels import PROX_SIGNATURE, quadratic_model_cd
from .certificate import DualTracker, anderson
from .matrix import CHUNK_BYTES, matmul, rmatmul

# Coordinate-descent sweeps on the quadratic model per Newton iteration: enough to find the
# support, few enough that the model is rebuilt before its curvature goes stale.
MODEL_EPOCHS = 10
# With a support Newton step after them (orthant-linear penalties), the sweeps only need to find
# the support: fewer of them (the Newton step does the rest).
NEWTON_MODEL_EPOCHS = 3
# With an orthant-linear penalty (L1), the sweeps leave alone zero entries whose gradient at the
# model's centre is below this fraction of reg (a strong-rule-like screen: such an entry rarely
# enters within one model solve; the next iteration's gradient, and the duality gap over every
# entry, catch those that must).
SCREEN_FRACTION = 0.8
# Stopping tolerance of those sweeps, relative to the coefficient scale: the outer loop's dual gap
# decides convergence, so the model is solved essentially exactly.
MODEL_TOL = 1e-12
# Armijo sufficient-decrease fraction and the number of halvings before the step is given up.
ARMIJO_C = 1e-4
MAX_HALVINGS = 40
# A model decrease smaller than this (relative to the objective) is round-off: stop.
MIN_RELATIVE_DECREASE = 1e-16
# Objective changes below this, relative, are round-off (float64 sums over n samples).
ROUNDOFF = 1e-14
# Iterates kept for Anderson extrapolation.
ANDERSON_DEPTH = 5
# Step sizes tried for the support Newton candidate (projected onto W's orthant).
SUPPORT_NEWTON_STEPS = (1.0, 0.5, 0.25)
# Up to this many support coefficients the Hessian is formed and factorised; beyond it,
# conjugate gradients with Hessian-vector products (memory and O(s^3) cost).
DENSE_NEWTON_MAX = 1000
# Classes with more support entries than this get a diagonal preconditioner block (memory and
# the O(s^3) inverse); below it, the dense block (``ClassBlocks``).
CLASS_BLOCK_MAX = 2000
# A kept preconditioner block serves a class's later supports until more than this fraction of
# the class's entries lie outside it (they get their diagonal meanwhile); then it is re-formed.
BLOCK_REFORM_FRACTION = 0.1
# ... or once the class's sample curvature moved by more than this (relative norm) since it was
# formed: a block formed far from the current point preconditions badly.
CURVATURE_DRIFT = 0.003
MAX_CG = 50
# Conjugate gradients stop when the squared residual fell by this factor.
CG_REL_RESIDUAL_SQ = 1e-24
CG_FORCING = 0.1
# Diagonal added to the formed Hessian, relative to its mean diagonal, so Cholesky succeeds on a
# singular (rank-deficient support) Hessian.
HESSIAN_RIDGE = 1e-12
# A compact (uint8) working-set block whose float64 copy takes at most this many bytes is widened
# once: the Hessian-vector products of conjugate gradients then run on it directly instead of
# widening a block at a time for every product. Larger blocks stay compact (memory).
WIDEN_BYTES = 256 * 2**20
# Levenberg-Marquardt damping of the support Newton step: this factor times the norm of the model
# gradient on the support is added to the Hessian's diagonal. The softmax Hessian is singular
# along "the same shift for every class" of a row, where the L1 term alone is linear: undamped,
# the step there is unbounded and the projected candidate useless (near-separable data stalled
# on it). The damping vanishes with the gradient, so the local convergence stays fast.
NEWTON_DAMPING = 0.3
# The same factor for supports small enough to factorise (``DENSE_NEWTON_MAX``): the exact step
# with its active-set rounds needs less damping, and the undamped end comes sooner (scikit-learn's
# digits path: about 3 times fewer Newton steps than at 0.3; see docs/design/convex.md).
DENSE_NEWTON_DAMPING = 0.03
# A support Hessian whose support block (n x s) has at most this many entries is formed from the
# whole block at once, the classes masked afterwards: on small problems the per-class blocking
# costs more in Python than it saves in arithmetic.
SMALL_HESSIAN_ENTRIES = 2**16
# Rounds of the active-set correction: entries whose Newton value would change sign are fixed
# at zero and the step re-solved on the others (same Hessian, a smaller factorisation).
ACTIVE_SET_ROUNDS = 3


_KERNEL_PROX: dict = {}


def _kernel_prox(prox):
    """A penalty's proximal operator as a compiled C callback for ``quadratic_model_cd``: numba
    resolves a jitted-function argument on every call (tens of microseconds, which shows on small
    problems), a callback's address once."""
    callback = _KERNEL_PROX.get(prox)
    if callback is None:
        callback = _KERNEL_PROX[prox] = numba.cfunc(PROX_SIGNATURE, cache=True)(prox.py_func)
    return callback


def prox_newton(X, Y, W, fit, pen, reg, tol_abs, max_iter=2000, epochs=MODEL_EPOCHS, depth=ANDERSON_DEPTH):
    """Working-set problem by proximal Newton + coordinate descent, with Anderson acceleration.

    Each iteration runs a few coordinate-descent epochs on the quadratic model (exact for the
    squared loss) and a backtracking line search; every ``depth`` iterations the last iterates
    are extrapolated (Anderson acceleration of CD, Bertrand & Massias 2021) and the result kept
    if it lowers the objective, which cures most of the slowness of CD on correlated columns.
    Stops when the working-set duality gap is below ``tol_abs``.
    """
    n = X.shape[0]
    if pen.orthant_linear:
        epochs = min(epochs, NEWTON_MODEL_EPOCHS)
    none_screened = np.zeros((W.shape[0], 1 if pen.group else W.shape[1]), dtype=bool)

    def screen(W, XtU):
        # entries the sweeps skip while zero: (L1) a gradient below SCREEN_FRACTION of reg
        if not pen.orthant_linear or SCREEN_FRACTION <= 0:
            return none_screened
        return np.ascontiguousarray((W == 0) & (np.abs(XtU) < SCREEN_FRACTION * reg))
    X_cd = X  # the sweeps read a compact (uint8) block as it is: less memory traffic than float64
    if X.dtype != np.float64 and 8 * X.size <= WIDEN_BYTES:
        X = np.asfortranarray(X, dtype=np.float64)
    W = np.array(W, dtype=np.float64)
    Z = matmul(X, W)
    tracker = DualTracker(fit, pen, reg, Y)
    coupled = fit.coupled
    objective = lambda Z_, W_: fit.value(Z_, Y) + reg * pen.value(W_)  # noqa: E731
    history = [W]
    newton_cache: dict = {}  # the support Newton step's reusable pieces (``support_newton``)
    newton_ok = False  # the last iteration's support Newton step was a full step on its support
    obj = objective(Z, W)
    for _ in range(max_iter):
        G, H = fit.grad_hess(Z, Y)
        U = G / n
        XtU = rmatmul(X, U)
        if obj - tracker.update(U, lambda V: rmatmul(X, V), XtU) <= tol_abs:
            break
        # the sweeps are skipped after a full Newton step only while no zero entry violates its
        # optimality condition (|x_j^T u_c| <= reg): an entry that must enter needs them
        newton_ok = newton_ok and not np.any((np.abs(XtU) > reg) & (W == 0))
        Hm = fit.model_curvature(Z, H)
        stalled = moved = False
        if not newton_ok:
            dW = np.zeros_like(W)
            R = np.zeros_like(Z)
            quadratic_model_cd(_kernel_prox(pen.prox), pen.params, X_cd, np.ascontiguousarray(G),
                               np.ascontiguousarray(Hm), W, dW, R, reg, pen.group, coupled, epochs, MODEL_TOL,
                               screen(W, XtU))
            decrease = float(np.sum(G * R)) / n + reg * (pen.value(W + dW) - pen.value(W))
            # a model decrease at round-off level: coordinate descent is done, the Newton step may not be
            stalled = decrease >= -MIN_RELATIVE_DECREASE * max(1.0, abs(obj))
            t = 1.0
            for _ in range(0 if stalled else MAX_HALVINGS):
                Wn, Zn = W + t * dW, Z + t * R
                new = objective(Zn, Wn)
                if new <= obj + ARMIJO_C * t * decrease:
                    W, Z, obj, moved = Wn, Zn, new, True
                    break
                t *= 0.5
            else:
                stalled = True
        newton_ok = False
        if pen.orthant_linear:  # Newton step on the support with the signs fixed (exact for squared)
            if moved:  # fresh curvature at the new point
                G, H = fit.grad_hess(Z, Y)
                Hm = fit.model_curvature(Z, H)
            W_sn = support_newton(X, G, Hm, W, W, reg, coupled, cache=newton_cache,
                                  XtG=None if moved else XtU)
            if W_sn is not None:
                # projected step: entries whose sign would flip stop at zero, so the candidate
                # stays in W's orthant, where the L1 term is linear; backtrack if it does not help
                for step in SUPPORT_NEWTON_STEPS:
                    cand = W + step * (W_sn - W)
                    cand[np.sign(cand) != np.sign(W)] = 0.0
                    Z_c = matmul(X, cand)
                    new = objective(Z_c, cand)
                    # once coordinate descent has stalled, a change at round-off level is a
                    # tie, and the Newton point is kept (it polishes what CD cannot resolve)
                    polish = stalled and new <= obj + ROUNDOFF * abs(obj)
                    if new < obj or polish:
                        stalled = stalled and new >= obj - ROUNDOFF * abs(obj)
                        # a full step: the next iteration goes straight to Newton (the sweeps
                        # return when a step fails or an entry outside the support must enter)
                        newton_ok = step == 1.0 and not stalled
                        W, Z, obj = cand, Z_c, new
                        break
        if stalled:
            break
        history = (history + [W])[-(depth + 1):]
        if len(history) == depth + 1:
            W_acc = anderson(history)
            if W_acc is not None:
                Z_acc = matmul(X, W_acc)
                new = objective(Z_acc, W_acc)
                if new < obj:
                    W, Z, obj = W_acc, Z_acc, new
                history = [W]
    return W


def support_newton(X, G, H, W0, W, reg, coupled, max_cg=MAX_CG, dense_max=None, damping=None,
                   cache: dict | None = None, XtG=None):
    """Minimiser of the L1 quadratic model (built at W0) over the support of W with its signs fixed.

    Once coordinate descent has found the support, this solve finishes the job in one step (exactly
    for the squared loss). Up to ``dense_max`` (default ``DENSE_NEWTON_MAX``) support coefficients
    the Hessian is formed and factorised (2 n s^2 flops; CD alone crawls here because binary
    columns share one dominant direction); beyond that, conjugate gradients (``pcg``) with float32
    Hessian-vector products on the support's columns, preconditioned by the per-class diagonal
    blocks of the Hessian (``ClassBlocks``). Both keep the coupled softmax Hessian
    (diag(p) - p p^T per sample) exact, damped by ``damping`` times the model gradient's norm (by
    default ``DENSE_NEWTON_DAMPING`` when factorised, ``NEWTON_DAMPING`` otherwise). In the dense
    case, entries whose new value would change sign are set to zero and the step re-solved on the
    rest (``ACTIVE_SET_ROUNDS``). ``cache`` (a dict kept by the caller across Newton steps) holds
    the float32 block of the support's columns (reused while they stay the same), the
    preconditioner (reused while the support stays the same) and the ``ClassBlocks`` that later
    supports draw on; ``XtG``, when the caller has it, is X^T G / n. The caller keeps the result
    only if it lowers the true objective.
    """
    n = X.shape[0]
    mask = W != 0
    if not mask.any():
        return None

    def hess_vec(V):
        R = matmul(X, V)
        HR = H * R - H * np.sum(H * R, axis=1, keepdims=True) if coupled else H * R
        return rmatmul(X, HR) / n * mask

    # gradient of the model at W: G taken at W0 plus curvature times (W - W0)
    grad = (rmatmul(X, G) / n if XtG is None else XtG) + reg * np.sign(W)
    if np.any(W != W0):
        grad += hess_vec(W - W0)
    grad *= mask
    rows, cls = np.nonzero(mask)
    dense = len(rows) <= (DENSE_NEWTON_MAX if dense_max is None else dense_max)
    if damping is None:
        damping = DENSE_NEWTON_DAMPING if dense else NEWTON_DAMPING
    mu = damping * float(np.linalg.norm(grad))
    if dense:
        hess = support_hessian(X, H, rows, cls, coupled)
        out = W.copy()
        out[rows, cls] = active_set_newton(hess, grad[rows, cls], W[rows, cls], mu)
        return out
    # conjugate gradients on the support's columns only, preconditioned by the Hessian's
    # per-class diagonal blocks
    cols = np.flatnonzero(mask.any(axis=1))
    ms = mask[cols]
    if cache is None:
        cache = {}
    if not ("cols" in cache and np.array_equal(cache["cols"], cols)):
        # the float32 copy of the support's columns, made once per set of support columns
        cache.update(cols=cols, X=np.asfortranarray(X[:, cols], dtype=np.float32))
    if not ("mask" in cache and np.array_equal(cache["mask"], mask)):
        # the preconditioner, once per support: later Newton steps on the same support reuse it
        # (the curvature changes little near the optimum); a new support reuses the blocks
        # already formed (``ClassBlocks``)
        blocks = cache.setdefault("blocks", ClassBlocks())
        Hs = H * (1.0 - H) if coupled else H  # the per-class diagonal blocks' sample curvature
        cache.update(mask=mask, precondition=blocks.preconditioner(cache["X"], Hs, mask, mu, rows=cols))
    Xs = cache["X"]
    H32 = H.astype(np.float32)

    def hess_vec_s(V):
        # float32 products: the step only has to be a good descent direction (the gradient it
        # corrects, and every objective and certificate, stay float64), at half the memory traffic
        R = Xs @ V.astype(np.float32)
        HR = H32 * R - H32 * np.sum(H32 * R, axis=1, keepdims=True) if coupled else H32 * R
        return (Xs.T @ HR).astype(np.float64) / n * ms

    step = pcg(hess_vec_s, grad[cols], mu, cache["precondition"], max_cg)
    out = W.copy()
    out[cols] -= step
    return out


def pcg(hess_vec, grad, mu, precondition, max_cg=MAX_CG, rtol=None):
    """Preconditioned conjugate gradients for (hess + mu I) step = grad, stopped inexactly when
    the residual falls below ``rtol`` times |grad|; by default rtol = min(CG_FORCING,
    sqrt(|grad|)) (Eisenstat-Walker forcing: it tightens as the gradient vanishes)."""
    step = np.zeros_like(grad)
    r = grad.copy()
    z = precondition(r)
    d = z.copy()
    rr = float(np.sum(r * r))
    rz = float(np.sum(r * z))
    eta = min(CG_FORCING, float(np.sqrt(np.sqrt(rr)))) if rtol is None else rtol
    stop = max(CG_REL_RESIDUAL_SQ, eta * eta) * max(rr, 1e-300)
    for _ in range(max_cg):
        if rr <= stop or rz <= 0:
            break
        Hd = hess_vec(d) + mu * d
        dHd = float(np.sum(d * Hd))
        if dHd <= 0:
            break
        a = rz / dHd
        step += a * d
        r -= a * Hd
        rr = float(np.sum(r * r))
        z = precondition(r)
        rz_new = float(np.sum(r * z))
        d = z + (rz_new / rz) * d
        rz = rz_new
    return step


def class_preconditioner(X, Hs, mask, mu):
    """The inverse of the Hessian's per-class diagonal blocks, A_c^T diag(Hs_c) A_c / n + mu I
    with A_c the columns of X where ``mask[:, c]``, as a function of a residual (p, C)
    (``ClassBlocks``, formed afresh)."""
    return ClassBlocks().preconditioner(X, Hs, mask, mu)


class ClassBlocks:
    """The Hessian's per-class diagonal blocks A_c^T diag(Hs_c) A_c / n, kept for reuse as the
    preconditioner (their inverses, damped by mu) of conjugate gradients on successive supports.

    The blocks carry the correlation between a class's columns (binary columns share one
    dominant direction, which makes plain conjugate gradients crawl); only softmax's coupling
    between classes is left to the iterations. They are formed in float32 (a preconditioner
    needs no more) a block of rows at a time. Forming one (n s_c^2) costs far more than
    factorising it (s_c^3 / 3), and successive Newton steps change the support by a few
    entries, so a kept block serves the next supports: entries that left the support are
    dropped from it (a principal sub-block), entries that joined get their diagonal (a valid,
    cruder preconditioner for them), and the result is inverted with the current damping mu.
    A class's block is formed afresh, at the current curvature, once more than
    ``BLOCK_REFORM_FRACTION`` of its entries lie outside it or its curvature moved by more than
    ``CURVATURE_DRIFT`` (relative norm) since it was formed. A class with more than
    ``CLASS_BLOCK_MAX`` entries keeps its diagonal only.
    """

    def __init__(self) -> None:
        self.kept: dict[int, tuple] = {}  # c -> (column ids, block, curvature it was formed at)
        self.formed = 0  # blocks formed (counted by tests)

    @staticmethod
    def _gram(X, h, idx, diagonal=False):
        """A^T diag(h) A / n (or its diagonal) for the columns idx of X, in float32 a block of
        rows at a time."""
        n = X.shape[0]
        acc = np.zeros(len(idx) if diagonal else (len(idx), len(idx)), dtype=np.float32)
        step = max(1, CHUNK_BYTES // (4 * max(1, len(idx))))
        for a in range(0, n, step):
            A = np.asarray(X[a : a + step, idx], dtype=np.float32)
            if diagonal:
                acc += (A * A).T @ h[a : a + step]
            else:
                Aw = A * np.sqrt(h[a : a + step])[:, None]
                acc += Aw.T @ Aw
        return acc.astype(np.float64) / n

    def _block(self, X, h, c, idx, pos):
        """(ids, block): the block of class c on the entries of idx (at columns pos of X) that it
        holds, formed afresh when too many of idx lie outside the kept one."""
        kept = self.kept.get(c)
        if kept is not None:
            ids, blk, h0 = kept
            inside = np.isin(ids, idx)
            if (len(idx) - int(inside.sum()) <= BLOCK_REFORM_FRACTION * len(idx)
                    and np.linalg.norm(h - h0) <= CURVATURE_DRIFT * np.linalg.norm(h0)):
                return ids[inside], blk[np.ix_(inside, inside)]
        self.kept[c] = idx, blk, h = idx, self._gram(X, h, pos), h
        self.formed += 1
        return idx, blk.copy()  # the caller adds its damping to what it gets

    def preconditioner(self, X, Hs, mask, mu, rows: np.ndarray | None = None):
        """(hess_c + mu I)^-1 per class on the entries of ``mask`` (p, C), as a function of a
        residual (len(rows), C). ``rows``: the columns of the working set that X holds (X is then
        the support's own block, e.g. its float32 copy; default: X holds all p of them). Blocks
        are kept by working-set column, so they serve later supports with other columns."""
        rows = np.arange(mask.shape[0]) if rows is None else rows
        parts = []
        for c in range(mask.shape[1]):
            idx = rows[np.flatnonzero(mask[rows, c])]
            if len(idx) == 0:
                continue
            h = np.asarray(Hs[:, c], dtype=np.float32)
            ids = idx[:0]
            if len(idx) <= CLASS_BLOCK_MAX:
                ids, blk = self._block(X, h, c, idx, np.searchsorted(rows, idx))
                ridge = HESSIAN_RIDGE * max(1.0, float(np.trace(blk)) / len(ids))
                blk[np.diag_indices(len(ids))] += ridge + mu
                try:
                    np.linalg.cholesky(blk)  # positive definite: its inverse preconditions the class
                    parts.append((c, np.searchsorted(rows, ids), np.linalg.inv(blk)))
                except np.linalg.LinAlgError:  # not numerically definite: the diagonal below
                    ids = idx[:0]
            rest = idx[~np.isin(idx, ids)]
            if len(rest):
                diag = self._gram(X, h, np.searchsorted(rows, rest), diagonal=True)
                parts.append((c, np.searchsorted(rows, rest), 1.0 / np.maximum(diag + mu, 1e-300)))

        def apply(r):
            z = np.zeros_like(r)
            # numpy's BLAS only (the inverse, not scipy's triangular solves: see ``support_hessian``)
            for c, at, inv in parts:
                z[at, c] = inv @ r[at, c] if inv.ndim == 2 else inv * r[at, c]
            return z

        return apply


def active_set_newton(hess, grad, w, mu=0.0, rounds=ACTIVE_SET_ROUNDS):
    """New values of the support entries w: w - step with (hess + mu I) step = grad, where entries
    whose sign would change are fixed at zero (their step is w) and the rest re-solved, for up
    to ``rounds`` rounds. Signs that still change are left to the caller's projection.

    One Cholesky factorisation serves every round: fixing the entries z is the equality
    constraint step_z = w_z, whose multipliers solve a |z| x |z| system (B_zz lambda = w_z - x_z
    with B = hess^-1 E_z), so a round costs |z| triangular solves, not a new factorisation.
    """
    s = len(w)
    hess = hess.copy()
    diag = np.diag_indices(s)
    hess[diag] += HESSIAN_RIDGE * max(1.0, float(np.sum(hess[diag])) / s) + mu
    try:
        L = np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:  # not positive definite numerically: one least-squares step
        return w - np.linalg.lstsq(hess, grad, rcond=None)[0]
    x = _cho_solve(L, grad)
    new = w - x
    fixed = np.zeros(s, dtype=bool)
    for _ in range(rounds):
        flips = ~fixed & (np.sign(new) != np.sign(w))
        if not flips.any():
            break
        fixed |= flips
        z = np.flatnonzero(fixed)
        E = np.zeros((s, len(z)))
        E[z, np.arange(len(z))] = 1.0
        B = _cho_solve(L, E)
        lam = np.linalg.solve(B[z], w[z] - x[z])
        new = w - (x + B @ lam)
        new[z] = 0.0
    return new


def _cho_solve(L, b):
    """Solve L L^T x = b from numpy's lower Cholesky factor L (LAPACK's potrs directly: scipy's
    ``cho_solve`` wrapper costs more than the solve on the small systems of a Newton step)."""
    x, info = _potrs(L, b, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"potrs failed (info {info})")
    return x


def _spd_solve(A, b):
    """Solve A x = b for a symmetric positive (semi)definite A: Cholesky through numpy's LAPACK
    (see ``support_hessian`` on why numpy's), least squares when it is not numerically definite."""
    try:
        L = np.linalg.cholesky(A)
        return _cho_solve(L, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(A, b, rcond=None)[0]


def support_hessian(X, H, rows, cls, coupled):
    """The model Hessian on the support entries (rows[k], cls[k]), formed explicitly (s, s).

    hess[(j,c),(k,d)] = (1/n) sum_i x_ij x_ik (delta_cd H_ic - [coupled] H_ic H_id). Entries are
    grouped by class so the per-class blocks A_c^T diag(H_c) A_c are contiguous (the only non-zero
    blocks unless ``coupled``, where the softmax term -(A*P)^T (A*P) fills the rest). X is read
    a block of rows at a time and widened to float64 there only, so a uint8 X stays compact.
    The products go through numpy's BLAS/LAPACK, as the rest of the solver does: scipy may ship a
    second OpenBLAS with its own thread pool, and alternating between the two pools makes them
    contend on few cores (see docs/design/convex.md).
    """
    n = X.shape[0]
    s = len(rows)
    if n * s <= SMALL_HESSIAN_ENTRIES:  # small: both products on the whole block, classes masked
        A = np.asarray(X[:, rows], dtype=np.float64)
        AQ = A * H[:, cls]
        hess = (AQ.T @ A) * (cls[:, None] == cls[None, :])
        if coupled:
            hess -= AQ.T @ AQ
        return hess / n
    order = np.argsort(cls, kind="stable")
    rows_o, cls_o = rows[order], cls[order]
    hess = np.zeros((s, s))
    bounds = np.flatnonzero(np.diff(np.concatenate([[-1], cls_o, [-1]])))
    cols, col_of = np.unique(rows_o, return_inverse=True)  # each distinct column widened once
    step = max(1, CHUNK_BYTES // (8 * (len(cols) + 2 * s)))
    for a in range(0, n, step):
        B = np.asarray(X[a : a + step][:, cols], dtype=np.float64)
        A = np.asfortranarray(B[:, col_of])
        AQ = A * H[a : a + step, cls_o]
        if coupled:
            hess -= AQ.T @ AQ
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            hess[lo:hi, lo:hi] += AQ[:, lo:hi].T @ A[:, lo:hi]
    hess /= n
    out = np.empty((s, s))
    out[np.ix_(order, order)] = hess
    return out


def dense_newton_step(X, H, rows, cls, grad, coupled, mu=0.0):
    """Solve (hess + mu I) step = grad for the support entries (rows[k], cls[k]), with hess the
    model Hessian (``support_hessian``) plus its tiny ridge."""
    hess = support_hessian(X, H, rows, cls, coupled)
    s = len(rows)
    diag = np.diag_indices(s)
    hess[diag] += HESSIAN_RIDGE * max(1.0, float(np.sum(hess[diag])) / s) + mu
    return _spd_solve(hess, grad)
