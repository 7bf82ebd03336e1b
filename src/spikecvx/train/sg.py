"""Surrogate-gradient (SG) training of a ``ParallelSNN``: the baseline and the fine-tuning stage.

AdamW (plain Adam at weight_decay=0) with a learning-rate grid chosen on validation,
ReduceLROnPlateau, early stopping, the best state (lowest validation loss) kept, optional path-norm
regulariser and mini-batch augmentation, several heads on one trunk, losses at the last step or at
every step. The forward pass is the same ``ParallelSNN`` code that
builds spike dictionaries, so an SG network is a valid witness for SG-CVX as it stands.

With ``distributed``, every rank holds its own rows and the network is wrapped in
``DistributedDataParallel``; each step's loss is the mean over the rows of all ranks, so a run
on shards follows the one-process run on the concatenated rows.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .._validation import check_finite, check_int, check_positive
from ..snn import ParallelSNN
from .heads import Head, check_targets, default_heads, head_loss, head_slices, smooth_heads
from .report import FitReport, SGFit, SGRun

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


# Spectral radius of the recurrent feedback at SG initialisation: present but not dominant.
RECURRENT_RADIUS = 0.5


def sg_init(net: ParallelSNN, gain: float = 2.0, seed: int = 0) -> ParallelSNN:
    """Scaled Gaussian init for SG training: hidden N(0, (gain / sqrt(fan_in))^2), readout
    N(0, 1 / fan_in), recurrent weights (if any) N(0, (RECURRENT_RADIUS / sqrt(width))^2), whose
    spectral radius is about RECURRENT_RADIUS. Witness N(0, 1) weights (the CVX default) saturate
    the surrogate."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in net.hidden:
            fan_in = w.shape[-2]
            w.copy_(torch.randn(w.shape, generator=gen, dtype=torch.float64) * gain / math.sqrt(fan_in))
        fan_in = net.readout_weight.shape[0]
        net.readout_weight.copy_(torch.randn(net.readout_weight.shape, generator=gen,
                                             dtype=torch.float64) / math.sqrt(fan_in))
        for v in net.recurrent_weights if net.recurrent else ():  # drawn last: feed-forward draws unchanged
            v.copy_(torch.randn(v.shape, generator=gen, dtype=torch.float64)
                    * RECURRENT_RADIUS / math.sqrt(v.shape[-1]))
    return net


def path_norm(net: ParallelSNN) -> torch.Tensor:
    """sum_j ||incoming weights of last-layer neuron j||_2 * ||readout row j||_1.

    After the positive rescaling that threshold units allow, this is the L1 penalty of the
    convex program on the readout (docs/method.md)."""
    return (net.last_incoming_norms() * net.readout_weight.abs().sum(dim=1)).sum()


def _objective(net, X, targets, heads, slices, weights_sum):
    out = net(X)
    if X.shape[0] == 0:  # a rank without rows in this step: zero loss, every parameter in the graph
        return out.sum() * 0.0
    out = out.reshape(-1, out.shape[-1])
    total = 0.0
    for h, sl, y in zip(heads, slices, targets):
        total = total + h.weight * head_loss(h, out[:, sl], y)
    return total / weights_sum


