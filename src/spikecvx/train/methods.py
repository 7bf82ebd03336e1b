"""The CVX method: Gaussian witnesses -> dictionary -> certified path -> validation -> reconstruction."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..convex import path, reg_grid, select
from ..dictionary import sample_witnesses, spike_dictionary
from ..snn import ParallelSNN
from .reconstruct import reconstruct


def fit_cvx(X_train, y_train, X_val, y_val, net_kwargs: dict, loss: str = "hinge",
            penalty: str = "l1", n_regs: int = 8, min_ratio: float = 1e-3, witness: str = "standard",
            witness_scale: float = 1.0, seed: int = 0, tol: float = 1e-6, progress: bool = False):
    """Train by parameter reconstruction; returns (reconstructed network, report dict).

    The regularisation is chosen on (X_val, y_val) along a warm-started path from reg_max.
    """
    t0 = time.perf_counter()
    X_train, X_val = torch.as_tensor(X_train), torch.as_tensor(X_val)
    n_out = 1 if loss in ("hinge", "logistic") else len(np.unique(y_train))
    net = ParallelSNN(d_in=X_train.shape[-1], n_out=n_out, seed=seed, **net_kwargs)
    sample_witnesses(net, witness, witness_scale, seed)
    D = spike_dictionary(net, X_train, dedup=True, progress=progress)
    D_val = spike_dictionary(net, X_val).matrix[:, D.representative]
    t_dict = time.perf_counter() - t0
    regs = reg_grid(D.matrix, y_train, loss, penalty, n_regs, min_ratio)
    results = path(D.matrix, y_train, loss, penalty, regs=regs, tol=tol, progress=progress)
    best, scores = select(results, D_val, y_val)
    model = reconstruct(net, best, D)
    report = dict(
        method="cvx", reg=best.reg, val_score=max(scores), certificate=best.certificate(),
        dictionary=dict(rows=D.shape[0], neurons=D.n_neurons, distinct=D.n_distinct),
        neurons_kept=best.n_nonzero_rows, time_dictionary=t_dict,
        time_total=time.perf_counter() - t0, path=[(r.reg, s, r.gap) for r, s in zip(results, scores)],
    )
    return model, report
