"""Parameter reconstruction: a convex solution becomes a deployable, pruned ``ParallelSNN``."""

from __future__ import annotations

import numpy as np

from .._validation import check_bool
from ..dictionary import SpikeDictionary
from ..snn import ParallelSNN


def reconstruct(net: ParallelSNN, result, dictionary: SpikeDictionary | None = None,
                prune: bool = True) -> ParallelSNN:
    """Network with ``net``'s hidden weights (the witnesses) and the convex solution as readout.

    Args:
        net: the witness network the dictionary was built from.
        result: a ``SolveResult``, or its coefficient array itself: (P,) or (P, C).
        dictionary: needed when the dictionary was de-duplicated, to map columns to neurons.
        prune: drop last-layer neurons whose readout row is zero. Branches must keep equal
            widths, so each branch keeps as many neurons as the branch that needs the most; the
            fillers have zero readout weights. Outputs are unchanged.
    """
    if not isinstance(net, ParallelSNN):
        raise TypeError(f"net must be a ParallelSNN, got {type(net).__name__}")
    check_bool("prune", prune)
    coef = np.asarray(getattr(result, "coef", result), dtype=np.float64)
    if dictionary is not None:
        coef = dictionary.neuron_weights(coef)
    coef = coef.reshape(coef.shape[0], -1)
    if coef.shape[0] != net.last_width:
        raise ValueError(f"the solution has {coef.shape[0]} rows but the network has "
                         f"{net.last_width} last-layer neurons (pass the de-duplicated dictionary?)")
    K, per = net.branches, net.last_width // net.branches
    keep_idx = np.arange(per)[None].repeat(K, 0)
    if prune:
        used = np.any(coef != 0, axis=1).reshape(K, per)
        width = max(1, int(used.sum(axis=1).max()))
        # used neurons first (stable), then fillers, per branch
        keep_idx = np.stack([np.argsort(~used[k], kind="stable")[:width] for k in range(K)])
    # features of branch k are the last-layer neurons k * per ... (k + 1) * per - 1
    return net.with_last_neurons(keep_idx, readout=coef)


def path_norm_objective(net: ParallelSNN, D: np.ndarray, y, loss: str, reg: float) -> float:
    """Non-convex objective of the reconstructed network with the path-norm regulariser.

    Each readout coefficient z is split into an amplitude sqrt|z| on the neuron and an output
    weight sign(z) sqrt|z|; the network output is unchanged (threshold units are scale
    invariant) and the path norm sum |amplitude| * |output weight| equals ||z||_1.
    """
    from ..convex import DATAFITS

    W = net.readout_weight.detach().double().numpy()
    amplitude = np.sqrt(np.abs(W))
    out_w = np.sign(W) * np.sqrt(np.abs(W))
    fit = DATAFITS[loss]
    Y, _ = fit.encode(y)
    Z = D.astype(np.float64) @ (amplitude * out_w)
    return fit.value(Z, Y) + reg * float(np.sum(np.abs(amplitude) * np.abs(out_w)))
