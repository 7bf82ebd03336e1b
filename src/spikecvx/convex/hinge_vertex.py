"""The optimal vertex of hinge + L1, identified by an interior point method and repaired by a
small dense simplex instead of pivoted to by an LP solver.

For one output over distinct rows (weights s summing to 1, labels y, A = y * X), the LP

    min_w  sum_i s_i max(0, 1 - A_i w) + reg * ||w||_1

has a vertex solution fixed by its support S (with signs) and its margin rows M (A_i w = 1),
|S| = |M|: given S and M it is two dense solves (the margin equations A_MS w_S = 1 and the
support equations for alpha). On dense columns an LP solver's cost is finding S and M (thousands
of simplex pivots, or a crossover after its interior point method).

``identify_ipm`` finds them with a dense primal-dual interior point method (Mehrotra's
predictor-corrector, one Cholesky factorisation of a normal matrix per iteration): once the
iterate's relative gap is below ``ATTEMPT_GAP``, its complementarity ratios rank the coefficients
and rows, the top-ranked ones form a square pattern, and ``hinge_repair.repair`` pivots that basis
to the optimal vertex with a pivot budget of about one iteration's cost. The first vertex the
repair certifies (relative gap at most ``accept`` over every row and column, in float64, with the
certificate's formula) is returned, so the method never converges to full accuracy, and a wrong
pattern costs one more iteration, never a wrong answer. On large problems the later iterations
run on a screened problem (``SCREEN``): the columns and rows the iterate ranks first, the other
rows fixed at alpha = 0 or 1, so each normal matrix is several times smaller; their patterns are
still repaired and certified on the whole problem, which brings back any column or row the
screening left out, and the whole problem resumes when the screened iterations do not certify.
``hinge_fast`` falls back to its LP when
no vertex certifies, and hands the identified basis to the LP for the next value of a path.
Measurements: docs/design/hinge.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from ._dense import blas_limit, cholesky, max_step, refine, syrk
from .hinge_repair import repair
from .matrix import DesignMatrix

ATTEMPT_GAP = 1e-3  # relative gap of the interior point iterate below which patterns are repaired
REFINE = 4  # iterative refinement steps per Newton system
SOLVE_TOL = 1e-8  # relative residual a Newton system's solution must reach
DROP = 1e-10  # row-space normal matrices leave out the columns with thw below this (relative)
# once the iterate's gap is below ATTEMPT_GAP, its ranked pattern (``_ranked``) is repaired to the
# optimal vertex by the primal simplex of ``hinge_repair`` with at most REPAIR_PIVOTS pivots (about
# the cost of one iteration); when the iterations end without a certified vertex, once more with
# FINAL_PIVOTS
REPAIR_PIVOTS, FINAL_PIVOTS = 30, 300
MAX_REPAIRS = 8  # repairs during the iterations before the identifier gives up
RANK = 0.01  # ranked patterns: as many columns and rows as there are with complementarity above this
# screening: at iteration i (a key, counted from 0) the iterations go on with the restricted problem
# (``_restrict``) of the columns and rows ``_screened`` by SCREEN[i] = (column, row) multiples of
# the coefficients whose ratio passes RANK (None: all). Patterns of the restricted iterates are
# repaired on the full problem, from relative gap SCREEN_GAP; after SCREEN_REPAIRS failed repairs,
# SCREEN_ITERATIONS iterations, or Newton systems that fail, the full problem resumes from the
# iterate where screening began. Problems of fewer than SCREEN_MIN entries are not screened. The
# multiples: where the optimal columns and rows rank in the iterates (docs/design/hinge.md).
SCREEN = {4: (None, 2.0), 6: (1.6, 1.4)}
SCREEN_GAP, SCREEN_REPAIRS, SCREEN_ITERATIONS, SCREEN_MIN = 1e-4, 3, 15, 10**6


@dataclass
class Identified:
    """Outcome of ``identify_ipm``: when ``ok``, the certified vertex (w, alpha), its relative gap
    over the distinct rows and its pattern (S, sign, M, L); the work done either way (interior
    point iterations, those on a screened problem, repairs and their simplex pivots)."""

    w: np.ndarray
    alpha: np.ndarray
    ok: bool
    rel_gap: float = np.inf
    iterations: int = 0
    pattern: tuple | None = None
    pivots: int = 0  # primal simplex pivots of the repairs (``hinge_repair``)
    repairs: int = 0
    screened: int = 0  # iterations on a screened (restricted) problem
    unscreened: bool = False  # the screened iterations failed and the full problem resumed


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
            K = syrk((A[:, keep] * np.sqrt(self.thw[keep])).astype(dtype, copy=False), rows=True)
            K[np.diag_indices(n)] += self.dn
        else:
            K = syrk((A * (1.0 / np.sqrt(self.dn))[:, None]).astype(dtype, copy=False), rows=False)
            K[np.diag_indices(p)] += 1.0 / self.thw
        self.cf = cholesky(K)

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
        x, err = refine(self._solve_once, self._residual, r, tol, REFINE)
        if self.level < 2 and err > tol:
            self.factor(self.level + 1)
            return self.solve(r)
        return x


def _ranked(X, Z):
    """Square pattern (S, M) of an interior point iterate: the k coefficients and the k rows
    ranked most likely basic by their complementarity ratios (value / dual slack for a
    coefficient, slack / dual for a row's margin), k the smaller of the numbers of coefficients
    and rows whose ratio passes ``RANK`` (a generous count: the repair removes the surplus)."""
    (wp, wm, xi, sg), (zp, zm, zxi, zsg) = X, Z
    ratio = np.maximum(wp / zp, wm / zm)
    margin = np.maximum(xi / zxi, sg / zsg)
    k = min(int(np.count_nonzero(ratio > RANK)), int(np.count_nonzero(margin < 1 / RANK)))
    return np.sort(np.argsort(-ratio)[:k]), np.sort(np.argsort(margin)[:k])


def _try_repair(A, s, reg, S, M, accept, budget, out: Identified) -> bool:
    """Repair pattern (S, M) with at most ``budget`` pivots; a certified vertex becomes ``out``'s
    answer (True)."""
    got = repair(A, s, reg, S, M, accept, budget)
    out.pivots += got.pivots
    out.repairs += 1
    if not got.ok:
        return False
    out.w, out.alpha, out.rel_gap, out.pattern, out.ok = got.w, got.alpha, got.rel_gap, got.pattern, True
    return True


def _screened(X, Z, keep: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The columns and rows an interior point iterate keeps when screened (``SCREEN``): the
    ``keep[0] * k`` coefficients and the ``keep[1] * k`` rows ranked first by their
    complementarity ratios (as in ``_ranked``), k the number of coefficients whose ratio passes
    ``RANK``, None keeping all."""
    (wp, wm, xi, sg), (zp, zm, zxi, zsg) = X, Z
    ratio = np.maximum(wp / zp, wm / zm)
    margin = np.maximum(xi / zxi, sg / zsg)
    k = np.count_nonzero(ratio > RANK)
    kc = len(wp) if keep[0] is None else min(len(wp), int(np.ceil(keep[0] * k)))
    kr = len(xi) if keep[1] is None else min(len(xi), int(np.ceil(keep[1] * k)))
    return np.sort(np.argsort(-ratio)[:kc]), np.sort(np.argsort(margin)[:kr])


def _restrict(A0, cn, cw, X, Z, lam, c, r):
    """The interior point problem on columns c and rows r, with the iterate's values there.

    Left-out columns are fixed at w = 0. A left-out row is fixed where its multiplier is: at
    alpha = 1 (lam above half its cap: the row is inside the margin, its hinge is the linear
    s_i (1 - A_i w), which moves reg into the costs of wp and wm and adds a constant) or at
    alpha = 0 (outside: the row drops out). Returns A, cn, (costs of wp, wm), X, Z, lam of the
    restricted problem and the constant of its objective."""
    inside = np.ones(len(cn), dtype=bool)
    inside[r] = False
    inside &= lam > cn / 2
    g = A0[inside][:, c].T @ cn[inside]
    A = np.asfortranarray(A0[r][:, c])
    X = [X[0][c], X[1][c], X[2][r], X[3][r]]
    Z = [Z[0][c], Z[1][c], Z[2][r], Z[3][r]]
    return A, cn[r], (cw[0][c] - g, cw[1][c] + g), X, Z, lam[r], float(cn[inside].sum())


def _one_blas_thread():
    """Context that runs the BLAS on one thread, for the whole identifier (its factorisations
    included). The identifier calls both numpy's and scipy's BLAS, two OpenBLAS copies with a
    thread pool each: with two threads each, the idle threads of one copy spin while the other
    works, so on the dense benchmark the identifier costs 9.3 s of CPU with two threads and 0.9 s
    with one. Measured on 2 cores only (docs/design/hinge.md); more cores are not measured."""
    return blas_limit(1)


def dense_rows(Du: DesignMatrix, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """A = y * X over the rows of positive weight, dense float64 in Fortran order (as the column
    block comes): the matrix ``identify_ipm`` and ``repair_pattern`` work on, built once per
    output when both run."""
    rows = np.flatnonzero(s > 0)
    D = Du if len(rows) == len(s) else DesignMatrix(Du.D[rows])
    return y[rows, None] * D.columns(np.arange(Du.p))


def identify_ipm(Du: DesignMatrix, y: np.ndarray, s: np.ndarray, reg: float, accept: float,
                 max_iter: int = 40, A: np.ndarray | None = None) -> Identified:
    """``_identify`` on the rows of positive weight (rows of weight 0 change nothing; their alpha
    is 0 and they are in no pattern), with the BLAS on one thread (``_one_blas_thread``).
    A: ``dense_rows(Du, y, s)`` when the caller has it."""
    with _one_blas_thread():
        rows = np.flatnonzero(s > 0)
        A = dense_rows(Du, y, s) if A is None else A
        return _on_all_rows(_identify(A, s[rows], reg, accept, max_iter), rows, len(s))


def repair_pattern(Du: DesignMatrix, y: np.ndarray, s: np.ndarray, reg: float, S, M, accept: float,
                   budget: int, A: np.ndarray | None = None) -> Identified:
    """The vertex repaired from pattern (S, M) alone, without interior point iterations (the
    last value's vertex along a path: its basis stays primal feasible for any reg), on the rows
    of positive weight, with the BLAS on one thread. A: ``dense_rows(Du, y, s)`` when the
    caller has it."""
    with _one_blas_thread():
        rows = np.flatnonzero(s > 0)
        where = np.full(len(s), -1)
        where[rows] = np.arange(len(rows))
        M = where[np.asarray(M, dtype=np.int64)]
        A = dense_rows(Du, y, s) if A is None else A
        out = Identified(np.zeros(Du.p), np.zeros(len(rows)), False)
        _try_repair(A, s[rows], reg, np.asarray(S, dtype=np.int64), M[M >= 0], accept, budget, out)
        return _on_all_rows(out, rows, len(s))


def _on_all_rows(out: Identified, rows: np.ndarray, n: int) -> Identified:
    """``out`` of the rows ``rows`` moved onto all n rows (alpha 0 elsewhere)."""
    if len(rows) == n:
        return out
    alpha = np.zeros(n)
    alpha[rows] = out.alpha
    out.alpha = alpha
    if out.pattern is not None:
        S, sign, M, L = out.pattern
        out.pattern = (S, sign, rows[M], rows[L])
    return out


def _identify(A0: np.ndarray, s: np.ndarray, reg: float, accept: float, max_iter: int) -> Identified:
    """The vertex of hinge + L1 for one output (A0 = y * X over distinct rows, weights s summing
    to 1), by a dense primal-dual interior point method on

        min  s^T xi + reg 1^T (wp + wm)   s.t.  A (wp - wm) + xi - sg = 1,   wp, wm, xi, sg >= 0

    (A = A0, scaled by n) whose row multipliers are lam = n s alpha. At the iterations named in
    ``SCREEN`` the problem is restricted (``_screened``, ``_restrict``). Once the iterate's
    relative gap is below ``ATTEMPT_GAP`` (``SCREEN_GAP`` on a restricted problem), each new
    ranked pattern is repaired on the whole problem (``_try_repair``);
    returns the first vertex that certifies with relative gap <= ``accept`` (``ok``), or ``ok``
    False after ``max_iter`` iterations, ``MAX_REPAIRS`` repairs on the whole problem, or when its
    Newton systems fail (then after one longer repair of the last iterate's pattern)."""
    n, p = A0.shape
    Af, sf = A0, s  # the full problem: the repairs work on it
    k = float(n)  # objective scaled so that s is about 1
    cn = s * k
    cw = (np.full(p, reg * k), np.full(p, reg * k))  # costs of wp and wm
    X = [np.ones(p), np.ones(p), np.ones(n), np.ones(n)]  # wp, wm, xi, sg
    Z = [cw[0].copy(), cw[1].copy(), cn.copy(), np.ones(n)]  # their dual slacks
    lam = np.zeros(n)
    C, R, const = np.arange(p), np.arange(n), 0.0  # the columns and rows iterated on
    out = Identified(np.zeros(p), np.zeros(n), False)
    tried: set = set()
    best_res, level, ever_near, rest = np.inf, 0, False, False
    screen = SCREEN if Af.size >= SCREEN_MIN else {}
    saved, since, fails = None, 0, 0  # the full problem where screening began; screened work
    for it in range(max_iter):
        out.iterations = it + 1
        if it in screen:
            c, r = _screened(X, Z, screen[it])
            if len(c) < p or len(r) < n:
                if saved is None:
                    saved = (A0, cn, cw, X, Z, lam, level, best_res)
                A0, cn, cw, X, Z, lam, add = _restrict(A0, cn, cw, X, Z, lam, c, r)
                C, R, const = C[c], R[r], const + add
                n, p = A0.shape
                level, best_res = 0, np.inf
        since += saved is not None
        out.screened += saved is not None
        wp, wm, xi, sg = X
        u = A0.T @ lam
        rp = 1.0 - A0 @ (wp - wm) - xi + sg
        rd = [cw[0] - u - Z[0], cw[1] + u - Z[1], cn - lam - Z[2], lam - Z[3]]
        mu = sum(float(x @ z) for x, z in zip(X, Z)) / (2 * p + 2 * n)
        pobj = float(cw[0] @ wp + cw[1] @ wm) + float(cn @ xi) + const
        dobj = float(lam.sum()) + const
        res = float(np.abs(rp).max())
        best_res = min(best_res, res)
        failed = res > max(1e3 * best_res, 1e-3)  # the Newton systems have lost their accuracy
        near = abs(pobj - dobj) <= (ATTEMPT_GAP if saved is None else SCREEN_GAP) * max(1.0, abs(pobj))
        ever_near |= near
        if near and not rest and not failed:
            S, M = _ranked(X, Z)
            S, M = C[S], R[M]
            key = (S.tobytes(), M.tobytes())
            if key not in tried:  # a pattern repaired once with the same budget fails again
                tried.add(key)
                if _try_repair(Af, sf, reg, S, M, accept, REPAIR_PIVOTS, out):
                    return out
                fails += saved is not None
                failed = out.repairs - fails >= MAX_REPAIRS
                rest = True  # no repair at the iteration after one that failed
        else:
            rest = False
        if saved is not None and (failed or fails >= SCREEN_REPAIRS or since >= SCREEN_ITERATIONS):
            A0, cn, cw, X, Z, lam, level, best_res = saved  # the full problem resumes
            n, p = A0.shape
            C, R, const, saved, screen, rest = np.arange(p), np.arange(n), 0.0, None, {}, False
            out.unscreened = True
            continue
        if failed:
            break
        th = [x / z for x, z in zip(X, Z)]
        thw, dn = th[0] + th[1], th[2] + th[3]
        try:
            system = _NormalSystem(A0, thw, dn, level)
        except np.linalg.LinAlgError:
            if saved is not None:  # the restricted problem's Newton systems fail: the full one resumes
                since = SCREEN_ITERATIONS
                continue
            break

        def direction(rc, th=th, rd=rd, system=system, rp=rp, X=X, Z=Z, A0=A0):
            h = [t * (c / x - d) for t, c, x, d in zip(th, rc, X, rd)]
            dl = system.solve(rp - (h[2] - h[3]) - A0 @ (h[0] - h[1]))
            du = A0.T @ dl
            dx = [th[0] * du + h[0], -th[1] * du + h[1], th[2] * dl + h[2], -th[3] * dl + h[3]]
            dz = [(c - z * d) / x for c, z, d, x in zip(rc, Z, dx, X)]
            return dx, dl, dz

        try:  # a factorisation that fails at a higher precision level ends the identifier (LP fallback)
            dx, dl, dz = direction([-x * z for x, z in zip(X, Z)])  # affine predictor
            ap, ad = max_step(X, dx), max_step(Z, dz)
            mu_aff = sum(float((x + ap * a) @ (z + ad * b))
                         for x, a, z, b in zip(X, dx, Z, dz)) / (2 * p + 2 * n)
            sig = (mu_aff / mu) ** 3
            dx, dl, dz = direction([sig * mu - x * z - a * b for x, z, a, b in zip(X, Z, dx, dz)])
        except np.linalg.LinAlgError:
            if saved is not None:  # the restricted problem's Newton systems fail: the full one resumes
                since = SCREEN_ITERATIONS
                continue
            break
        ap, ad = 0.995 * max_step(X, dx), 0.995 * max_step(Z, dz)
        X = [x + ap * a for x, a in zip(X, dx)]
        Z = [z + ad * b for z, b in zip(Z, dz)]
        lam = lam + ad * dl
        level = max(level, system.level)
    if ever_near:  # the iterations ended without a certified vertex: a longer repair
        S, M = _ranked(X, Z)
        _try_repair(Af, sf, reg, C[S], R[M], accept, FINAL_PIVOTS, out)
    return out
