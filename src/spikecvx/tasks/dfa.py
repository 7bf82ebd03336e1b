"""Random deterministic finite automata: accept/reject a symbol string, read at the last step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_int
from .registry import Splits, TaskSpec, check_grid_int, predict_last, register


@dataclass(frozen=True)
class DFA:
    """transition[q, a] is the next state; accepting[q] says whether q accepts; start is q0."""

    transition: np.ndarray
    accepting: np.ndarray
    start: int = 0

    @property
    def n_symbols(self) -> int:
        return self.transition.shape[1]

    def accepts(self, strings: np.ndarray) -> np.ndarray:
        """Run every string of shape (N, T) of symbols; returns a bool array (N,)."""
        q = np.full(strings.shape[0], self.start)
        for t in range(strings.shape[1]):
            q = self.transition[q, strings[:, t]]
        return self.accepting[q]


def random_dfa(n_states: int = 5, n_symbols: int = 2, seed: int = 0) -> DFA:
    """Uniform random transitions; a random non-empty proper subset of accepting states."""
    check_int("n_states", n_states, minimum=2)
    check_int("n_symbols", n_symbols, minimum=2)
    rng = np.random.default_rng(seed)
    transition = rng.integers(0, n_states, size=(n_states, n_symbols))
    k = int(rng.integers(1, n_states))
    accepting = np.zeros(n_states, dtype=bool)
    accepting[rng.choice(n_states, size=k, replace=False)] = True
    return DFA(transition, accepting)


def dfa_dataset(dfa: DFA, n: int, length: int, seed: int = 0,
                balanced: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """n strings of ``length`` symbols: one-hot inputs (n, length, n_symbols), labels in {-1, +1}.

    With ``balanced`` the two labels get n // 2 and n - n // 2 strings (rejection sampling);
    a ValueError says so when the automaton almost never produces one of the labels.
    """
    check_int("n", n, minimum=2)
    check_int("length", length)
    rng = np.random.default_rng(seed)
    if not balanced:
        s = rng.integers(0, dfa.n_symbols, size=(n, length))
        y = np.where(dfa.accepts(s), 1.0, -1.0)
        return np.eye(dfa.n_symbols, dtype=np.float32)[s], y
    want = {1.0: n - n // 2, -1.0: n // 2}
    parts = []
    for _ in range(200):
        s = rng.integers(0, dfa.n_symbols, size=(4 * n, length))
        y = np.where(dfa.accepts(s), 1.0, -1.0)
        for cls in (1.0, -1.0):
            take = s[y == cls][: int(want[cls])]
            want[cls] -= len(take)
            parts.append((take, np.full(len(take), cls)))
        if want[1.0] == 0 and want[-1.0] == 0:
            break
    else:
        raise ValueError(f"this DFA rarely yields one label at length {length}: use balanced=False")
    s = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    order = rng.permutation(n)
    return np.eye(dfa.n_symbols, dtype=np.float32)[s[order]], y[order]


# A cell with seed s tries the automata of seeds 100 + s + 1000 * attempt until one accepts between
# 10 % and 90 % of random strings; its splits use seeds 10 * s + offset (test: + the length multiple).
SEED_OFFSETS = dict(train=1, val=2, test=3)
KEYS = dict(length=9, n_train=5000, n_val=1000, n_test=1000, ood=[1, 2, 5, 10])
N_STATES = 5


def _automaton(cell: dict) -> DFA:
    s, L, symbols = cell["seed"], SPEC.option(cell, "length"), cell["symbols"]
    for attempt in range(100):  # skip automata that (almost) never accept or never reject
        dfa = random_dfa(N_STATES, symbols, seed=100 + s + 1000 * attempt)
        rate = dfa.accepts(np.random.default_rng(s).integers(0, symbols, (2000, L))).mean()
        if 0.1 <= rate <= 0.9:
            break
    return dfa


def _splits(cell: dict) -> Splits:
    s, L = cell["seed"], SPEC.option(cell, "length")
    if 1 not in SPEC.option(cell, "ood"):
        raise ValueError(f"dfa: ood must include 1 (the training length), got {cell['ood']!r}")
    dfa = _automaton(cell)
    seeds = {k: 10 * s + off for k, off in SEED_OFFSETS.items()}
    train = dfa_dataset(dfa, SPEC.option(cell, "n_train"), L, seed=seeds["train"])
    val = dfa_dataset(dfa, SPEC.option(cell, "n_val"), L, seed=seeds["val"])
    tests = {mult: dfa_dataset(dfa, SPEC.option(cell, "n_test"), L * mult, seed=seeds["test"] + mult,
                               balanced=False) for mult in SPEC.option(cell, "ood")}
    # hybrids fine-tune on the validation split and validate on the training split
    return Splits(train=train, val=val, tune=val, tune_val=train, test=tests)


def _evaluate(net, splits: Splits, cell: dict) -> dict:
    accs = {str(mult): float(np.mean(np.where(predict_last(net, Xte)[:, 0] >= 0, 1, -1) == yte))
            for mult, (Xte, yte) in splits.test.items()}
    return dict(headline=accs["1"], test_acc=accs)


SPEC = register(TaskSpec(
    name="dfa", title="Random DFA (length 9)", metric="test accuracy %", grid_key="symbols",
    check_grid=check_grid_int("symbols", 2), cell_keys=KEYS, splits=_splits,
    heads=lambda cell: [("accept", 1, "hinge")], evaluate=_evaluate, chance=lambda cell: 0.5))
