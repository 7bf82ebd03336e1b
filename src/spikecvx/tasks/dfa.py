"""Random deterministic finite automata: accept/reject a symbol string, read at the last step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_int


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
