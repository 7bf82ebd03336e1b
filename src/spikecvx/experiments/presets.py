"""Named presets and TOML configs, both expanded into a list of cells for the runner.

A config is a table per task with lists that are crossed into a grid::

    seeds = [0, 1, 2]
    [xor]
    methods = ["cvx", "sg"]
    T = [6, 8]
    net = { layers = 3, branches = 2, width = 500, last_width = 2000 }
    n_regs = 6

A sub-table named after a method (``[xor.sg]``) overrides keys for that method's cells only; it
may give its own grid values (``[xor.cvx-search]`` with ``T = [6, 14]``) and its own ``at``. A
sub-table ``at``, keyed by grid values, overrides keys for those grid points only (``[xor.at.11]``
with ``net = {...}``: a wider network at T = 11). Precedence, lowest first: the task table, its
``at``, the method sub-table, the method sub-table's ``at``.
Every other key (not ``methods``, ``at``, a method sub-table or the task's grid key ``T`` /
``base`` / ``symbols``) is passed to the cell; every cell is checked before anything runs
(``options.check_cell``): an unknown key or a value of the wrong type is an error naming the key.
"""

from __future__ import annotations

import itertools
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..tasks import TASKS
from .cells import METHODS
from .options import check_cell

GRID_KEYS = {name: spec.grid_key for name, spec in TASKS.items()}

_XOR_NET = dict(layers=3, branches=2, width=500, last_width=2000)
_XOR_PAPER = dict(layers=5, branches=2, width=500, last_width=1000)  # the paper's protocol
_XOR_WIDE = dict(layers=3, branches=2, width=500, last_width=8000)  # long sequences: a wider dictionary
_ADD_NET = dict(layers=3, branches=2, width=256, last_width=512, beta=0.5)
_MNIST_NET = dict(layers=3, branches=2, width=512, last_width=1024)
# SG on MNIST: mini-batch AdamW with decoupled weight decay and random 1-pixel shifts, the
# regularisers that let 6000 training images go further (docs/design/experiments.md)
_MNIST_SG = dict(epochs=80, lrs=[3e-3], batch_size=128, weight_decay=0.1, shift=1)
_MNIST_SG_PAPER = dict(_MNIST_SG, lrs=[1e-3, 3e-3])
# Witness search (docs/design/witness_search.md): dual ascent on the last layer of the initial
# trunk, reg fixed at a share of reg_max, a wall-clock budget per cell (search_seconds).
_XOR_SEARCH = dict(net=dict(_XOR_NET, last_width=1000), generators=["ascent"], search_candidates=1000,
                   reg_ratio=0.03, max_add=500, search_rounds=12)
_ADD_SEARCH = dict(net=dict(_ADD_NET, beta=0.0), witness_scale=10.0, generators=["ascent"],
                   search_candidates=512, reg_ratio=0.01, max_add=500, search_rounds=10)
_MNIST_SEARCH = dict(generators=["ascent"], search_candidates=1024, reg_ratio=0.01, max_add=1000,
                     search_rounds=10)
# the quick preset's search cells: budgets that keep the whole preset within minutes
_XOR_SEARCH_QUICK = dict(_XOR_SEARCH, T=[6, 8, 11, 14], search_candidates=500, search_seconds=15.0,
                         at={11: dict(search_seconds=90.0), 14: dict(search_seconds=100.0)})
_ADD_SEARCH_QUICK = dict(_ADD_SEARCH, at={2: dict(witness_scale=3.0, search_seconds=25.0),
                                          3: dict(search_seconds=70.0), 5: dict(search_seconds=90.0)})
_MNIST_SEARCH_QUICK = dict(_MNIST_SG, **_MNIST_SEARCH, search_seconds=90.0)
_XOR_SEARCH_PAPER = dict(_XOR_SEARCH, search_rounds=20, search_seconds=120.0,
                         at={11: dict(search_seconds=600.0), 14: dict(search_seconds=900.0)})
