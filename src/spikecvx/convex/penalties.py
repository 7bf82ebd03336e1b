"""Penalties Omega(W) on the coefficient matrix W (P, C) and their dual norms per row."""

from __future__ import annotations

import numpy as np


class L1:
    """Elementwise L1: sum_jc |W_jc|; dual norm of a row is its max-abs entry."""

    name = "l1"
    group = False

    def value(self, W: np.ndarray) -> float:
        return float(np.abs(W).sum())

    def row_dual_norms(self, G: np.ndarray) -> np.ndarray:
        return np.abs(G).max(axis=1)


class GroupL1:
    """Row-wise group L1: sum_j ||W_j,:||_2, which removes whole neurons across outputs."""

    name = "group_l1"
    group = True

    def value(self, W: np.ndarray) -> float:
        return float(np.linalg.norm(W, axis=1).sum())

    def row_dual_norms(self, G: np.ndarray) -> np.ndarray:
        return np.linalg.norm(G, axis=1)


PENALTIES = {"l1": L1(), "group_l1": GroupL1()}