def train_sg(net: ParallelSNN, X_train, y_train, X_val, y_val, heads: list[Head] | None = None,
             lrs=(1e-3, 3e-3, 1e-2), epochs: int = 100, batch_size: int | None = None,
             path_norm_reg: float = 0.0, weight_decay: float = 0.0, augment: Augment | None = None,
             patience: int = 20, seed: int = 0, progress: bool = False,
             distributed=None) -> tuple[ParallelSNN, FitReport]:
    """Train ``net`` (not modified) by surrogate gradients; returns (best network, report).

    Args:
        y_train, y_val: one label array per head, (N,) for last-step readouts or (N, T) for
            per-step readouts (a single array when there is one head).
        heads: output heads (default: ``default_heads`` of ``y_train`` over all outputs, with
            hinge made logistic as in ``smooth_heads``).
        lrs: Adam learning rates tried from the same start; the lowest validation loss wins.
        epochs: maximum passes over the training data per learning rate.
        batch_size: None for full batch.
        path_norm_reg: weight of the path-norm regulariser (0: none).
        weight_decay: decoupled weight decay of AdamW (0: plain Adam).
        augment: ``augment(X_batch, generator) -> X_batch`` applied to every training mini-batch
            (for example ``spikecvx.tasks.mnist_shift_augment``); labels are unchanged.
        patience: epochs without validation improvement before stopping; the learning rate
            halves after patience // 2 (ReduceLROnPlateau).
        distributed: True (the default torch.distributed group) or a process group: the splits
            are this rank's rows (a rank may have none), the network is trained with
            ``DistributedDataParallel``, ``batch_size`` counts the rows of all ranks together,
            and the validation loss is the mean over every rank's validation rows. Every rank
            returns the same network and report.
    """
    X_train = torch.as_tensor(X_train, dtype=net.dtype, device=net.device)
    X_val = torch.as_tensor(X_val, dtype=net.dtype, device=net.device)
    check_finite("X_train", X_train)
    check_finite("X_val", X_val)
    shards = _Shards(distributed, X_train.shape[0], X_val.shape[0])
    heads = heads or smooth_heads(default_heads(shards.all_labels(y_train), n_classes=net.n_out))
    if sum(h.size for h in heads) != net.n_out:
        raise ValueError(f"heads cover {sum(h.size for h in heads)} outputs, the network has {net.n_out}")
    epochs = check_int("epochs", epochs)
    patience = check_int("patience", patience)
    check_positive("path_norm_reg", path_norm_reg, allow_zero=True)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be callable(X, generator) or None, got {type(augment).__name__}")
    if isinstance(lrs, (str, bytes)) or not hasattr(lrs, "__iter__"):
        raise TypeError(f"lrs must be a sequence of learning rates, got {type(lrs).__name__}")
    lrs = tuple(lrs)
    if not lrs:
        raise ValueError("lrs must hold at least one learning rate")
    for lr in lrs:
        check_positive("lrs", lr)
    slices = head_slices(heads)
    wsum = sum(h.weight for h in heads)

    def flat(targets, X, name):
        ys = check_targets(heads, targets, X.shape[0], name)
        return [torch.as_tensor(np.asarray(y).reshape(-1), device=net.device) for y in ys]

    ytr, yva = flat(y_train, X_train, "y_train"), flat(y_val, X_val, "y_val")
    bs = None if batch_size is None else check_int("batch_size", batch_size)

    t0 = time.perf_counter()
    best_net, best_val, best_lr, runs = None, math.inf, None, []
    for lr in lrs:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed + _RANK_SEED_STRIDE * shards.rank)
        model = copy.deepcopy(net).train()
        forward = shards.wrap(model)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, patience // 2))
        run_best, run_state, stale, history = math.inf, None, 0, []
        bar = tqdm(range(epochs), desc=f"SG lr={lr:g}", disable=not progress, leave=False)
        for _ in bar:
            for idx, scale in shards.batches(bs, gen):
                rows = _row_index(idx, model, X_train.shape[1])
                xb = X_train[idx] if augment is None or len(idx) == 0 else augment(X_train[idx], gen)
                loss = scale * _objective(forward, xb, [y[rows] for y in ytr], heads, slices, wsum)
                if path_norm_reg:
                    loss = loss + path_norm_reg * path_norm(model)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                val = shards.val_mean(float(_objective(model, X_val, yva, heads, slices, wsum)))
            history.append(val)
            sched.step(val)
            bar.set_postfix(val_loss=f"{val:.4f}")
            if val < run_best - 1e-9:
                run_best, run_state, stale = val, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= patience:
                    break
        runs.append(SGRun(lr=lr, val_loss=run_best, epochs=len(history), history=tuple(history)))
        if run_best < best_val and run_state is not None:
            model.load_state_dict(run_state)
            best_net, best_val, best_lr = model, run_best, lr
    if best_net is None:
        raise RuntimeError("SG training produced no finite validation loss at any learning rate")
    report = FitReport(method="sg", sg=SGFit(lr=best_lr, val_loss=best_val, runs=tuple(runs)),
                       time_total=time.perf_counter() - t0)
    return best_net.eval(), report