_ADD_SEARCH_PAPER = dict(_ADD_SEARCH, search_rounds=20, search_seconds=400.0, at={2: dict(witness_scale=3.0)})

PRESETS: dict[str, dict] = {
    # seconds: checks an installation end to end
    "smoke": {
        "seeds": [0],
        "xor": dict(methods=["cvx", "sg"], T=[4], net=dict(layers=3, branches=2, width=20, last_width=60),
                    n_train=200, n_val=100, n_test=200, n_regs=3, epochs=20, lrs=[3e-3]),
        "addition": dict(methods=["cvx"], base=[2], net=dict(_ADD_NET, width=20, last_width=40),
                         n_train=64, n_val=32, n_test=32, test_lengths=[5, 10], n_regs=3,
                         min_ratio=0.05),
    },
    # minutes on 2 CPU cores: every task once, the fast methods and the witness search on a budget
    "quick": {
        "seeds": [0],
        "xor": dict(methods=["cvx", "sg", "cvx-search"], T=[6, 8, 11], net=_XOR_NET, n_regs=6,
                    at={11: dict(net=_XOR_WIDE)},
                    sg=dict(net=dict(_XOR_NET, width=100, last_width=200), epochs=60, lrs=[3e-3]),
                    **{"cvx-search": _XOR_SEARCH_QUICK}),
        "addition": dict(methods=["cvx", "cvx-search"], base=[2, 3, 5], net=_ADD_NET, n_regs=4,
                         min_ratio=0.05,
                         grid=dict(beta=[0.0, 0.5], witness_scale=[1.0, 3.0, 10.0]),  # chosen on validation
                         **{"cvx-search": _ADD_SEARCH_QUICK}),
        "mnist": dict(methods=["cvx", "sg", "sg-cvx", "sg-cvx-search"], T=[4], net=_MNIST_NET, n_regs=5,
                      min_ratio=0.01, sg=_MNIST_SG,
                      **{"sg-cvx": _MNIST_SG, "sg-cvx-search": _MNIST_SEARCH_QUICK}),
    },
    # the paper's protocols (docs/tasks.md; hours)
    "paper": {
        "seeds": [0, 1, 2],
        "xor": dict(methods=["cvx", "sg", "sg-cvx", "cvx-search"], T=[6, 8, 11, 14], net=_XOR_PAPER,
                    n_regs=10, at={11: dict(net=_XOR_WIDE), 14: dict(net=_XOR_WIDE)}, sg=dict(net=_XOR_PAPER),
                    **{"cvx-search": _XOR_SEARCH_PAPER}),
        "addition": dict(methods=["sg", "sg-cvx", "sg-sg", "cvx", "cvx-sg", "cvx-search"], base=[2, 3, 5],
                         net=_ADD_NET, n_regs=8, min_ratio=0.01,
                         grid=dict(beta=[0.0, 0.5, 0.9, 0.99], witness_scale=[1.0, 3.0, 10.0]),
                         **{"cvx-search": _ADD_SEARCH_PAPER}),
        "mnist": dict(methods=["cvx", "sg", "sg-cvx", "cvx-search", "sg-cvx-search"], T=[4], net=_MNIST_NET,
                      n_regs=8, min_ratio=0.01, sg=_MNIST_SG_PAPER,
                      **{"sg-cvx": _MNIST_SG_PAPER,
                         "cvx-search": dict(_MNIST_SEARCH, search_rounds=20, search_seconds=900.0),
                         "sg-cvx-search": dict(_MNIST_SG_PAPER, **_MNIST_SEARCH) | dict(search_rounds=20,
                                                                                      search_seconds=900.0)}),
        "dfa": dict(methods=["cvx", "sg"], symbols=[2, 3, 5], net=_XOR_NET, n_regs=8),
    },
}


def _where(task: str, m: str | None = None) -> str:
    return f"[{task}]" if m is None else f"[{task}.{m}]"


