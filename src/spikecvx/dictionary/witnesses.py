"""Witness hidden weights: the hidden layers whose spike patterns become dictionary columns.

CVX draws them at random (Gaussian "standard", column-normalised, or orthogonal); SG-CVX takes
them from a surrogate-gradient-trained network of the same shape. Recurrent networks draw their
recurrent weights the same way, after all feed-forward ones, so a feed-forward network gets the
same witnesses whether or not a recurrent one was drawn from the same seed.
"""

from __future__ import annotations

import math

import torch

from .._validation import check_choice, check_int, check_positive
from ..snn import ParallelSNN

WITNESS_KINDS = ("standard", "normalized", "orthogonal")


def _draw(shape: tuple[int, ...], kind: str, gen: torch.Generator) -> torch.Tensor:
    """One weight tensor of a ``ParallelSNN.layer_shapes`` shape, (..., fan_in, neurons), in float64."""
    w = torch.randn(shape, generator=gen, dtype=torch.float64)
    if kind == "normalized":  # every neuron's incoming weight vector has unit norm
        w = w / w.norm(dim=-2, keepdim=True).clamp_min(1e-300)
    elif kind == "orthogonal":  # orthonormal rows or columns, via QR of the Gaussian draw
        mats = w.reshape(-1, *shape[-2:])
        out = []
        for m in mats:
            tall = m.shape[0] >= m.shape[1]
            q, r = torch.linalg.qr(m if tall else m.T)
            q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
            out.append(q if tall else q.T)
        w = torch.stack(out).reshape(shape)
    return w


def sample_witnesses(
    net: ParallelSNN, witness: str = "standard", witness_scale: float = 1.0, seed: int = 0,
    recurrent_scale: float = 1.0,
) -> ParallelSNN:
    """Overwrite the hidden weights of ``net`` in place with seeded random witnesses; returns it.

    ``witness``: "standard" N(0, 1), "normalized" (unit-norm incoming weights per neuron) or
    "orthogonal"; every draw is multiplied by ``witness_scale``. The recurrent weights of a
    recurrent network (each (width/K, width/K) per branch, rows the sources) are drawn of the
    same kind, "standard" ones divided by sqrt(width/K) so that every kind has spectral radius
    about 1, and multiplied by ``witness_scale * recurrent_scale``: ``recurrent_scale`` is about
    the spectral radius of the feedback, whatever the width (see docs/design/recurrent.md); 0
    gives a recurrent network without feedback.
    """
    if not isinstance(net, ParallelSNN):
        raise TypeError(f"net must be a ParallelSNN, got {type(net).__name__}")
    check_choice("witness", witness, WITNESS_KINDS)
    witness_scale = check_positive("witness_scale", witness_scale)
    recurrent_scale = check_positive("recurrent_scale", recurrent_scale, allow_zero=True)
    check_int("seed", seed, minimum=0)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for p, shape in zip(net.hidden, net.layer_shapes):
            p.copy_(_draw(shape, witness, gen) * witness_scale)
        for p, shape in zip(net.recurrent_weights, net.recurrent_shapes if net.recurrent else []):
            v = _draw(shape, witness, gen)
            if witness == "standard":  # N(0, 1/n) entries: spectral radius about 1 (circular law)
                v = v / math.sqrt(shape[-1])
            p.copy_(v * (witness_scale * recurrent_scale))
    return net


def transfer_witnesses(source: ParallelSNN, target: ParallelSNN) -> ParallelSNN:
    """Copy the hidden weights of a trained ``source`` into ``target`` (SG-CVX); returns target.

    Recurrent weights are copied too (both networks must be recurrent or neither). The readout
    of ``source`` is not copied: the convex program replaces it.
    """
    if source.recurrent != target.recurrent:
        raise ValueError(f"source has recurrent={source.recurrent} but target has "
                         f"recurrent={target.recurrent}; both must match")
    if len(source.hidden) != len(target.hidden):
        raise ValueError(
            f"source has {len(source.hidden) + 1} layers but target has {len(target.hidden) + 1}"
        )
    for i, (a, b) in enumerate(zip(source.hidden, target.hidden)):
        if a.shape != b.shape:
            raise ValueError(
                f"hidden layer {i} of source has shape {tuple(a.shape)}, target expects "
                f"{tuple(b.shape)} (same d_in, layers, branches, width and last_width needed)"
            )
    with torch.no_grad():
        for a, b in zip([*source.hidden, *source.recurrent_weights],
                        [*target.hidden, *target.recurrent_weights]):
            b.copy_(a.to(dtype=b.dtype, device=b.device))
    return target
