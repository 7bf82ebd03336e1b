"""``GrownSNN``: several ``ParallelSNN`` blocks whose readouts add up to one output.

A dictionary grown by witness search holds neurons from several witness networks (the initial
one, fresh random pools, optimised last layers, whole new branches). Each block keeps its own
witness weights and the readout rows of its neurons, so the network computes the convex
solution ``D @ coef`` on any input with exactly the dictionary's neurons (see docs/method.md).
"""

from __future__ import annotations

import torch
from torch import nn

from .network import ParallelSNN


class GrownSNN(nn.Module):
    """Sum of the outputs of ``blocks`` (all with the same d_in, n_out and readout timing).

    ``sources`` names how each block was made (for reports); it does not change the outputs.
    """

    def __init__(self, blocks: list[ParallelSNN], sources: list[str] | None = None) -> None:
        super().__init__()
        blocks = list(blocks)
        if not blocks:
            raise ValueError("blocks must hold at least one ParallelSNN")
        for i, b in enumerate(blocks):
            if not isinstance(b, ParallelSNN):
                raise TypeError(f"blocks[{i}] must be a ParallelSNN, got {type(b).__name__}")
        first = blocks[0]
        for i, b in enumerate(blocks[1:], 1):
            for attr in ("d_in", "n_out", "readout_at"):
                if getattr(b, attr) != getattr(first, attr):
                    raise ValueError(f"blocks[{i}].{attr} = {getattr(b, attr)!r} differs from "
                                     f"blocks[0].{attr} = {getattr(first, attr)!r}")
        if sources is None:
            sources = ["block"] * len(blocks)
        if len(sources) != len(blocks):
            raise ValueError(f"sources must name every block ({len(blocks)}), got {len(sources)}")
        self.blocks = nn.ModuleList(blocks)
        self.sources = [str(s) for s in sources]

    @property
    def d_in(self) -> int:
        return self.blocks[0].d_in

    @property
    def n_out(self) -> int:
        return self.blocks[0].n_out

    @property
    def readout_at(self) -> str:
        return self.blocks[0].readout_at

    @property
    def n_neurons(self) -> int:
        """Readout neurons over all blocks (including zero-weight fillers of equal-width branches)."""
        return sum(b.last_width for b in self.blocks)

    def config(self) -> dict:
        """Per-block constructor arguments and sources (rebuild with the blocks' state dicts)."""
        return dict(blocks=[b.config() for b in self.blocks], sources=list(self.sources))

    def features(self, x: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
        """Binary readout features of every block, concatenated in block order."""
        return torch.cat([b.features(x, time_dim) for b in self.blocks], dim=-1)

    def forward(self, x: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
        """Sum of the blocks' outputs: (N, n_out) or (N, T, n_out) for readout_at="every"."""
        out = self.blocks[0](x, time_dim)
        for b in self.blocks[1:]:
            out = out + b(x, time_dim)
        return out

    def step(self, x_t: torch.Tensor, state: list | None = None):
        """One time step of every block (see ``ParallelSNN.step``): (outputs, list of block states)."""
        state = [None] * len(self.blocks) if state is None else state
        if len(state) != len(self.blocks):
            raise ValueError(f"state must hold one entry per block ({len(self.blocks)}), got {len(state)}")
        out, new = None, []
        for b, s in zip(self.blocks, state):
            o, s = b.step(x_t, s)
            out = o if out is None else out + o
            new.append(s)
        return out, new
