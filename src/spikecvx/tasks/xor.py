"""FIRST-LAST-XOR: label = x_1 XOR x_T of a random binary string, one-hot inputs, balanced."""

from __future__ import annotations

import numpy as np

from .registry import Splits, TaskSpec, check_grid_int, predict_last, register

CHANCE = 0.5


def first_last_xor(n: int, T: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n sequences of length T: inputs (n, T, 2) one-hot float32, labels (n,) in {-1, +1}.

    Classes are balanced exactly (n // 2 of each, the extra one positive when n is odd) by
    drawing until each class has its share.
    """
    if T < 2:
        raise ValueError(f"T must be >= 2, got {T}")
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    rng = np.random.default_rng(seed)
    want = {1: n - n // 2, -1: n // 2}
    bits = []
    while want[1] + want[-1] > 0:
        b = rng.integers(0, 2, size=(2 * n, T))
        lab = np.where(b[:, 0] != b[:, -1], 1, -1)
        for cls in (1, -1):
            take = b[lab == cls][: want[cls]]
            want[cls] -= len(take)
            bits.append(take)
    bits = np.concatenate(bits)[rng.permutation(n)]
    X = np.eye(2, dtype=np.float32)[bits]
    y = np.where(bits[:, 0] != bits[:, -1], 1.0, -1.0)
    return X, y


# Seeds of the three splits of a cell with seed s: 1000 * s + offset.
SEED_OFFSETS = dict(train=1, val=2, test=3)
KEYS = dict(n_train=2000, n_val=2000, n_test=4000)


def _splits(cell: dict) -> Splits:
    T, s = cell["T"], cell["seed"]
    seeds = {k: 1000 * s + off for k, off in SEED_OFFSETS.items()}
    train = first_last_xor(SPEC.option(cell, "n_train"), T, seed=seeds["train"])
    val = first_last_xor(SPEC.option(cell, "n_val"), T, seed=seeds["val"])
    test = first_last_xor(SPEC.option(cell, "n_test"), T, seed=seeds["test"])
    # hybrids fine-tune on the validation split and validate on the training split
    return Splits(train=train, val=val, tune=val, tune_val=train, test=test)


def _evaluate(net, splits: Splits, cell: dict) -> dict:
    Xte, yte = splits.test
    acc = float(np.mean(np.where(predict_last(net, Xte)[:, 0] >= 0, 1, -1) == yte))
    return dict(headline=acc, test_acc=acc)


SPEC = register(TaskSpec(
    name="xor", title="FIRST-LAST-XOR", metric="test accuracy %", grid_key="T",
    check_grid=check_grid_int("T", 2), cell_keys=KEYS, splits=_splits,
    heads=lambda cell: [("y", 1, "hinge")], evaluate=_evaluate, chance=lambda cell: CHANCE,
    published={
        6: "CVX 100.0 [paper]; SG 73.7 / CVX 100.0 / SG-CVX 80.3 [ref, L=5]",
        8: "SG 68.9 / CVX 100.0 / SG-CVX 86.5 [ref, L=5]",
        11: "SG 59.7 / CVX 61.4 / SG-CVX 76.0 [ref, L=5]",
        14: "SG 51.6 / CVX 51.3 / SG-CVX 55.0 [ref, L=5]",
    }))