# Rank r draws its mini-batches with seed + r * _RANK_SEED_STRIDE.
_RANK_SEED_STRIDE = 1_000_003


class _Shards:
    """Row shards of a distributed run (one shard, and no communication, in one process).

    A step's loss on each rank is its rows' mean times ``scale`` = world * local rows / rows of
    all ranks in the step, so the gradient that ``DistributedDataParallel`` averages over ranks
    is the gradient of the mean over all rows."""

    def __init__(self, distributed, n: int, n_val: int) -> None:
        from ..distributed import communicator  # torch.distributed only in distributed runs

        self.comm = communicator(distributed)
        self.rank = 0 if self.comm is None else self.comm.rank
        self.sizes = np.array([n]) if self.comm is None else self.comm.allgather_sizes(n)
        self.n_val = n_val
        self.val_total = n_val if self.comm is None else int(self.comm.sum_scalar(n_val))
        if self.sizes.sum() == 0:
            raise ValueError("X_train must hold at least one sample" +
                             ("" if self.comm is None else " on some rank"))
        if self.val_total == 0:
            raise ValueError("X_val must hold at least one sample" +
                             ("" if self.comm is None else " on some rank"))

    def all_labels(self, y):
        """The labels of every rank (for the default heads, which must agree on every rank)."""
        if self.comm is None or (isinstance(y, (list, tuple)) and
                                 any(isinstance(v, (np.ndarray, torch.Tensor)) for v in y)):
            return y
        return np.concatenate(self.comm.allgather(np.asarray(y).reshape(-1)))

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.comm is None:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [model.device] if model.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, process_group=self.comm.group)

    def batches(self, batch_size: int | None, gen: torch.Generator) -> list[tuple[torch.Tensor, float]]:
        """(rows of this rank, loss scale) of every optimiser step of one epoch.

        In one process: consecutive slices of ``batch_size`` rows of a random order. Distributed:
        ceil(rows of all ranks / batch_size) steps on every rank; each rank cuts its random order
        into that many near-equal parts, rotated by the rows of the ranks before it, so every
        step's rows over all ranks number floor or ceil of the mean (never zero)."""
        n, total = int(self.sizes[self.rank]), int(self.sizes.sum())
        if self.comm is None:
            bs = n if batch_size is None else batch_size
            order = torch.randperm(n, generator=gen) if bs < n else torch.arange(n)
            return [(order[a:a + bs], 1.0) for a in range(0, n, bs)]
        steps = 1 if batch_size is None or batch_size >= total else math.ceil(total / batch_size)
        order = torch.randperm(n, generator=gen) if steps > 1 else torch.arange(n)
        counts = np.zeros((len(self.sizes), steps), dtype=np.int64)
        for r, s in enumerate(self.sizes):
            base = np.full(steps, s // steps)
            base[: s % steps] += 1
            counts[r] = np.roll(base, int(self.sizes[:r].sum()) % steps)
        bounds = np.concatenate([[0], np.cumsum(counts[self.rank])])
        world = len(self.sizes)
        return [(order[a:b], world * (b - a) / t) for a, b, t in zip(bounds[:-1], bounds[1:], counts.sum(0))]

    def val_mean(self, local_mean: float) -> float:
        """Mean validation loss over every rank's validation rows."""
        if self.comm is None:
            return local_mean
        return self.comm.sum_scalar(local_mean * self.n_val if self.n_val else 0.0) / self.val_total


def _row_index(idx: torch.Tensor, net: ParallelSNN, T: int) -> torch.Tensor:
    """Rows of the flattened targets that belong to samples ``idx`` (all steps for "every")."""
    if net.readout_at == "last":
        return idx
    return (idx[:, None] * T + torch.arange(T)[None]).reshape(-1)
