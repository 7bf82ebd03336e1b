"""Typed fit results: what every training method returns next to its network.

A ``FitReport`` holds one ``HeadFit`` per output head (the certificate of the chosen convex solve
and its regularisation path), the chosen hyper-parameters and the grid trials, the dictionary
sizes, the timings, the SG details of SG stages and the reports of nested stages (the SG stage of
SG-CVX, the fine-tuning stage of CVX-SG / SG-SG). A head fitted by witness search carries a
``SearchFit``: one ``SearchRound`` per pricing round and the final certificate statement.
``to_dict`` / ``from_dict`` convert to and from plain JSON-serialisable dicts; the solver's
coefficient arrays are not part of the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..convex import SolveResult


@dataclass(frozen=True)
class Certificate:
    """Optimality certificate of one convex solve: objective values, duality gap, solver effort."""

    primal: float
    dual: float
    gap: float
    rel_gap: float
    reg: float
    converged: bool
    n_iter: int
    time: float
    loss: str
    penalty: str
    nonzero_rows: int
    penalty_params: dict = field(default_factory=dict)  # e.g. the elastic net's l1_ratio

    @classmethod
    def of(cls, result: SolveResult) -> Certificate:
        return cls(**result.certificate())

    def to_dict(self) -> dict:
        return dict(primal=self.primal, dual=self.dual, gap=self.gap, rel_gap=self.rel_gap, reg=self.reg,
                    converged=self.converged, n_iter=self.n_iter, time=self.time, loss=self.loss,
                    penalty=self.penalty, nonzero_rows=self.nonzero_rows,
                    **({"penalty_params": dict(self.penalty_params)} if self.penalty_params else {}))


@dataclass(frozen=True)
class PathPoint:
    """One solve of a regularisation path: its reg, validation accuracy, gap, support and time."""

    reg: float
    val_acc: float
    gap: float
    rel_gap: float
    nnz_rows: int
    seconds: float

    def to_dict(self) -> dict:
        return dict(reg=self.reg, val_acc=self.val_acc, gap=self.gap, rel_gap=self.rel_gap,
                    nnz_rows=self.nnz_rows, seconds=self.seconds)


@dataclass(frozen=True)
class SearchRound:
    """One pricing round of a witness search, about the solution it priced against.

    Attributes:
        round: 1, 2, ...
        objective, gap: primal value and duality gap of that solution (over ``columns``).
        columns: dictionary size of that solution.
        val_score: its validation accuracy (None without validation data).
        candidates: candidates priced in this round, by source ("ascent", "random", ...).
        max_violation, median_violation: over those candidates, in units of reg (None for the
            closing entry, which describes the final solution after the last columns were added).
        violating, added: candidates priced above 1, and the distinct new ones added.
        seconds: time since the search started, at the end of this round's pricing.
    """

    round: int
    objective: float
    gap: float
    columns: int
    val_score: float | None = None
    candidates: dict = field(default_factory=dict)
    max_violation: float | None = None
    median_violation: float | None = None
    violating: int = 0
    added: int = 0
    seconds: float = 0.0

    @classmethod
    def of(cls, entry: dict) -> SearchRound:
        """From one entry of ``spikecvx.train.search.SearchResult.log``."""
        return cls(round=int(entry["round"]), objective=float(entry["objective"]), gap=float(entry["gap"]),
                   columns=int(entry["columns"]), val_score=entry.get("val_score"),
                   candidates={str(k): int(v) for k, v in entry.get("candidates", {}).items()},
                   max_violation=entry.get("max_violation"), median_violation=entry.get("median_violation"),
                   violating=int(entry.get("violating", 0)), added=int(entry.get("added", 0)),
                   seconds=float(entry.get("seconds", 0.0)))

    def to_dict(self) -> dict:
        return dict(round=self.round, objective=self.objective, gap=self.gap, columns=self.columns,
                    val_score=self.val_score, candidates=dict(self.candidates),
                    max_violation=self.max_violation, median_violation=self.median_violation,
                    violating=self.violating, added=self.added, seconds=self.seconds)

    @classmethod
    def from_dict(cls, d: dict) -> SearchRound:
        return cls(**{k: (dict(v) if k == "candidates" else v) for k, v in d.items()})


@dataclass(frozen=True)
class SearchFit:
    """A head's witness search: its rounds and what the final solution is certified over.

    Attributes:
        rounds: one ``SearchRound`` per round.
        columns: columns of the final dictionary (the final certificate is over these).
        searched: candidates priced over all rounds.
        best_violation: the largest violation (units of reg) of any searched candidate at the
            final dual point; <= 1 means the gap also covers every searched candidate.
        statement: "certified over the N columns found; the best of M searched candidates
            violates by v x reg".
    """

    rounds: tuple[SearchRound, ...]
    columns: int
    searched: int
    best_violation: float
    statement: str

    def to_dict(self) -> dict:
        return dict(rounds=[r.to_dict() for r in self.rounds], columns=self.columns, searched=self.searched,
                    best_violation=self.best_violation, statement=self.statement)

    @classmethod
    def from_dict(cls, d: dict) -> SearchFit:
        return cls(rounds=tuple(SearchRound.from_dict(r) for r in d["rounds"]), columns=d["columns"],
                   searched=d["searched"], best_violation=d["best_violation"], statement=d["statement"])


@dataclass(frozen=True)
class HeadFit:
    """The convex readout of one head: the chosen solve, its certificate, its path, its score.

    ``solution`` is the chosen ``SolveResult`` itself (coefficients included); it exists only in
    memory and is None in a report read back by ``from_dict``. ``search`` is the witness search
    that grew the head's dictionary (None for a fixed dictionary); its ``path`` is then the
    final solve only."""

    name: str
    loss: str
    certificate: Certificate
    path: tuple[PathPoint, ...]
    val_acc: float
    solution: SolveResult | None = field(default=None, compare=False, repr=False)
    search: SearchFit | None = None

    @property
    def reg(self) -> float:
        return self.certificate.reg

    def to_dict(self) -> dict:
        out = dict(name=self.name, loss=self.loss, certificate=self.certificate.to_dict(),
                   path=[p.to_dict() for p in self.path], val_acc=self.val_acc)
        if self.search is not None:
            out["search"] = self.search.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> HeadFit:
        return cls(name=d["name"], loss=d["loss"], certificate=Certificate(**d["certificate"]),
                   path=tuple(PathPoint(**p) for p in d["path"]), val_acc=d["val_acc"],
                   search=None if d.get("search") is None else SearchFit.from_dict(d["search"]))


@dataclass(frozen=True)
class DictionarySize:
    """Rows (samples x steps), neurons (columns before de-duplication) and distinct columns."""

    rows: int
    neurons: int
    distinct: int

    def to_dict(self) -> dict:
        return dict(rows=self.rows, neurons=self.neurons, distinct=self.distinct)


@dataclass(frozen=True)
class SGRun:
    """One learning rate of SG training: its best validation loss, epochs run, loss per epoch."""

    lr: float
    val_loss: float
    epochs: int
    history: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return dict(lr=self.lr, val_loss=self.val_loss, epochs=self.epochs, history=list(self.history))

    @classmethod
    def from_dict(cls, d: dict) -> SGRun:
        return cls(lr=d["lr"], val_loss=d["val_loss"], epochs=d["epochs"],
                   history=tuple(d.get("history", ())))


@dataclass(frozen=True)
class SGFit:
    """SG training details: the chosen learning rate, its validation loss and every run."""

    lr: float
    val_loss: float
    runs: tuple[SGRun, ...]

    def to_dict(self) -> dict:
        return dict(lr=self.lr, val_loss=self.val_loss, runs=[r.to_dict() for r in self.runs])

    @classmethod
    def from_dict(cls, d: dict) -> SGFit:
        return cls(lr=d["lr"], val_loss=d["val_loss"], runs=tuple(SGRun.from_dict(r) for r in d["runs"]))


@dataclass
class FitReport:
    """What a training method did and how well its choices scored on validation.

    Attributes:
        method: the method name (a key of ``spikecvx.train.METHODS``, or "fine-tune" for a
            fine-tuning stage).
        heads: one ``HeadFit`` per head, by head name (empty for SG stages).
        chosen: the grid point that won (neuron / witness hyper-parameters; {} without a grid).
        grid: every grid point tried, each with its ``val_score``.
        val_score: mean validation accuracy over heads of the chosen point (None for SG).
        dictionary: sizes of the chosen spike dictionary (None for SG); after a witness search,
            ``neurons`` counts the initial neurons plus the added ones and ``distinct`` the
            final columns, summed over heads (each head grows its own dictionary).
        neurons_kept: last-layer neurons with a non-zero readout row (None for SG).
        time_total, time_dictionary: seconds for the whole fit and for building the dictionary.
        sg: SG training details (SG stages only).
        sg_stage: SG-CVX: the report of the SG network whose hidden weights were the witnesses
            (None when that network was passed in).
        fine_tune: CVX-SG / SG-SG: the report of the fine-tuning stage.
    """

    method: str
    heads: dict[str, HeadFit] = field(default_factory=dict)
    chosen: dict[str, Any] = field(default_factory=dict)
    grid: list[dict[str, Any]] = field(default_factory=list)
    val_score: float | None = None
    dictionary: DictionarySize | None = None
    neurons_kept: int | None = None
    time_total: float = 0.0
    time_dictionary: float | None = None
    sg: SGFit | None = None
    sg_stage: FitReport | None = None
    fine_tune: FitReport | None = None

    @property
    def convex(self) -> bool:
        """True when the report holds convex solves (for a fine-tuned hybrid: those of its convex
        stage, which no longer describe the fine-tuned readout)."""
        return bool(self.heads)

    @property
    def searches(self) -> dict[str, SearchFit]:
        """The witness searches of the heads, by head name (empty for fixed dictionaries)."""
        return {k: h.search for k, h in self.heads.items() if h.search is not None}

    def to_dict(self) -> dict:
        """Plain dict of JSON types (no arrays): ``json.dumps(report.to_dict())`` works."""
        return dict(
            method=self.method, heads={k: h.to_dict() for k, h in self.heads.items()},
            chosen=dict(self.chosen), grid=[dict(g) for g in self.grid], val_score=self.val_score,
            dictionary=None if self.dictionary is None else self.dictionary.to_dict(),
            neurons_kept=self.neurons_kept, time_total=self.time_total, time_dictionary=self.time_dictionary,
            sg=None if self.sg is None else self.sg.to_dict(),
            sg_stage=None if self.sg_stage is None else self.sg_stage.to_dict(),
            fine_tune=None if self.fine_tune is None else self.fine_tune.to_dict(),
        )

    @classmethod
    def from_dict(cls, d: dict) -> FitReport:
        """Inverse of ``to_dict`` (the in-memory ``HeadFit.solution`` objects are not restored)."""
        if not isinstance(d, dict) or "method" not in d:
            raise ValueError(f"a FitReport dict needs a 'method' key, got {type(d).__name__}")
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown FitReport keys {sorted(unknown)}")

        def opt(key, build):
            return None if d.get(key) is None else build(d[key])

        return cls(
            method=d["method"], heads={k: HeadFit.from_dict(h) for k, h in d.get("heads", {}).items()},
            chosen=dict(d.get("chosen", {})), grid=[dict(g) for g in d.get("grid", [])],
            val_score=d.get("val_score"), dictionary=opt("dictionary", lambda x: DictionarySize(**x)),
            neurons_kept=d.get("neurons_kept"), time_total=d.get("time_total", 0.0),
            time_dictionary=d.get("time_dictionary"), sg=opt("sg", SGFit.from_dict),
            sg_stage=opt("sg_stage", cls.from_dict), fine_tune=opt("fine_tune", cls.from_dict),
        )
