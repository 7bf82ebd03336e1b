"""FIRST-LAST-XOR: label = x_1 XOR x_T of a random binary string, one-hot inputs, balanced."""

from __future__ import annotations

import numpy as np

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
