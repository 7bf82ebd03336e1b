"""The methods: CVX, SG, SG-CVX and the hybrids, each returning (network, report).

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
"""

from __future__ import annotations

import copy
import itertools
import time
from types import SimpleNamespace

import numpy as np
import torch

from ..convex import path, reg_grid, select
from ..convex.path import predict as convex_predict
from ..dictionary import SpikeDictionary, sample_witnesses, spike_dictionary, transfer_witnesses
from ..snn import ParallelSNN
from .heads import Head, check_targets, smooth_heads
from .reconstruct import reconstruct
from .sg import sg_init, train_sg

NET_GRID_KEYS = ("beta", "threshold", "readout_bias", "readout", "witness_scale", "witness")


def _as_heads(heads, y_train, loss: str | None) -> list[Head]:
    """Default heads: one head over the labels, binary (+-1) or multi-class (0..C-1)."""
    if heads is not None:
        return list(heads)
    y = np.asarray(y_train)
    if np.isin(y, (-1, 1)).all() and len(np.unique(y)) == 2:
        return [Head("y", 1, loss or "hinge")]
    return [Head("y", int(y.max()) + 1, loss or "softmax")]


def _convex_labels(head: Head, y: np.ndarray) -> np.ndarray:
    return np.eye(head.size)[y.astype(int)] if head.loss == "squared" else y


def _convex_head(D: SpikeDictionary, D_val: np.ndarray, head: Head, y, y_val, penalty, n_regs,
                 min_ratio, tol, progress):
    """Certified path for one head; returns (best result, validation accuracy, path records)."""
    ytr, yva = _convex_labels(head, y), _convex_labels(head, y_val)
    regs = reg_grid(D.matrix, ytr, head.loss, penalty, n_regs, min_ratio)
    results = path(D.matrix, ytr, head.loss, penalty, regs=regs, tol=tol, progress=progress)

    def accuracy(res, Dv, _):
        pred = convex_predict(res, Dv)
        if head.loss == "squared":
            pred = np.argmax(pred.reshape(len(y_val), -1), axis=1)
        return float(np.mean(pred == y_val))

    best, scores = select(results, D_val, yva, score=accuracy)
    records = [dict(reg=r.reg, val_acc=s, gap=r.gap, rel_gap=r.rel_gap, nnz_rows=r.n_nonzero_rows,
                    seconds=r.time) for r, s in zip(results, scores)]
    return best, max(scores), records


def _convex_readout(net: ParallelSNN, X_train, ys, X_val, ys_val, heads, penalty, n_regs, min_ratio,
                    tol, progress):
    """Dictionary of ``net`` + one certified path per head -> (reconstructed network, report)."""
    t0 = time.perf_counter()
    D = spike_dictionary(net, X_train, dedup=True, progress=progress)
    D_val = spike_dictionary(net, X_val).matrix[:, D.representative]
    t_dict = time.perf_counter() - t0
    coefs, head_reports, scores = [], {}, []
    for h, y, yv in zip(heads, ys, ys_val):
        best, score, records = _convex_head(D, D_val, h, y.reshape(-1), yv.reshape(-1), penalty,
                                            n_regs, min_ratio, tol, progress)
        coefs.append(_head_columns(best, h, D.n_distinct))
        scores.append(score)
        head_reports[h.name] = dict(reg=best.reg, val_acc=score, certificate=best.certificate(),
                                    neurons_used=best.n_nonzero_rows, path=records)

    joint = SimpleNamespace(coef=np.concatenate(coefs, axis=1))  # all heads side by side
    model = reconstruct(net, joint, D)
    report = dict(heads=head_reports, val_score=float(np.mean(scores)),
                  dictionary=dict(rows=D.shape[0], neurons=D.n_neurons, distinct=D.n_distinct),
                  neurons_kept=int(np.any(joint.coef != 0, axis=1).sum()),
                  time_dictionary=t_dict, time_total=time.perf_counter() - t0)
    return model, report


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
            tol: float = 1e-6, progress: bool = False):
    """Train by parameter reconstruction; returns (reconstructed network, report).

    Args:
        loss: convex loss of the default single head ("hinge" for +-1 labels, else "softmax").
        heads: several heads on one trunk; each gets its own certified path and regularisation.
        grid: lists of neuron / witness hyper-parameters (keys in ``NET_GRID_KEYS``); every
            combination is tried and the best mean validation accuracy over heads wins.
        witness_net: take the hidden weights from this network (SG-CVX) instead of sampling.
    """
    t0 = time.perf_counter()
    X_train, X_val = torch.as_tensor(X_train), torch.as_tensor(X_val)
    heads = _as_heads(heads, y_train, loss)
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
                                     tol, progress)
        trials.append(dict(point, val_score=rep["val_score"]))
        if best is None or rep["val_score"] > best[1]["val_score"]:
            best = (model, rep, point)
    model, rep, point = best
    rep = dict(rep, method="cvx" if witness_net is None else "sg-cvx", chosen=point, grid=trials,
               time_total=time.perf_counter() - t0)
    return model, rep


