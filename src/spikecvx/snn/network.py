"""``ParallelSNN``: K parallel branches of L-1 LIF layers and one bias-free linear readout.

The K branches run as one batched operation: layer weights are stored as (K, fan_in, width/K)
tensors (the first layer, which every branch shares the input of, as one (d_in, width) matrix).
Each layer's input currents for all time steps come from one matrix product; only the LIF scan
loops over time.
"""

from __future__ import annotations

import torch
from torch import nn

from .._validation import check_choice, check_finite, check_int, check_positive
from .lif import RESETS, check_beta, lif_scan
from .surrogate import SURROGATE_GRADS, spike

READOUTS = ("membrane", "spike")
READOUT_AT = ("last", "every")


class ParallelSNN(nn.Module):
    """Parallel LIF network (see spec/METHOD.md, section 1).

    Args:
        d_in: input features per time step.
        n_out: readout outputs (classes, or the total over several heads).
        layers: L, the number of weight layers including the readout (>= 2): L-1 LIF layers.
        branches: K parallel sub-networks sharing the input.
        width: total neurons (over branches) of each of the first L-2 LIF layers.
        last_width: total neurons of the last LIF layer: the readout features / dictionary size.
        beta, threshold, reset: LIF parameters shared by all hidden layers.
        readout: "membrane" (last layer membrane binarised as 1[u - readout_bias >= 0]) or
            "spike" (its spikes).
        readout_at: "last" (features of the last step) or "every" (features of every step).
        readout_bias: the binarisation level b of the membrane readout.
        surrogate: surrogate derivative used in training.
        seed: seed of the Gaussian N(0, 1) initial weights (None: torch's global generator).
    """

    def __init__(
        self,
        d_in: int,
        n_out: int,
        layers: int = 3,
        branches: int = 2,
        width: int = 500,
        last_width: int = 1000,
        beta: float = 0.99,
        threshold: float = 1.0,
        reset: str = "subtract",
        readout: str = "membrane",
        readout_at: str = "last",
        readout_bias: float = 0.0,
        surrogate: str = "atan",
        seed: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        self.d_in = check_int("d_in", d_in)
        self.n_out = check_int("n_out", n_out)
        self.layers = check_int("layers", layers, minimum=2)
        self.branches = check_int("branches", branches)
        self.width = check_int("width", width)
        self.last_width = check_int("last_width", last_width)
        for name, w in (("width", self.width), ("last_width", self.last_width)):
            if w % self.branches:
                raise ValueError(f"{name} ({w}) must be divisible by branches ({self.branches})")
        check_beta(beta)
        self.beta = float(beta)
        self.threshold = check_positive("threshold", threshold)
        self.reset = check_choice("reset", reset, RESETS)
        self.readout = check_choice("readout", readout, READOUTS)
        self.readout_at = check_choice("readout_at", readout_at, READOUT_AT)
        self.readout_bias = float(readout_bias)
        self.surrogate = check_choice("surrogate", surrogate, SURROGATE_GRADS)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")

        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        K = self.branches
        widths = [self.width // K] * (self.layers - 2) + [self.last_width // K]
        shapes = [(self.d_in, K * widths[0])]
        shapes += [(K, widths[i - 1], widths[i]) for i in range(1, len(widths))]
        self.hidden = nn.ParameterList(
            nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype))
            for s in shapes
        )
        self.readout_weight = nn.Parameter(torch.zeros(self.last_width, self.n_out, dtype=dtype))
        if device is not None:
            self.to(device)

    # ------------------------------------------------------------------ config
    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture (for save/load and cloning)."""
        return dict(
            d_in=self.d_in, n_out=self.n_out, layers=self.layers, branches=self.branches,
            width=self.width, last_width=self.last_width, beta=self.beta,
            threshold=self.threshold, reset=self.reset, readout=self.readout,
            readout_at=self.readout_at, readout_bias=self.readout_bias, surrogate=self.surrogate,
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.readout_weight.dtype

    @property
    def device(self) -> torch.device:
        return self.readout_weight.device

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: torch.Tensor, time_dim: int) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if time_dim not in (0, 1):
            raise ValueError(f"time_dim must be 0 (T, N, d_in) or 1 (N, T, d_in), got {time_dim!r}")
        if x.dim() != 3:
            raise ValueError(f"x must be 3-D (N, T, d_in) with time_dim=1, got shape {tuple(x.shape)}")
        if x.shape[2] != self.d_in:
            raise ValueError(f"x must have d_in={self.d_in} features in its last dim, got {x.shape[2]}")
        check_finite("x", x)
        x = x.to(device=self.device, dtype=self.dtype)
        return x if time_dim == 1 else x.transpose(0, 1)

    def run_layers(self, x: torch.Tensor, state: list | None = None):
        """Run every LIF layer over a batch-major chunk x (N, t, d_in), already validated.

        ``state`` is the per-layer (membrane, spike) after the previous chunk (None: rest), so a
        long sequence can be processed in time chunks with bounded memory. Returns the list of
        per-layer (spikes, membranes), each (N, t, width), and the state after the chunk.
        """
        N, T, _ = x.shape
        K = self.branches
        outputs, new_state = [], []
        h = x
        for i, w in enumerate(self.hidden):
            if i == 0:
                cur = h @ w  # (N, t, K*width_0): the input is shared by the branches
            else:  # per-branch product: (K, N*t, w_in) @ (K, w_in, w_out)
                hk = h.reshape(N * T, K, -1).transpose(0, 1)
                cur = torch.bmm(hk, w).transpose(0, 1).reshape(N, T, -1)
            init = None if state is None else state[i]
            s, u = lif_scan(cur, self.beta, self.threshold, self.reset, self.surrogate, init=init)
            outputs.append((s, u))
            new_state.append((u[:, -1], s[:, -1]))
            h = s
        return outputs, new_state

    def hidden_states(self, x: torch.Tensor, time_dim: int = 1):
        """Spikes and membranes of every LIF layer, each (N, T, width) with branches concatenated."""
        return self.run_layers(self._check_input(x, time_dim))[0]

    def readout_features(self, spikes: torch.Tensor, mems: torch.Tensor) -> torch.Tensor:
        """Binary features of the last LIF layer from its spikes and membranes (all steps)."""
        if self.readout == "spike":
            return spikes
        return spike(mems - self.readout_bias, self.surrogate, strict=False)

    def features(self, x: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
        """Binary readout features: (N, last_width) at the last step or (N, T, last_width)."""
        s, u = self.hidden_states(x, time_dim)[-1]
        f = self.readout_features(s, u)
        return f[:, -1] if self.readout_at == "last" else f

    def forward(self, x: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
        """Outputs features @ readout_weight: (N, n_out) or (N, T, n_out) for readout_at="every"."""
        return self.features(x, time_dim) @ self.readout_weight

    def step(self, x_t: torch.Tensor, state: list | None = None):
        """Advance one time step for autoregressive use: x_t (N, d_in) -> (outputs (N, n_out), state).

        ``state`` is what the previous call returned (None: at rest). Running T steps one at a
        time gives the same outputs as ``forward`` with readout_at="every" on the whole sequence.
        """
        if not isinstance(x_t, torch.Tensor) or x_t.dim() != 2:
            raise ValueError(f"x_t must be a 2-D tensor (N, d_in), got {getattr(x_t, 'shape', type(x_t))}")
        outs, state = self.run_layers(self._check_input(x_t[:, None, :], 1), state)
        s, u = outs[-1]
        return self.readout_features(s, u)[:, -1] @ self.readout_weight, state
