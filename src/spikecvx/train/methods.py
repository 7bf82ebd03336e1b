"""The methods: CVX, SG, SG-CVX and the hybrids, each returning (network, ``FitReport``).

All share one signature: training split, validation split, the network architecture
(``net_kwargs`` for ``ParallelSNN`` without d_in / n_out), the output ``heads`` and a seed.
Labels are one array per head: (N,) for last-step readouts, (N, T) for per-step readouts.

- CVX: Gaussian witnesses -> dictionary -> certified path per head -> regularisation chosen on
  validation -> reconstruction. Neuron and witness hyper-parameters can be grids (``grid``),
  chosen on validation like the regularisation.
- SG: surrogate-gradient training (``train_sg``).
- SG-CVX: the hidden weights of an SG network are the witnesses; its readout is discarded and
  replaced by the convex one.
- CVX-SG / SG-SG: a network fine-tuned by SG, usually on a disjoint split.

``spikecvx.train.registry`` names these methods and holds their options and defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import time

import numpy as np
import torch

from .._validation import check_device
from ..convex import path, reg_grid, select
from ..convex.path import predict as convex_predict
from ..dictionary import SpikeDictionary, sample_witnesses, spike_dictionary, transfer_witnesses
from ..snn import ParallelSNN
from .heads import Head, check_targets, default_heads, smooth_heads
from .reconstruct import reconstruct
from .report import Certificate, DictionarySize, FitReport, HeadFit, PathPoint
from .sg import sg_init, train_sg

NET_GRID_KEYS = ("beta", "threshold", "readout_bias", "readout", "witness_scale", "witness")


def _place(net_kwargs: dict, device) -> dict:
    dev = check_device(device)
    return dict(net_kwargs) if dev is None else dict(net_kwargs, device=dev)


def _as_heads(heads, y_train, loss: str | None, distributed=None) -> list[Head]:
    if heads is not None:
        return list(heads)
    comm = _comm(distributed)
    if comm is not None and not isinstance(y_train, (list, tuple)):  # the labels of every rank
        y_train = np.concatenate(comm.allgather(np.asarray(y_train).reshape(-1)))
    return default_heads(y_train, loss)


def _comm(distributed):
    """The communicator of a distributed fit (None in one process); torch.distributed is
    imported only for a distributed fit."""
    if distributed is None or distributed is False:
        return None
    from ..distributed import communicator

    return communicator(distributed)


def _convex_labels(head: Head, y: np.ndarray) -> np.ndarray:
    return np.eye(head.size)[y.astype(int)] if head.loss == "squared" else y


# A path stops once validation accuracy has not improved for this many consecutive regs: smaller
# regs only fit the training rows harder, and they are the slow end of a path.
PATH_PATIENCE = 3


def _convex_head(D: SpikeDictionary, D_val: np.ndarray, head: Head, y, y_val, penalty, n_regs,
                 min_ratio, tol, progress, distributed=None) -> HeadFit:
    """Certified path for one head; the solve with the best validation accuracy is chosen."""
    ytr, yva = _convex_labels(head, y), _convex_labels(head, y_val)

    def accuracy(res, Dv, _):
        pred = convex_predict(res, Dv)
        if head.loss == "squared":
            pred = np.argmax(pred.reshape(len(y_val), -1), axis=1)
        return float(np.mean(pred == y_val))

    regs = reg_grid(D.matrix, ytr, head.loss, penalty, n_regs, min_ratio, distributed=distributed)
    results = path(D.matrix, ytr, head.loss, penalty, regs=regs, tol=tol, progress=progress,
                   distributed=distributed, D_val=D_val, y_val=yva, patience=PATH_PATIENCE, score=accuracy)
    best, scores = select(results, D_val, yva, score=accuracy)
    points = tuple(PathPoint(reg=r.reg, val_acc=s, gap=r.gap, rel_gap=r.rel_gap, nnz_rows=r.n_nonzero_rows,
                             seconds=r.time) for r, s in zip(results, scores))
    return HeadFit(name=head.name, loss=head.loss, certificate=Certificate.of(best), path=points,
                   val_acc=max(scores), solution=best)


def _convex_readout(net: ParallelSNN, X_train, ys, X_val, ys_val, heads, penalty, n_regs, min_ratio,
                    tol, progress, distributed=None) -> tuple[ParallelSNN, FitReport]:
    """Dictionary of ``net`` + one certified path per head -> (reconstructed network, report).
    Distributed: the training rows are sharded, the validation rows are every rank's own."""
    t0 = time.perf_counter()
    D = spike_dictionary(net, X_train, dedup=True, progress=progress, distributed=distributed)
    D_val = spike_dictionary(net, X_val).matrix[:, D.representative]
    t_dict = time.perf_counter() - t0
    fits = {}
    for h, y, yv in zip(heads, ys, ys_val):
        fits[h.name] = _convex_head(D, D_val, h, y.reshape(-1), yv.reshape(-1), penalty, n_regs, min_ratio,
                                    tol, progress, distributed)
    # the readout columns of every head side by side, (P, n_out)
    joint = np.concatenate([_head_columns(fits[h.name].solution, h, D.n_distinct) for h in heads], axis=1)
    model = reconstruct(net, joint, D)
    report = FitReport(method="cvx", heads=fits, val_score=float(np.mean([f.val_acc for f in fits.values()])),
                       dictionary=DictionarySize(rows=_total_rows(D.shape[0], distributed),
                                                 neurons=D.n_neurons, distinct=D.n_distinct),
                       neurons_kept=int(np.any(joint != 0, axis=1).sum()),
                       time_dictionary=t_dict, time_total=time.perf_counter() - t0)
    return model, report