def _at(at, key: str, values: list, where: str) -> dict:
    """An ``at`` table keyed by grid values (as strings); its keys must be among ``values``."""
    if not isinstance(at, dict) or not all(isinstance(v, dict) for v in at.values()):
        raise ValueError(f"{where}: 'at' must be a table of tables keyed by {key} values")
    at = {str(k): v for k, v in at.items()}
    unknown = sorted(set(at) - {str(v) for v in values})
    if unknown:
        raise ValueError(f"{where}: 'at' names {unknown}, which are not among {key} = {values}")
    return at


def expand(config: dict, tasks: list[str] | None = None, seeds: list[int] | None = None) -> list[dict]:
    """Cells of a config (a preset or a parsed TOML file), optionally restricted; every cell is
    checked (ValueError / TypeError naming the task and key)."""
    if seeds is None:
        seeds = config.get("seeds", [0])
        if not isinstance(seeds, list) or not seeds:
            raise TypeError(f"seeds must be a non-empty list of integers, got {type(seeds).__name__} "
                            f"{seeds!r}")
    seeds = list(seeds)
    if tasks is not None:
        missing = [t for t in tasks if t not in config or t == "seeds"]
        if missing:
            have = [t for t in config if t != "seeds"]
            raise ValueError(f"--tasks names {missing}, which the config does not have (it has {have})")
    cells = []
    for task, table in config.items():
        if task == "seeds":
            continue
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r} in config; expected one of {sorted(TASKS)}")
        if tasks is not None and task not in tasks:
            continue
        if not isinstance(table, dict):
            raise TypeError(f"{_where(task)} must be a table, got {type(table).__name__} {table!r}")
        table = dict(table)
        methods = table.pop("methods", ["cvx"])
        if not isinstance(methods, list) or not methods:
            raise TypeError(f"{_where(task)}: methods must be a non-empty list of method names "
                            f"(e.g. methods = [\"cvx\"]), got {type(methods).__name__} {methods!r}")
        for m in methods:
            if m not in METHODS:
                raise ValueError(f"{_where(task)}: unknown method {m!r}; expected one of {METHODS}")
        key = GRID_KEYS[task]
        if key not in table:
            raise ValueError(f"{_where(task)}: the config needs {key!r} (a list)")
        values = table.pop(key)
        values = values if isinstance(values, list) else [values]
        if "net" not in table:
            raise ValueError(f"{_where(task)}: the config needs a 'net' table (layers, branches, widths)")
        overrides = {m: table.pop(m) for m in METHODS if m in table}
        for m, o in overrides.items():
            if not isinstance(o, dict):
                raise TypeError(f"{_where(task, m)} must be a table, got {type(o).__name__} {o!r}")
        at = _at(table.pop("at", {}), key, values, _where(task))
        grids, ats = {}, {}
        for m in overrides:
            o = dict(overrides[m])
            own = o.pop(key, values)
            grids[m] = own if isinstance(own, list) else [own]
            ats[m] = _at(o.pop("at", {}), key, grids[m], _where(task, m))
            overrides[m] = o
        for seed, m in itertools.product(seeds, methods + [m for m in overrides if m not in methods]):
            for v in grids.get(m, values):
                cell = {**table, **at.get(str(v), {}), **overrides.get(m, {}),
                        **ats.get(m, {}).get(str(v), {}), "task": task, "method": m, "seed": seed, key: v}
                check_cell(cell, METHODS)  # a method sub-table is checked even when unused
                if m in methods:
                    cells.append(cell)
    if not cells:
        raise ValueError("the config selects no cells (check --tasks and the task tables)")
    return cells


def load_config(path: str | Path) -> dict:
    """Parse a TOML config file (errors name the file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path}: the config must be a TOML file, not a folder")
    with path.open("rb") as f:
        try:
            return tomllib.load(f)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: invalid TOML: {err}") from None
