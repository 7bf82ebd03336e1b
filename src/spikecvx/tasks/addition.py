"""Multi-digit addition in base 2, 3 or 5: teacher-forced training, autoregressive evaluation.

Column t (least-significant first) holds digits a_t, b_t and the incoming carry c_t. The model
sees [a_t, b_t, c_t] / (base - 1) and predicts two tokens: the sum digit (a_t + b_t + c_t) mod base
and the carry out floor((a_t + b_t + c_t) / base), which is the next column's carry in. An extra
final column (0, 0, c_{n+1}) makes the last sum token the final carry (docs/tasks.md).

Choice: the carry into the first column is uniform in [0, base) as the spec says, so for
base >= 3 the first column's carry out can be 2; the carry head therefore has 3 classes for
base >= 3 (2 for base 2). From the second column on, carries are 0 or 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._validation import check_int
from .registry import Splits, TaskSpec, check_grid_int, register

BASES = (2, 3, 5)


@dataclass
class AdditionData:
    """One split: inputs under teacher forcing and the two token targets per column."""

    X: np.ndarray       # (N, T, 3) float32, teacher-forced inputs
    sum: np.ndarray     # (N, T) int64 sum-digit targets
    carry: np.ndarray   # (N, T) int64 carry-out targets (the next column's carry in)
    carry0: np.ndarray  # (N,) the carry into the first column
    base: int

    @property
    def n_carry(self) -> int:
        return carry_classes(self.base)

    def __len__(self) -> int:
        return self.X.shape[0]


def carry_classes(base: int) -> int:
    """Number of carry values the carry head must predict (see the module docstring)."""
    return 2 if base == 2 else 3


def addition(n_seq: int, n_digits: int, base: int, seed: int = 0) -> AdditionData:
    """``n_seq`` random additions of two ``n_digits``-digit numbers in ``base`` (T = n_digits + 1)."""
    check_int("n_seq", n_seq)
    check_int("n_digits", n_digits)
    if base not in BASES:
        raise ValueError(f"base must be one of {BASES}, got {base!r}")
    rng = np.random.default_rng(seed)
    T = n_digits + 1
    a = np.zeros((n_seq, T), dtype=np.int64)
    b = np.zeros((n_seq, T), dtype=np.int64)
    a[:, :n_digits] = rng.integers(0, base, size=(n_seq, n_digits))
    b[:, :n_digits] = rng.integers(0, base, size=(n_seq, n_digits))
    carry0 = rng.integers(0, base, size=n_seq)
    c_in = np.zeros((n_seq, T), dtype=np.int64)
    sums = np.zeros((n_seq, T), dtype=np.int64)
    carry = np.zeros((n_seq, T), dtype=np.int64)
    c = carry0
    for t in range(T):
        c_in[:, t] = c
        total = a[:, t] + b[:, t] + c
        sums[:, t] = total % base
        carry[:, t] = total // base
        c = carry[:, t]
    X = np.stack([a, b, c_in], axis=-1).astype(np.float32) / (base - 1)
    return AdditionData(X=X, sum=sums, carry=carry, carry0=carry0, base=base)


StepFn = Callable[[np.ndarray, object], tuple[np.ndarray, np.ndarray, object]]


def rollout(step: StepFn, data: AdditionData) -> tuple[np.ndarray, np.ndarray]:
    """Autoregressive evaluation: the predicted carry of column t is fed as column t+1's carry in.

    ``step(x_t, state) -> (sum_scores (N, base), carry_scores (N, n_carry), state)`` advances a
    model by one column (``state`` is None at the start). Only the first column's carry in and
    the digits come from the data. Returns predicted sum digits and carries, each (N, T).
    """
    N, T, _ = data.X.shape
    sum_pred = np.zeros((N, T), dtype=np.int64)
    carry_pred = np.zeros((N, T), dtype=np.int64)
    c = data.carry0.astype(np.float32) / (data.base - 1)
    state = None
    for t in range(T):
        x = data.X[:, t].copy()
        x[:, 2] = c
        s_scores, c_scores, state = step(x, state)
        sum_pred[:, t] = np.argmax(s_scores, axis=1)
        carry_pred[:, t] = np.argmax(c_scores, axis=1)
        c = carry_pred[:, t].astype(np.float32) / (data.base - 1)
    return sum_pred, carry_pred


def addition_metrics(sum_pred: np.ndarray, carry_pred: np.ndarray, data: AdditionData) -> dict:
    """Joint token accuracy (the paper's metric) plus sum-, carry- and whole-sequence accuracy."""
    if sum_pred.shape != data.sum.shape or carry_pred.shape != data.carry.shape:
        raise ValueError(f"predictions must have shape {data.sum.shape}, got {sum_pred.shape} "
                         f"and {carry_pred.shape}")
    ok_sum = sum_pred == data.sum
    ok_carry = carry_pred == data.carry
    joint = ok_sum & ok_carry
    return dict(joint=float(joint.mean()), sum=float(ok_sum.mean()), carry=float(ok_carry.mean()),
                sequence=float(joint.all(axis=1).mean()))


def oracle_step(base: int) -> StepFn:
    """A perfect adder as a ``step`` function (scores are one-hot): a reference for tests."""
    def step(x, state):
        total = np.rint(x * (base - 1)).astype(np.int64).sum(axis=1)
        s = np.eye(base)[total % base]
        c = np.eye(carry_classes(base))[total // base]
        return s, c, state
    return step


# Seeds of a cell with seed s: 10 * s + offset for the two training / validation pairs (the second
# pair is where hybrids fine-tune), 10 * s + 5 + n for the test set of n-digit additions.
SEED_OFFSETS = dict(train=1, val=2, tune=3, tune_val=4, test=5)
KEYS = dict(n_train=2304, n_val=512, n_test=1024, n_digits=5, test_lengths=[5, 10, 25, 50], loss="softmax")


def _splits(cell: dict) -> Splits:
    base, s = cell["base"], cell["seed"]
    n_digits = SPEC.option(cell, "n_digits")
    seeds = {k: 10 * s + off for k, off in SEED_OFFSETS.items()}
    n_train, n_val = SPEC.option(cell, "n_train"), SPEC.option(cell, "n_val")
    A, Av, B, Bv = (addition(n, n_digits, base, seeds[k]) for n, k in
                    ((n_train, "train"), (n_val, "val"), (n_train, "tune"), (n_val, "tune_val")))
    tests = {n: addition(SPEC.option(cell, "n_test"), n, base, seeds["test"] + n)
             for n in SPEC.option(cell, "test_lengths")}
    return Splits(train=(A.X, [A.sum, A.carry]), val=(Av.X, [Av.sum, Av.carry]),
                  tune=(B.X, [B.sum, B.carry]), tune_val=(Bv.X, [Bv.sum, Bv.carry]), test=tests)


def _heads(cell: dict) -> list[tuple[str, int, str]]:
    loss = SPEC.option(cell, "loss")
    return [("sum", cell["base"], loss), ("carry", carry_classes(cell["base"]), loss)]


def rollout_metrics(net, tests: dict, base: int) -> dict:
    """Autoregressive metrics of ``net`` (sum logits then carry logits per step) on each test set
    of ``tests`` (length -> data), keyed by the length as a string."""
    import torch

    def step(x, state):
        with torch.no_grad():
            out, state = net.step(torch.as_tensor(x), state)
        out = out.cpu().numpy()
        return out[:, :base], out[:, base:], state

    return {str(n): addition_metrics(*rollout(step, d), d) for n, d in tests.items()}


def _evaluate(net, splits: Splits, cell: dict) -> dict:
    import torch

    base = cell["base"]
    tests = splits.test
    first = next(iter(tests))  # the in-distribution length (the first of test_lengths)
    metrics = rollout_metrics(net, tests, base)
    with torch.no_grad():  # teacher-forced token accuracy on the ID test set, for diagnosis
        out = net(torch.as_tensor(tests[first].X)).cpu().numpy()
    tf_sum = float(np.mean(np.argmax(out[..., :base], -1) == tests[first].sum))
    return dict(headline=metrics[str(first)]["joint"], metrics=metrics, teacher_forced_sum=tf_sum)


SPEC = register(TaskSpec(
    name="addition", title="Addition", metric="joint token accuracy %, autoregressive (n=5 in distribution)",
    grid_key="base", check_grid=check_grid_int("base", 2, BASES), cell_keys=KEYS, splits=_splits,
    heads=_heads, evaluate=_evaluate, chance=lambda cell: 1.0 / cell["base"], readout="spike",
    readout_at="every", layout="lengths", published_label="published (ID / 2x / 5x / 10x)",
    chance_label="chance (sum digit)",
    published={
        2: "SG 46.1 / 49.9 / 52.3 / 53.3; CVX-SG 84.4 / 71.0 / 59.8 / 51.1 [ref]",
        3: "36.6 / 31.4 / 30.7 / 31.0 [paper]; SG 21.7 / 19.7 / 18.2 / 17.7 [ref]",
        5: "23.0 / 18.8 / 17.3 / 17.2 [paper]; SG 15.9 / 14.8 / 14.2 / 14.1 [ref]",
    }))
