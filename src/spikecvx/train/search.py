"""Witness search: grow the spike dictionary where the dual certificate says it is short.

The convex program is certified over the columns it was given. A neuron outside the dictionary
with binary feature column ``phi`` (one entry per dictionary row) would improve the objective
only if it violates its dual constraint at the solution's dual point ``U``:

    L1:        max_c |phi^T U[:, c]| > reg          group L1:  ||phi^T U||_2 > reg

``price`` computes these violations exactly (binary columns, all rows, float64). Candidate
generators propose neurons: fresh random witness networks (``RandomPool``), last-layer neurons
optimised by surrogate-gradient ascent on a smooth version of the pricing score
(``DualAscent``), and whole new branches trained by surrogate gradients against the current
outputs as an offset (``BoostBranch``). ``search`` alternates solve -> price -> add the violating
columns -> warm re-solve, and ``grown_network`` turns the result into a deployable ``GrownSNN``.
``fit_search`` is the method behind "cvx-search" / "sg-cvx-search": one search per head, returning
(``GrownSNN``, ``FitReport``); ``make_generators`` builds the generators by name.
Finding the most violating neuron is NP-hard in general, so the final certificate covers the
columns found plus the candidates searched, never every network (see docs/method.md).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_bool, check_choice, check_device, check_int, check_positive
from ..convex import DATAFITS, PENALTIES, reg_max, solve
from ..dictionary import sample_witnesses, spike_dictionary
from ..snn import ParallelSNN
from ..snn.grown import GrownSNN
from ..snn.lif import lif_scan
from .heads import Head, check_targets, default_heads, head_slices
from .reconstruct import reconstruct
from .report import Certificate, DictionarySize, FitReport, HeadFit, PathPoint, SearchFit, SearchRound
from .sg import sg_init

# ----------------------------------------------------------------------------------- pricing


def _check_columns(columns, rows: int, name: str = "columns") -> np.ndarray:
    A = np.asarray(columns)
    if A.dtype == bool:
        A = A.view(np.uint8)
    if A.dtype.kind not in "uif":
        raise TypeError(f"{name} must hold real numbers (0/1 spike features), got dtype {A.dtype}")
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, candidates), got shape {A.shape}")
    if A.shape[0] != rows:
        raise ValueError(f"{name} has {A.shape[0]} rows but the dual point has {rows} (one per "
                         f"dictionary row)")
    if A.dtype.kind == "f" and not np.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return A


def correlations(columns, dual_point: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """phi^T U for every candidate column phi: (m, C) in float64, in column chunks."""
    U = np.asarray(dual_point, dtype=np.float64)
    U = U.reshape(U.shape[0], -1)
    A = _check_columns(columns, U.shape[0])
    out = np.empty((A.shape[1], U.shape[1]))
    for a in range(0, A.shape[1], chunk):
        out[a : a + chunk] = A[:, a : a + chunk].astype(np.float64).T @ U
    return out


def price(columns, result, chunk: int = 4096) -> np.ndarray:
    """Violation of each candidate column's dual constraint, in units of reg: (m,) float64.

    L1: ``max_c |phi^T U_c| / reg``; group L1: ``||phi^T U||_2 / reg``, with ``U`` the feasible
    dual point whose value the result's certificate reports (``result.dual_point``), for every
    loss ("squared", "hinge", "hinge_ovr", "logistic", "softmax").

    Why this U. The dual of ``min_W F(DW) + reg * Omega(W)`` is ``max_U -F*(U)`` subject to
    ``Omega_dual(D^T U) <= reg``; adding columns adds constraints and leaves the objective. If no
    candidate exceeds 1, the same U is feasible for the dictionary enlarged by the candidates
    with the same dual value, and the current coef padded with zeros has the same primal value,
    so the reported gap bounds the suboptimality over current + candidate columns. Conversely,
    for the smooth losses the dual optimum is unique (``U* = grad F(D W*)``): at an exact
    solution a column priced above 1 gives a descent direction (its coefficient moved from 0
    against the sign of ``phi^T U_c``), so adding it strictly lowers the optimum. For the
    hinge losses (linear programs) this holds whenever the LP's dual optimum is unique.
    """
    U = getattr(result, "dual_point", None)
    if U is None:
        raise ValueError("result has no dual_point; pass a SolveResult from spikecvx.convex.solve")
    pen = PENALTIES[check_choice("result.penalty", result.penalty, PENALTIES)]
    reg = check_positive("result.reg", result.reg)
    return pen.row_dual_norms(correlations(columns, U, chunk)) / reg


# ------------------------------------------------------------------------- candidate sets


@dataclass
class CandidateSet:
    """Candidate neurons of one round.

    Attributes:
        columns: (rows, m) 0/1 features on the training rows (the dictionary's rows).
        source: how they were made ("random", "ascent", "branch", ...).
        net: the block whose last-layer neurons produce ``columns`` in order (None: columns
            without a network, which ``grown_network`` cannot deploy).
        val_columns: the same neurons' features on the validation rows (None: not available).
    """

    columns: np.ndarray
    source: str
    net: ParallelSNN | None = None
    val_columns: np.ndarray | None = None


@dataclass
class SearchContext:
    """What a generator sees: the data, the current solution and its outputs on the rows.

    Attributes:
        X, X_val: training and validation inputs (N, T, d_in) (X_val may be None).
        Y: the labels encoded by the loss's datafit, (rows, C).
        loss, penalty: the convex problem.
        result: the current ``SolveResult`` (its ``dual_point`` prices candidates).
        outputs: the current outputs ``D @ coef`` on the training rows, (rows, C).
        template: ``config()`` of the initial network (empty without one).
        seed, round: the search's seed and the round number (1, 2, ...), for seeding draws.
        base: the initial network (None when the search started from bare columns).
        deadline: ``time.perf_counter()`` value at which the search's time budget ends (None:
            no budget); iterative generators stop their steps there and return what they have.
    """

    X: torch.Tensor
    Y: np.ndarray
    loss: str
    penalty: str
    result: object
    outputs: np.ndarray
    template: dict
    X_val: torch.Tensor | None
    seed: int
    round: int
    base: ParallelSNN | None
    deadline: float | None = None

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline


def _features(net: ParallelSNN, X) -> np.ndarray:
    return spike_dictionary(net, X).matrix


def _finish(net: ParallelSNN, ctx: SearchContext, source: str) -> CandidateSet:
    cols = _features(net, ctx.X)
    val = None if ctx.X_val is None else _features(net, ctx.X_val)
    return CandidateSet(cols, source, net, val)


def _round_width(n: int, branches: int) -> int:
    return max(branches, int(math.ceil(n / branches)) * branches)


class RandomPool:
    """Fresh random witness networks: ``n`` last-layer neurons (Gaussian, scaled) per round.

    ``net_kwargs`` overrides the architecture (default: the initial network's); every round
    draws a new network from ``sample_witnesses`` with seed ``seed + round``.
    """

    source = "random"

    def __init__(self, n: int = 1000, kind: str = "standard", scale: float = 1.0,
                 net_kwargs: dict | None = None, seed: int = 1) -> None:
        self.n = check_int("n", n)
        self.kind, self.scale = kind, check_positive("scale", scale)
        self.net_kwargs, self.seed = net_kwargs, seed

    def __call__(self, ctx: SearchContext) -> CandidateSet:
        cfg = dict(ctx.template) | dict(self.net_kwargs or {})
        cfg["last_width"] = _round_width(self.n, cfg["branches"])
        net = ParallelSNN(**cfg, device=None if ctx.base is None else ctx.base.device)
        sample_witnesses(net, self.kind, self.scale, 7919 * self.seed + ctx.seed * 101 + ctx.round)
        return _finish(net, ctx, self.source)


def _trunk_input(trunk: ParallelSNN, X: torch.Tensor) -> torch.Tensor:
    """Input of the last LIF layer: the data (two-layer nets) or the spikes of layer L-2."""
    with torch.no_grad():
        x = trunk.check_input(X, 1)
        if len(trunk.hidden) == 1:
            return x
        return trunk.run_layers(x)[0][-2][0]


def _last_layer(trunk: ParallelSNN, h: torch.Tensor, w: torch.Tensor):
    """Differentiable last LIF layer of ``trunk``'s shape with weights ``w``: (spikes, mems)."""
    N, T, _ = h.shape
    K = trunk.branches
    if w.dim() == 2:
        cur = h @ w
    else:
        hk = h.reshape(N * T, K, -1).transpose(0, 1)
        cur = torch.bmm(hk, w).transpose(0, 1).reshape(N, T, -1)
    return lif_scan(cur, trunk.beta, trunk.threshold, trunk.reset, trunk.surrogate)


class DualAscent:
    """Last-layer neurons on a fixed trunk, optimised by ascent on a smooth pricing score.

    ``n`` neurons (one wide layer) start from Gaussian witnesses (``scale``) and take ``steps``
    Adam steps (learning rate ``lr * scale``) on ``sum_j score_j`` where ``score_j`` is the
    pricing score of the relaxed feature ``sigmoid((u_j - level) / tau_j)`` (u_j: the readout
    membrane, tau_j: ``temperature`` times its spread over the rows; the LIF dynamics use the
    trunk's surrogate; samples whose rows all have U = 0 are left out, as they add nothing to the
    score). ``restarts`` independent starts are stacked. ``fresh_trunk``: every round a new
    random trunk (Gaussian, ``scale``) of the initial architecture instead of a fixed one; such
    blocks do not share hidden layers when deployed. Every neuron then keeps the
    weights (start or end) whose exact binary column prices higher. ``trunk`` defaults to the
    initial network.
    """

    source = "ascent"

    def __init__(self, n: int = 512, steps: int = 40, lr: float = 0.05, temperature: float = 0.3,
                 restarts: int = 1, scale: float = 1.0, kind: str = "standard",
                 trunk: ParallelSNN | None = None, fresh_trunk: bool = False, seed: int = 2) -> None:
        self.n, self.steps = check_int("n", n), check_int("steps", steps, minimum=0)
        self.lr = check_positive("lr", lr)
        self.temperature = check_positive("temperature", temperature)
        self.restarts = check_int("restarts", restarts)
        self.scale, self.kind, self.trunk, self.seed = check_positive("scale", scale), kind, trunk, seed
        self.fresh_trunk = check_bool("fresh_trunk", fresh_trunk)
        self.source = "ascent-fresh" if fresh_trunk else "ascent"
        if fresh_trunk and trunk is not None:
            raise ValueError("pass either trunk or fresh_trunk=True, not both")

    def __call__(self, ctx: SearchContext) -> CandidateSet:
        trunk = self.trunk if self.trunk is not None else ctx.base
        if self.fresh_trunk:  # a new random trunk every round (the initial architecture)
            trunk = ParallelSNN(**ctx.template, dtype=ctx.base.dtype, device=ctx.base.device)
            sample_witnesses(trunk, self.kind, self.scale, 7919 * self.seed + ctx.seed * 101 + ctx.round + 1)
        K = trunk.branches
        net = ParallelSNN(**(trunk.config() | dict(last_width=_round_width(self.n * self.restarts, K))),
                          dtype=trunk.dtype, device=trunk.device)
        sample_witnesses(net, self.kind, self.scale, 7919 * self.seed + ctx.seed * 101 + ctx.round)
        with torch.no_grad():
            for a, b in zip(trunk.hidden[:-1], net.hidden[:-1]):
                b.copy_(a)
        U0 = np.asarray(ctx.result.dual_point, dtype=np.float64)
        N = ctx.X.shape[0]
        U0 = U0.reshape(N, -1, U0.reshape(U0.shape[0], -1).shape[1])  # (samples, steps, C)
        # rows with U = 0 add nothing to phi^T U: the ascent runs on the other samples only
        active = torch.as_tensor(np.flatnonzero(np.any(U0 != 0, axis=(1, 2))))
        h = _trunk_input(trunk, ctx.X[active])
        U = torch.as_tensor(U0[active.numpy()].reshape(-1, U0.shape[2]) / ctx.result.reg, dtype=h.dtype,
                            device=h.device)
        w0 = net.hidden[-1].detach().clone()
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr * self.scale)
        level = trunk.readout_bias if trunk.readout == "membrane" else trunk.threshold
        group = PENALTIES[ctx.penalty].group
        for _ in range(self.steps if len(active) else 0):
            if ctx.out_of_time():
                break
            _, u = _last_layer(trunk, h, w)
            u = u[:, -1] if trunk.readout_at == "last" else u.reshape(-1, u.shape[-1])
            tau = self.temperature * u.detach().std(dim=0).clamp_min(1e-6)
            S = torch.sigmoid((u - level) / tau).T @ U  # (m, C) smooth phi^T U / reg
            score = S.norm(dim=1) if group else S.abs().max(dim=1).values
            opt.zero_grad()
            (-score.sum()).backward()
            opt.step()
        cols0 = _features(net, ctx.X)
        with torch.no_grad():
            net.hidden[-1].copy_(w.detach())
        cols1 = _features(net, ctx.X)
        better = price(cols1, ctx.result) > price(cols0, ctx.result)  # per neuron (feature index)
        mask = torch.as_tensor(better, device=w0.device)
        mask = mask.reshape(1, -1) if w0.dim() == 2 else mask.reshape(K, 1, -1)
        with torch.no_grad():
            net.hidden[-1].copy_(torch.where(mask, w.detach(), w0))
        # a last-layer neuron's column depends on its own weights only: mix instead of recomputing
        cols = np.where(better[None, :], cols1, cols0)
        val = None if ctx.X_val is None else _features(net, ctx.X_val)
        return CandidateSet(cols, self.source, net, val)