def fit_sg(X_train, y_train, X_val, y_val, net_kwargs: dict, loss: str | None = None,
           heads: list[Head] | None = None, seed: int = 0, progress: bool = False, **sg_kw):
    """Surrogate-gradient baseline from a scaled Gaussian init; returns (network, report)."""
    heads = smooth_heads(_as_heads(heads, y_train, loss))
    X_train = torch.as_tensor(X_train)
    net = ParallelSNN(d_in=X_train.shape[-1], n_out=sum(h.size for h in heads), seed=seed, **net_kwargs)
    sg_init(net, seed=seed)
    return train_sg(net, X_train, y_train, X_val, y_val, heads=heads, seed=seed, progress=progress, **sg_kw)


def fit_sg_cvx(X_train, y_train, X_val, y_val, net_kwargs: dict, loss: str | None = None,
               heads: list[Head] | None = None, sg_net: ParallelSNN | None = None, seed: int = 0,
               progress: bool = False, sg_kwargs: dict | None = None, **cvx_kw):
    """SG-CVX: SG network's hidden weights as witnesses, convex readout; (network, report).

    ``sg_net``: a trained SG network of the same shape (trained here when None)."""
    t0 = time.perf_counter()
    sg_report = None
    if sg_net is None:
        sg_net, sg_report = fit_sg(X_train, y_train, X_val, y_val, net_kwargs, heads=heads, seed=seed,
                                   progress=progress, **(sg_kwargs or {}))
    cvx_kw.pop("witness_net", None)
    kw = dict(net_kwargs, beta=sg_net.beta, threshold=sg_net.threshold)
    model, rep = fit_cvx(X_train, y_train, X_val, y_val, kw, loss=loss, heads=heads, witness_net=sg_net,
                         seed=seed, progress=progress, **cvx_kw)
    rep["sg"] = sg_report
    rep["time_total"] = time.perf_counter() - t0
    return model, rep


def fine_tune(net: ParallelSNN, X_train, y_train, X_val, y_val, heads: list[Head] | None = None,
              loss: str | None = None, seed: int = 0, progress: bool = False, **sg_kw):
    """Hybrid stage: SG fine-tuning of a trained network (CVX -> SG, SG -> SG); (network, report).

    The binary hinge readout of a CVX network is fine-tuned with the logistic loss (smooth)."""
    heads = smooth_heads(_as_heads(heads, y_train, loss))
    if sum(h.size for h in heads) != net.n_out:
        raise ValueError(f"heads cover {sum(h.size for h in heads)} outputs, the network has {net.n_out}")
    sg_kw.setdefault("lrs", (1e-4, 3e-4, 1e-3))
    tuned, rep = train_sg(copy.deepcopy(net), X_train, y_train, X_val, y_val, heads=heads, seed=seed,
                          progress=progress, **sg_kw)
    rep["method"] = "fine-tune"
    return tuned, rep