def _total_rows(rows: int, distributed) -> int:
    comm = _comm(distributed)
    return rows if comm is None else int(comm.sum_scalar(rows))


def _head_columns(result, head: Head, p: int) -> np.ndarray:
    """Readout columns (p, head.size) of one head; classes absent from training get zeros."""
    coef = result.coef.reshape(p, -1)
    if head.binary or head.loss == "squared" or coef.shape[1] == head.size:
        return coef
    out = np.zeros((p, head.size))
    out[:, np.asarray(result.classes, dtype=int)] = coef
    return out


def _grid_points(grid: dict | None) -> list[dict]:
    if not grid:
        return [{}]
    for k in grid:
        if k not in NET_GRID_KEYS:
            raise ValueError(f"grid key {k!r} is not tunable; expected one of {NET_GRID_KEYS}")
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(list(grid[k]) for k in keys))]


def fit_cvx(X_train, y_train, X_val, y_val, net_kwargs: dict, loss: str | None = None,
            penalty: str = "l1", heads: list[Head] | None = None, grid: dict | None = None,
            n_regs: int = 8, min_ratio: float = 1e-3, witness: str = "standard",
            witness_scale: float = 1.0, witness_net: ParallelSNN | None = None, seed: int = 0,
            tol: float = 1e-6, progress: bool = False,
            device: str | torch.device | None = None, distributed=None) -> tuple[ParallelSNN, FitReport]:
    """Train by parameter reconstruction; returns (reconstructed network, report).

    Args:
        loss: convex loss of the default single head (see ``default_heads``).
        heads: several heads on one trunk; each gets its own certified path and regularisation.
        grid: lists of neuron / witness hyper-parameters (keys in ``NET_GRID_KEYS``); every
            combination is tried and the best mean validation accuracy over heads wins.
        witness, witness_scale: distribution and scale of the sampled hidden weights.
        witness_net: take the hidden weights from this network (SG-CVX) instead of sampling.
        device: where the network lives (default: ``net_kwargs``' device, else the CPU).
        distributed: True (the default torch.distributed group) or a process group: the training
            split is this rank's rows (the dictionary and the solves are sharded); the validation
            split is every rank's own (the same on every rank). Every rank returns the same.
    """
    t0 = time.perf_counter()
    net_kwargs = _place(net_kwargs, device)
    X_train, X_val = torch.as_tensor(X_train), torch.as_tensor(X_val)
    heads = _as_heads(heads, y_train, loss, distributed)
    ys = check_targets(heads, y_train, X_train.shape[0], "y_train")
    ys_val = check_targets(heads, y_val, X_val.shape[0], "y_val")
    n_out = sum(h.size for h in heads)
    best = None
    trials = []
    for point in _grid_points(grid):
        kw = dict(net_kwargs) | {k: v for k, v in point.items() if k not in ("witness_scale", "witness")}
        net = ParallelSNN(d_in=X_train.shape[-1], n_out=n_out, seed=seed, **kw)
        if witness_net is not None:
            transfer_witnesses(witness_net, net)
        else:
            sample_witnesses(net, point.get("witness", witness), point.get("witness_scale", witness_scale),
                             seed)
        model, rep = _convex_readout(net, X_train, ys, X_val, ys_val, heads, penalty, n_regs, min_ratio,
                                     tol, progress, distributed)
        trials.append(dict(point, val_score=rep.val_score))
        if best is None or rep.val_score > best[1].val_score:
            best = (model, rep, point)
    model, rep, point = best
    rep = dataclasses.replace(rep, method="cvx" if witness_net is None else "sg-cvx", chosen=dict(point),
                              grid=trials, time_total=time.perf_counter() - t0)
    return model, rep