def _offset_loss(loss: str, S: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Smooth training loss of outputs S (rows, C) against encoded labels Y: the binary hinge
    is trained with the logistic loss, one-vs-rest hinge with its per-class logistic version."""
    if loss in ("hinge", "logistic", "hinge_ovr"):
        return F.softplus(-Y * S).sum(dim=1).mean()
    if loss == "softmax":
        return -(Y * F.log_softmax(S, dim=1)).sum(dim=1).mean()
    return 0.5 * ((S - Y) ** 2).sum(dim=1).mean()


class BoostBranch:
    """A new branch (all its LIF layers) trained by surrogate gradients on the residual.

    A fresh ``ParallelSNN`` (``layers``, ``branches``, ``width``, ``last_width``; the other
    neuron parameters from the initial network) with the scaled SG init is trained for
    ``epochs`` Adam epochs on the loss of (current convex outputs + its own output): boosting
    with an offset, so it learns what the certified readout still gets wrong. Its readout is
    then discarded; its last-layer neurons are the candidates, priced exactly.
    """

    source = "branch"

    def __init__(self, layers: int = 3, branches: int = 1, width: int = 128, last_width: int = 256,
                 epochs: int = 10, lr: float = 3e-3, batch_size: int = 128, gain: float = 2.0,
                 seed: int = 3) -> None:
        self.arch = dict(layers=check_int("layers", layers, minimum=2),
                         branches=check_int("branches", branches), width=check_int("width", width),
                         last_width=check_int("last_width", last_width))
        self.epochs, self.batch_size = check_int("epochs", epochs), check_int("batch_size", batch_size)
        self.lr, self.gain, self.seed = check_positive("lr", lr), check_positive("gain", gain), seed

    def __call__(self, ctx: SearchContext) -> CandidateSet:
        seed = 7919 * self.seed + ctx.seed * 101 + ctx.round
        cfg = dict(ctx.template) | self.arch | dict(n_out=ctx.Y.shape[1])
        net = ParallelSNN(**cfg, device=None if ctx.base is None else ctx.base.device)
        sg_init(net, self.gain, seed)
        X = ctx.X.to(device=net.device, dtype=net.dtype)
        N, T = X.shape[0], X.shape[1]
        steps = 1 if net.readout_at == "last" else T
        Z = torch.as_tensor(ctx.outputs.reshape(N, steps, -1), dtype=net.dtype, device=net.device)
        Y = torch.as_tensor(ctx.Y.reshape(N, steps, -1), dtype=net.dtype, device=net.device)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        net.train()
        for _ in range(self.epochs):
            if ctx.out_of_time():
                break
            order = torch.randperm(N, generator=gen)
            for a in range(0, N, self.batch_size):
                idx = order[a : a + self.batch_size]
                out = net(X[idx]).reshape(len(idx), steps, -1)
                C = out.shape[-1]
                lossv = _offset_loss(ctx.loss, (Z[idx] + out).reshape(-1, C), Y[idx].reshape(-1, C))
                opt.zero_grad()
                lossv.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            net.readout_weight.zero_()
        return _finish(net, ctx, self.source)


# -------------------------------------------------------------------------------- the loop


@dataclass
class SearchResult:
    """Outcome of ``search``.

    Attributes:
        result: the final ``SolveResult`` (certified over ``dictionary``'s columns).
        dictionary: (rows, P) uint8 training features of the grown dictionary.
        val_dictionary: the same columns on the validation rows (None without validation data).
        blocks: the witness networks that contributed columns (block 0: the initial network).
        sources: how each block was made.
        column_block, column_neuron: (P,) block index and last-layer neuron of every column
            (block -1: a column without a network).
        log: one dict per round (see ``search``).
        kept_blocks: indices of the blocks with a neuron in the solution's support.
        searched: candidates priced over all rounds; ``best_violation``: the largest violation
            (in units of reg) of any of them at the final dual point.
        statement: the certificate in words.
    """

    result: object
    dictionary: np.ndarray
    val_dictionary: np.ndarray | None
    blocks: list
    sources: list
    column_block: np.ndarray
    column_neuron: np.ndarray
    log: list = field(default_factory=list)
    searched: int = 0
    best_violation: float = 0.0
    statement: str = ""
    kept_blocks: list = field(default_factory=list)

    @property
    def n_columns(self) -> int:
        return self.dictionary.shape[1]


def _keys(columns: np.ndarray) -> list[bytes]:
    packed = np.packbits(np.ascontiguousarray(columns.T, dtype=np.uint8), axis=1)
    return [r.tobytes() for r in packed]


def _score(loss: str, Z: np.ndarray, y_val: np.ndarray, classes) -> float:
    """Accuracy of outputs Z (rows, C) for classification losses; minus the MSE for squared."""
    if loss in ("hinge", "logistic"):
        return float(np.mean(np.where(Z[:, 0] >= 0, 1.0, -1.0) == np.asarray(y_val).reshape(-1)))
    if loss in ("hinge_ovr", "softmax"):
        return float(np.mean(np.asarray(classes)[np.argmax(Z, axis=1)] == np.asarray(y_val).reshape(-1)))
    Yv = np.asarray(y_val, dtype=np.float64).reshape(Z.shape[0], -1)
    return -float(np.mean((Z - Yv) ** 2))


def _outputs(D: np.ndarray, coef: np.ndarray) -> np.ndarray:
    W = coef.reshape(coef.shape[0], -1)
    Z = np.zeros((D.shape[0], W.shape[1]))
    nz = np.flatnonzero(np.any(W != 0, axis=1))
    if len(nz):
        Z = D[:, nz].astype(np.float64) @ W[nz]
    return Z


def search(X, y, net: ParallelSNN | None = None, generators: list | None = None, *,
           columns: np.ndarray | None = None, loss: str = "hinge", penalty: str = "l1",
           reg: float | None = None, reg_ratio: float = 0.01, X_val=None, y_val=None,
           max_rounds: int = 10, max_columns: int | None = None, max_seconds: float | None = None,
           max_add: int | None = None, tol: float = 1e-6, slack: float = 1e-9, seed: int = 0,
           verbose: bool = False) -> SearchResult:
    """Grow a dictionary by pricing candidate neurons against the dual certificate.

    Args:
        X, y: training inputs (N, T, d_in) and labels for ``loss``, one per dictionary row:
            (N,) for the "last" readout, (N, T) for "every" (flattened sample-major); for
            "squared", real targets (rows,) or (rows, C).
        net: the initial witness network (its de-duplicated features are the first columns;
            its architecture is the generators' default).
        generators: candidate generators (``RandomPool``, ``DualAscent``, ``BoostBranch`` or any
            callable ``(SearchContext) -> CandidateSet``), all run every round.
        columns: initial columns (rows, P) without a network, instead of ``net`` (for tests and
            enumerations; such columns cannot be deployed).
        loss, penalty, tol: as in ``spikecvx.convex.solve``.
        reg: regularisation (default ``reg_ratio * reg_max`` of the initial dictionary); fixed
            during the search, so every round solves the same problem over more columns.
        X_val, y_val: validation data, scored after every solve.
        max_rounds: pricing rounds. A round prices all candidates at the current solution; if
            none violates (> 1) the search stops certified over them, otherwise the violating
            distinct new columns (the ``max_add`` strongest) are added and the problem is
            re-solved warm (old coef padded with zeros). When a budget is then spent, a closing
            log entry (no candidates) describes the final solution.
        max_columns: dictionary size budget. max_seconds: wall-clock budget, counted from the
            start; no round begins that would end after it, judging by the last round's time,
            and the iterative generators (ascent steps, branch epochs) stop when it is spent.
        slack: a column violates when it prices above ``1 + slack`` (the dual point is scaled
            onto the constraint, so the dictionary's tight columns price 1 up to rounding).

    Returns:
        ``SearchResult``. Its log has one dict per round: the objective, gap, dictionary size and
        validation score of the solution the round prices against, candidates tried, max and
        median violation (units of reg), violating and added columns, and per source (``by_source``)
        the candidates tried, their max violation and the columns added.
        After the last round every searched candidate is priced again at the final dual point,
        so ``statement`` reads "certified over the N columns found; the best of M searched
        candidates violates by v x reg".
    """
    t0 = start = time.perf_counter()
    check_choice("loss", loss, DATAFITS)
    check_choice("penalty", penalty, PENALTIES)
    max_rounds = check_int("max_rounds", max_rounds, minimum=0)
    slack = check_positive("slack", slack, allow_zero=True)
    if max_columns is not None:
        check_int("max_columns", max_columns)
    if max_add is not None:
        check_int("max_add", max_add)
    if max_seconds is not None:
        check_positive("max_seconds", max_seconds)
    if (net is None) == (columns is None):
        raise ValueError("pass exactly one of net (an initial witness network) or columns")
    if (X_val is None) != (y_val is None):
        raise ValueError("X_val and y_val must be given together")
    if net is not None and X is None:
        raise ValueError("X (N, T, d_in) is required to build the dictionary of net")
    if net is not None:
        _refuse_recurrent(net, "net")
    generators = list(generators or [])
    for i, g in enumerate(generators):
        if not callable(g):
            raise TypeError(f"generators[{i}] must be callable(SearchContext) -> CandidateSet")
    Xt = torch.as_tensor(X) if X is not None else None
    Xv = torch.as_tensor(X_val) if X_val is not None else None
    yv = None if y_val is None else np.asarray(y_val).reshape(-1)
    if loss != "squared":  # per-step labels (N, T) become one label per (sample, step) row
        y = np.asarray(y).reshape(-1)
    Y, _ = DATAFITS[loss].encode(y)

    blocks, sources = [], []
    if net is not None:
        d = spike_dictionary(net, Xt, dedup=True)
        D = d.matrix
        col_block = np.zeros(D.shape[1], dtype=np.int64)
        col_neuron = np.asarray(d.representative, dtype=np.int64)
        Dv = None if Xv is None else _features(net, Xv)[:, d.representative]
        blocks.append(net)
        sources.append("initial")
        template = {k: v for k, v in net.config().items()}
    else:
        D = _check_columns(columns, Y.shape[0]).astype(np.uint8)
        if not np.isin(D, (0, 1)).all():
            raise ValueError("columns must be 0/1")
        col_block = -np.ones(D.shape[1], dtype=np.int64)
        col_neuron = np.arange(D.shape[1], dtype=np.int64)
        Dv = None
        template = {}
    known = {k: j for j, k in enumerate(_keys(D))}
    if reg is None:
        reg = check_positive("reg_ratio", reg_ratio) * reg_max(D, y, loss, penalty)
    reg = check_positive("reg", reg)

    def solve_now(warm):
        return solve(D, y, loss, penalty, reg=reg, tol=tol, warm_start=warm)

    res = solve_now(None)
    log = []
    searched_packed, searched_n = [], 0
    for rnd in range(1, max_rounds + 1):
        round_start = time.perf_counter() - t0
        Z = _outputs(D, res.coef)
        ctx = SearchContext(Xt, Y, loss, penalty, res, Z, template, Xv, seed, rnd,
                            blocks[0] if blocks else None,
                            None if max_seconds is None else start + max_seconds)
        sets = [g(ctx) for g in generators]
        entry = dict(round=rnd, objective=res.primal, gap=res.gap, columns=D.shape[1],
                     candidates={}, by_source={}, solve_seconds=res.time)
        if Dv is not None:
            entry["val_score"] = _score(loss, _outputs(Dv, res.coef), yv, res.classes)
        pool, pool_val, pool_src = [], [], []
        for s in sets:
            cols = _check_columns(s.columns, D.shape[0], f"{s.source} candidates").astype(np.uint8)
            entry["candidates"][s.source] = entry["candidates"].get(s.source, 0) + cols.shape[1]
            pool.append(cols)
            pool_val.append(s.val_columns)
            pool_src.append(s)
            searched_packed.append(np.packbits(cols, axis=0))
            searched_n += cols.shape[1]
        if not pool:
            log.append(entry)
            break
        viol = [price(c, res) for c in pool]
        allv = np.concatenate(viol)
        entry["max_violation"] = float(allv.max()) if len(allv) else 0.0
        entry["median_violation"] = float(np.median(allv)) if len(allv) else 0.0
        # distinct, new, violating columns, strongest first
        picks = []
        for si, v in enumerate(viol):
            for j in np.flatnonzero(v > 1.0 + slack):
                picks.append((float(v[j]), si, int(j)))
        picks.sort(key=lambda t: -t[0])
        budget = max_add if max_add is not None else len(picks)
        if max_columns is not None:
            budget = min(budget, max(0, max_columns - D.shape[1]))
        chosen = []
        keys_cache = {}
        for _, si, j in picks:
            if len(chosen) >= budget:
                break
            if si not in keys_cache:
                keys_cache[si] = _keys(pool[si])
            k = keys_cache[si][j]
            if k in known:
                continue
            known[k] = D.shape[1] + len(chosen)
            chosen.append((si, j))
        entry["violating"] = len(picks)
        entry["added"] = len(chosen)
        for si, s in enumerate(pool_src):
            st = entry["by_source"].setdefault(s.source, dict(tried=0, max_violation=0.0, added=0))
            st["tried"] += pool[si].shape[1]
            if len(viol[si]):
                st["max_violation"] = max(st["max_violation"], float(viol[si].max()))
            st["added"] += sum(1 for s_, _ in chosen if s_ == si)
        elapsed = time.perf_counter() - t0
        entry["seconds"] = elapsed
        log.append(entry)
        if verbose:
            print(f"round {rnd}: objective {res.primal:.6g} gap {res.gap:.2e} columns {D.shape[1]} "
                  f"max viol {entry['max_violation']:.3g} added {len(chosen)}"
                  + (f" val {entry['val_score']:.4f}" if 'val_score' in entry else ""))
        if not picks or not chosen:
            break
        # add the chosen columns, with the block each comes from
        new_cols, new_val, new_block, new_neuron = [], [], [], []
        for si in sorted({si for si, _ in chosen}):
            js = np.array([j for s_, j in chosen if s_ == si])
            s = pool_src[si]
            new_cols.append(pool[si][:, js])
            if s.net is not None:
                blocks.append(s.net)
                sources.append(s.source)
                new_block.append(np.full(len(js), len(blocks) - 1))
            else:
                new_block.append(np.full(len(js), -1))
            new_neuron.append(js)
            if Dv is not None:
                if pool_val[si] is None:
                    Dv = None
                else:
                    new_val.append(pool_val[si][:, js])
        D = np.ascontiguousarray(np.concatenate([D] + new_cols, axis=1))
        if Dv is not None:
            Dv = np.ascontiguousarray(np.concatenate([Dv] + new_val, axis=1))
        col_block = np.concatenate([col_block] + new_block)
        col_neuron = np.concatenate([col_neuron] + new_neuron)
        coef = res.coef.reshape(res.coef.shape[0], -1)
        warm = np.concatenate([coef, np.zeros((D.shape[1] - coef.shape[0], coef.shape[1]))])
        res = solve_now(warm.reshape((-1,) if res.coef.ndim == 1 else warm.shape))
        now = time.perf_counter() - t0
        # the next round (generators, pricing and the re-solve) is estimated to take as long as this one
        over_time = max_seconds is not None and now + (now - round_start) > max_seconds
        full = max_columns is not None and D.shape[1] >= max_columns
        if rnd == max_rounds or over_time or full:  # a closing entry: the final solution, not priced
            log.append(dict(round=rnd + 1, objective=res.primal, gap=res.gap, columns=D.shape[1],
                            candidates={}, added=0, solve_seconds=res.time, seconds=now,
                            **({} if Dv is None else dict(val_score=_score(loss, _outputs(Dv, res.coef),
                                                                            yv, res.classes)))))
            break

    best = 0.0
    for packed in searched_packed:  # every searched candidate, at the final dual point
        cols = np.unpackbits(packed, axis=0, count=D.shape[0])
        if cols.shape[1]:
            best = max(best, float(price(cols, res).max()))
    kept = _kept_blocks(col_block, res.coef)
    statement = (f"certified over the {D.shape[1]} columns found (objective {res.primal:.6g}, gap "
                 f"{res.gap:.2e}); the best of {searched_n} searched candidates violates by "
                 f"{best:.3g} x reg")
    if best <= 1.0 + slack and searched_n:
        statement += " (<= 1: the gap also certifies the solution over every searched candidate)"
    return SearchResult(res, D, Dv, blocks, sources, col_block, col_neuron, log, searched_n, best,
                        statement, kept)


def _kept_blocks(col_block: np.ndarray, coef: np.ndarray) -> list[int]:
    W = np.asarray(coef).reshape(len(col_block), -1)
    return sorted({int(b) for b in col_block[np.any(W != 0, axis=1)]})


# -------------------------------------------------------------------------------- deployment


def _pruned_block(net: ParallelSNN, neurons: np.ndarray, rows: np.ndarray, prune: bool) -> ParallelSNN:
    """Copy of ``net`` with readout rows ``rows`` on last-layer ``neurons``, pruned as
    ``reconstruct`` prunes (other neurons dropped; fillers read out 0)."""
    coef = np.zeros((net.last_width, rows.shape[1]))
    coef[neurons] = rows
    return reconstruct(net, coef, prune=prune)


def _same_trunk(a: ParallelSNN, b: ParallelSNN) -> bool:
    """Whether two blocks differ only in their last layer (same architecture and hidden weights
    below it), so their last-layer neurons can live side by side in one network."""
    ca, cb = (dict(n.config(), last_width=0) for n in (a, b))
    if ca != cb or a.dtype != b.dtype:
        return False
    return all(torch.equal(x, y) for x, y in zip(a.hidden[:-1], b.hidden[:-1]))


def _merge(blocks: list[ParallelSNN]) -> ParallelSNN:
    """One network holding the last-layer neurons of blocks with the same trunk, branch by branch."""
    first = blocks[0]
    K = first.branches

    def per_branch(w: torch.Tensor) -> torch.Tensor:  # (K, fan_in, per) view of a last layer
        return w.reshape(w.shape[0], K, -1).transpose(0, 1) if w.dim() == 2 else w

    lasts = [per_branch(b.hidden[-1].detach()) for b in blocks]
    reads = [b.readout_weight.detach().reshape(K, -1, b.n_out) for b in blocks]
    w = torch.cat(lasts, dim=2)
    r = torch.cat(reads, dim=1).reshape(-1, first.n_out)
    out = ParallelSNN(**(first.config() | dict(last_width=int(w.shape[0] * w.shape[2]))),
                      dtype=first.dtype, device=first.device)
    with torch.no_grad():
        for src, dst in zip(first.hidden[:-1], out.hidden[:-1]):
            dst.copy_(src)
        last = out.hidden[-1]
        last.copy_(w.transpose(0, 1).reshape(last.shape) if last.dim() == 2 else w)
        out.readout_weight.copy_(r)
    return out


def _block_list(sr: SearchResult, W: np.ndarray, prune: bool) -> tuple[list, list]:
    """Pruned copies of the blocks with a neuron in the support of W (P, n_out), readout = W."""
    support = np.any(W != 0, axis=1)
    if np.any(sr.column_block[support] < 0):
        raise ValueError("the solution uses columns without a network (search started from columns)")
    blocks, sources = [], []
    used = sorted({int(b) for b in sr.column_block[support]}) or [0]
    for b in used:
        sel = (sr.column_block == b) & (support if prune else True)
        blocks.append(_pruned_block(copy.deepcopy(sr.blocks[b]), sr.column_neuron[sel], W[sel], prune))
        sources.append(sr.sources[b])
    return blocks, sources


def _merged(blocks: list, sources: list) -> GrownSNN:
    """GrownSNN with the blocks that share a trunk merged into one network each."""
    groups: list[list[int]] = []
    for i, b in enumerate(blocks):
        for g in groups:
            if _same_trunk(blocks[g[0]], b):
                g.append(i)
                break
        else:
            groups.append([i])
    return GrownSNN([_merge([blocks[i] for i in g]) for g in groups],
                    ["+".join(sorted({sources[i] for i in g})) for g in groups])


def grown_network(sr: SearchResult, prune: bool = True, merge: bool = True) -> GrownSNN:
    """Deployable network of a search: every block with a kept neuron, pruned to the support,
    with the convex coef as readout rows; its output is ``dictionary @ coef`` on the training
    rows (one column per neuron: duplicate patterns were never added). With ``merge``, blocks
    that share a trunk (e.g. every ``DualAscent`` block and the initial network) become one
    network, so the shared hidden layers are deployed once."""
    W = np.asarray(sr.result.coef, dtype=np.float64).reshape(sr.n_columns, -1)
    blocks, sources = _block_list(sr, W, prune)
    return _merged(blocks, sources) if merge else GrownSNN(blocks, sources)


# ---------------------------------------------------------------------------------- method


GENERATORS = ("ascent", "ascent-fresh", "random", "branch")


def make_generators(names, candidates: int = 512, steps: int = 30, scale: float = 1.0,
                    seed: int = 0) -> list:
    """Candidate generators by name, ``candidates`` neurons each per round.

    "ascent": ``DualAscent`` (``steps`` ascent steps) on the initial trunk; "ascent-fresh": the
    same on a fresh random trunk every round; "random": ``RandomPool`` (witness ``scale``);
    "branch": ``BoostBranch`` (a 3-layer branch with ``candidates`` last-layer neurons).
    """
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
        raise TypeError(f"generators must be a non-empty list of names among {GENERATORS}, got {names!r}")
    candidates, steps = check_int("candidates", candidates), check_int("steps", steps, minimum=0)
    out = []
    for name in names:
        check_choice("generators", name, GENERATORS)
        if name == "ascent":
            out.append(DualAscent(candidates, steps=steps, seed=seed + 2))
        elif name == "ascent-fresh":
            out.append(DualAscent(candidates, steps=steps, fresh_trunk=True, seed=seed + 5))
        elif name == "random":
            out.append(RandomPool(candidates, scale=scale, seed=seed + 1))
        else:
            out.append(BoostBranch(width=max(2, candidates // 2), last_width=candidates, epochs=5,
                                   seed=seed + 3))
    return out


def _head_fit(h: Head, sr: SearchResult, val: float | None) -> HeadFit:
    res = sr.result
    point = PathPoint(reg=res.reg, val_acc=float("nan") if val is None else val, gap=res.gap,
                      rel_gap=res.rel_gap, nnz_rows=res.n_nonzero_rows, seconds=res.time)
    search_fit = SearchFit(rounds=tuple(SearchRound.of(e) for e in sr.log), columns=sr.n_columns,
                           searched=sr.searched, best_violation=sr.best_violation, statement=sr.statement)
    return HeadFit(name=h.name, loss=h.loss, certificate=Certificate.of(res), path=(point,),
                   val_acc=point.val_acc, solution=res, search=search_fit)


def _refuse_recurrent(net: ParallelSNN, name: str) -> None:
    """The generators and the deployed GrownSNN carry feed-forward trunks only."""
    if net.recurrent:
        raise ValueError(f"{name}: witness search runs feed-forward networks; recurrent=True is "
                         "not supported by its generators")


def fit_search(X_train, y_train, X_val, y_val, net_kwargs: dict, loss: str | None = None,
               penalty: str = "l1", heads: list[Head] | None = None, generators: list | None = None,
               reg_ratio: float = 0.03, max_rounds: int = 8, max_columns: int | None = None,
               max_seconds: float | None = None, max_add: int | None = 500,
               witness: str = "standard", witness_scale: float = 1.0,
               witness_net: ParallelSNN | None = None, seed: int = 0, tol: float = 1e-6,
               progress: bool = False,
               device: str | torch.device | None = None) -> tuple[GrownSNN, FitReport]:
    """CVX grown by witness search; returns (``GrownSNN``, ``FitReport``), like ``fit_cvx``.

    The initial witnesses are Gaussian (``witness``, ``witness_scale``) or, with
    ``witness_net``, the hidden weights of a trained network of the same shape (SG-CVX grown).
    Every head gets its own search at ``reg_ratio * reg_max``; ``generators`` default to
    ``DualAscent(min(1000, last_width))`` on the initial trunk. ``max_seconds`` is the budget of
    the whole fit: each head's search gets an equal share of what is left when it starts. The
    heads' blocks are deployed in one ``GrownSNN`` whose outputs are the heads side by side
    (blocks sharing a trunk merged). Each head's ``HeadFit.search`` records its rounds;
    ``progress`` prints one line per round.
    """
    t0 = time.perf_counter()
    dev = check_device(device)
    net_kwargs = dict(net_kwargs) if dev is None else dict(net_kwargs, device=dev)
    X_train, X_val = torch.as_tensor(X_train), torch.as_tensor(X_val)
    heads = list(heads) if heads is not None else default_heads(y_train, loss)
    ys = check_targets(heads, y_train, X_train.shape[0], "y_train")
    ys_val = check_targets(heads, y_val, X_val.shape[0], "y_val")
    if max_seconds is not None:
        check_positive("max_seconds", max_seconds)
    n_out = sum(h.size for h in heads)
    net = ParallelSNN(d_in=X_train.shape[-1], n_out=n_out, seed=seed, **net_kwargs)
    _refuse_recurrent(net, "net_kwargs")
    if witness_net is not None:
        _refuse_recurrent(witness_net, "witness_net")
        if len(witness_net.hidden) != len(net.hidden) or any(
                a.shape != b.shape for a, b in zip(witness_net.hidden, net.hidden)):
            raise ValueError("witness_net must have the architecture of net_kwargs (same hidden shapes)")
        with torch.no_grad():
            for a, b in zip(witness_net.hidden, net.hidden):
                b.copy_(a.to(dtype=b.dtype, device=b.device))
    else:
        sample_witnesses(net, witness, witness_scale, seed)
    if generators is None:
        generators = [DualAscent(min(1000, net.last_width), seed=seed + 2)]
    all_blocks, all_sources, fits = [], [], {}
    rows = columns = 0
    neurons = net.last_width  # the initial witnesses, shared by every head
    for i, (h, sl, y, yv) in enumerate(zip(heads, head_slices(heads), ys, ys_val)):
        ytr = np.eye(h.size)[y.reshape(-1).astype(int)] if h.loss == "squared" else y
        yva = np.eye(h.size)[yv.reshape(-1).astype(int)] if h.loss == "squared" else yv
        budget = None
        if max_seconds is not None:  # an equal share of what is left
            budget = max(1e-3, (max_seconds - (time.perf_counter() - t0)) / (len(heads) - i))
        if progress:
            print(f"witness search, head {h.name!r} ({h.loss}, {penalty})")
        sr = search(X_train, ytr, net, generators, loss=h.loss, penalty=penalty, reg_ratio=reg_ratio,
                    X_val=X_val, y_val=yva, max_rounds=max_rounds, max_columns=max_columns,
                    max_seconds=budget, max_add=max_add, tol=tol, seed=seed, verbose=progress)
        coef = sr.result.coef.reshape(sr.n_columns, -1)
        W = np.zeros((sr.n_columns, n_out))
        if h.binary or h.loss == "squared" or coef.shape[1] == h.size:
            W[:, sl] = coef
        else:  # classes absent from training get zero columns
            W[:, sl.start + np.asarray(sr.result.classes, dtype=int)] = coef
        blocks, sources = _block_list(sr, W, prune=True)
        all_blocks += blocks
        all_sources += sources
        val = sr.log[-1].get("val_score") if sr.log else None
        if val is None and sr.val_dictionary is not None:
            val = _score(h.loss, _outputs(sr.val_dictionary, sr.result.coef), yva if h.loss == "squared"
                         else yv.reshape(-1), sr.result.classes)
        fits[h.name] = _head_fit(h, sr, val)
        initial = int(np.sum(sr.column_block == 0))
        rows = sr.dictionary.shape[0]
        neurons += sr.n_columns - initial  # the neurons this head's search added
        columns += sr.n_columns
    model = _merged(all_blocks, all_sources)
    scores = [f.val_acc for f in fits.values() if not math.isnan(f.val_acc)]
    report = FitReport(method="cvx-search" if witness_net is None else "sg-cvx-search", heads=fits,
                       val_score=float(np.mean(scores)) if scores else None,
                       dictionary=DictionarySize(rows=rows, neurons=neurons, distinct=columns),
                       neurons_kept=int(sum(f.certificate.nonzero_rows for f in fits.values())),
                       time_total=time.perf_counter() - t0)
    return model, report