def fit_sg(X_train, y_train, X_val, y_val, net_kwargs: dict, loss: str | None = None,
           heads: list[Head] | None = None, seed: int = 0, progress: bool = False,
           device: str | torch.device | None = None, distributed=None,
           **sg_kw) -> tuple[ParallelSNN, FitReport]:
    """Surrogate-gradient baseline from a scaled Gaussian init; returns (network, report).
    ``distributed``: as in ``train_sg`` (the training split is this rank's rows).

    ``sg_kw`` are ``train_sg``'s options (lrs, epochs, batch_size, ...)."""
    heads = smooth_heads(_as_heads(heads, y_train, loss, distributed))
    X_train = torch.as_tensor(X_train)
    net = ParallelSNN(d_in=X_train.shape[-1], n_out=sum(h.size for h in heads), seed=seed,
                      **_place(net_kwargs, device))
    sg_init(net, seed=seed)
    return train_sg(net, X_train, y_train, X_val, y_val, heads=heads, seed=seed, progress=progress,
                    distributed=distributed, **sg_kw)


def fit_sg_cvx(X_train, y_train, X_val, y_val, net_kwargs: dict, loss: str | None = None,
               heads: list[Head] | None = None, sg_net: ParallelSNN | None = None, seed: int = 0,
               progress: bool = False, sg_kwargs: dict | None = None,
               device: str | torch.device | None = None, distributed=None,
               **cvx_kw) -> tuple[ParallelSNN, FitReport]:
    """SG-CVX: SG network's hidden weights as witnesses, convex readout; (network, report).

    ``sg_net``: a trained SG network of the same shape (trained here when None; its report is
    the ``sg_stage`` of the returned one). ``cvx_kw`` are ``fit_cvx``'s options."""
    t0 = time.perf_counter()
    net_kwargs = _place(net_kwargs, device)
    sg_report = None
    if sg_net is None:
        sg_net, sg_report = fit_sg(X_train, y_train, X_val, y_val, net_kwargs, heads=heads, seed=seed,
                                   progress=progress, distributed=distributed, **(sg_kwargs or {}))
    cvx_kw.pop("witness_net", None)
    kw = dict(net_kwargs, beta=sg_net.beta, threshold=sg_net.threshold)
    model, rep = fit_cvx(X_train, y_train, X_val, y_val, kw, loss=loss, heads=heads, witness_net=sg_net,
                         seed=seed, progress=progress, distributed=distributed, **cvx_kw)
    return model, dataclasses.replace(rep, sg_stage=sg_report, time_total=time.perf_counter() - t0)


def fine_tune(net: ParallelSNN, X_train, y_train, X_val, y_val, heads: list[Head] | None = None,
              loss: str | None = None, seed: int = 0, progress: bool = False,
              lrs=(1e-4, 1e-3), device: str | torch.device | None = None, distributed=None,
              **sg_kw) -> tuple[ParallelSNN, FitReport]:
    """Hybrid stage: SG fine-tuning of a trained network (CVX -> SG, SG -> SG); (network, report).

    ``net`` is not modified. The binary hinge readout of a CVX network is fine-tuned with the
    logistic loss (smooth). ``lrs`` is lower than ``train_sg``'s default: the start is trained."""
    heads = smooth_heads(_as_heads(heads, y_train, loss, distributed))
    if sum(h.size for h in heads) != net.n_out:
        raise ValueError(f"heads cover {sum(h.size for h in heads)} outputs, the network has {net.n_out}")
    start = copy.deepcopy(net)
    dev = check_device(device)
    if dev is not None:
        start = start.to(dev)
    tuned, rep = train_sg(start, X_train, y_train, X_val, y_val, heads=heads, seed=seed,
                          progress=progress, lrs=lrs, distributed=distributed, **sg_kw)
    return tuned, dataclasses.replace(rep, method="fine-tune")
