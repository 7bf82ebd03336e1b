"""``ParallelSNN``: K parallel branches of L-1 LIF layers and one bias-free linear readout.

The K branches run as one batched operation: layer weights are stored as (K, fan_in, width/K)
tensors (the first layer, which every branch shares the input of, as one (d_in, width) matrix).
Each layer's input currents for all time steps come from one matrix product; only the LIF scan
loops over time. Recurrent layers (``recurrent=True``) also hold one (K, width/K, width/K)
matrix each: every branch's neurons feed their previous step's spikes back to the branch.
Only this module knows that layout: other layers use ``layer_widths``, ``layer_shapes``,
``recurrent_shapes``, ``write_features``, ``with_last_neurons`` and ``last_incoming_norms``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validation import (
    check_bool,
    check_choice,
    check_device,
    check_int,
    check_positive,
    check_real,
    check_real_array,
)
from ._lif_kernel import FEATURE_MEMBRANE, FEATURE_SPIKE, run_kernel
from .lif import KERNEL_DTYPES, RESETS, beta_vector, check_beta, check_time_dim, cpu_state, lif_scan
from .surrogate import SURROGATE_GRADS, spike

READOUTS = ("membrane", "spike")
READOUT_AT = ("last", "every")
DTYPES = (torch.float32, torch.float64)
_SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes an unsigned 64-bit seed


class ParallelSNN(nn.Module):
    """Parallel LIF network (see docs/method.md).

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
        recurrent: give every LIF layer recurrent weights (``recurrent_weights``): the layer's
            spikes at step t-1 feed into it at step t within each branch, as in snnTorch's
            ``RLeaky`` (see ``lif_scan``). False: feed-forward layers.
        seed: seed of the Gaussian N(0, 1) initial weights (None: torch's global generator);
            the recurrent weights are drawn after the feed-forward ones.
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
        recurrent: bool = False,
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
        self.beta = check_real("beta", beta)
        check_beta(self.beta)
        self.threshold = check_positive("threshold", threshold)
        self.reset = check_choice("reset", reset, RESETS)
        self.readout = check_choice("readout", readout, READOUTS)
        self.readout_at = check_choice("readout_at", readout_at, READOUT_AT)
        self.readout_bias = check_real("readout_bias", readout_bias)
        self.surrogate = check_choice("surrogate", surrogate, SURROGATE_GRADS)
        self.recurrent = check_bool("recurrent", recurrent)
        if seed is not None:
            check_int("seed", seed, minimum=0)
            if seed > _SEED_MAX:
                raise ValueError(f"seed must be at most 2**64 - 1, got {seed}")
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {type(dtype).__name__}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        device = check_device(device)

        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.hidden = nn.ParameterList(
            nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype))
            for s in self.layer_shapes
        )
        self.recurrent_weights = nn.ParameterList(
            nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dtype))
            for s in (self.recurrent_shapes if self.recurrent else [])
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
            recurrent=self.recurrent,
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.readout_weight.dtype

    @property
    def device(self) -> torch.device:
        return self.readout_weight.device

    # ------------------------------------------------------------------ layout
    @property
    def layer_widths(self) -> list[int]:
        """Total neurons (over branches) of each LIF layer, first to last."""
        return [self.width] * (self.layers - 2) + [self.last_width]

    @property
    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the hidden weight tensors: (d_in, width) for the first layer (its input is
        shared by the branches), (K, fan_in / K, width / K) per branch for the others. The last
        two dimensions are always (inputs, neurons): column j holds a neuron's incoming weights."""
        K = self.branches
        widths = [w // K for w in self.layer_widths]
        shapes: list[tuple[int, ...]] = [(self.d_in, K * widths[0])]
        return shapes + [(K, widths[i - 1], widths[i]) for i in range(1, len(widths))]

    @property
    def recurrent_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes (K, width/K, width/K) of the recurrent weights of each LIF layer when
        ``recurrent``: entry [k, j, m] is the weight of neuron j's spike onto neuron m of branch
        k at the next step (rows: sources, as the inputs of ``layer_shapes``)."""
        K = self.branches
        return [(K, w // K, w // K) for w in self.layer_widths]

    def _recurrent(self, i: int) -> torch.Tensor | None:
        """The recurrent weights of LIF layer i, or None for a feed-forward network."""
        return self.recurrent_weights[i] if self.recurrent else None

    def last_incoming_norms(self) -> torch.Tensor:
        """(last_width,) Euclidean norm of each last-layer neuron's incoming feed-forward weights,
        in feature order (differentiable)."""
        w = self.hidden[-1]
        return w.norm(dim=0) if w.dim() == 2 else w.norm(dim=1).reshape(-1)

    def with_last_neurons(self, keep, readout=None) -> ParallelSNN:
        """A copy that keeps, in every branch k, the last-layer neurons ``keep[k]``.

        Args:
            keep: (K, w) integer array, indices within each branch (0 ... last_width/K - 1) in
                the order the copy keeps them; every branch keeps the same number w >= 1.
            readout: (last_width, C) readout rows of this network's neurons (default: its own
                ``readout_weight``); the rows of the kept neurons become the copy's readout, so
                the copy has C outputs.

        The copy has last_width = K * w, the same hidden layers before the last one, and is on
        this network's device and dtype.

        With recurrent weights, a kept neuron's spikes depend on the neurons that feed it, so
        each branch keeps ``keep[k]`` together with every neuron whose spikes reach them through
        the recurrent weights, padded with further neurons to equal widths, all in ascending
        order (the order in which the recurrent input is summed), and neurons outside ``keep``
        get zero readout rows: the kept neurons spike exactly as here. ``keep`` may then not
        repeat a neuron, and w is the widest branch's count.
        """
        K, per = self.branches, self.last_width // self.branches
        keep = np.asarray(keep)
        if keep.dtype.kind not in "iu":
            raise TypeError(f"keep must be an integer array, got dtype {keep.dtype}")
        if keep.ndim != 2 or keep.shape[0] != K or keep.shape[1] < 1:
            raise ValueError(f"keep must have shape (branches={K}, w >= 1), got {keep.shape}")
        if keep.min() < 0 or keep.max() >= per:
            raise ValueError(f"keep holds indices outside a branch's {per} last-layer neurons")
        if readout is None:
            readout = self.readout_weight.detach()
        if readout.shape[0] != self.last_width or len(readout.shape) != 2:
            raise ValueError(f"readout must have shape (last_width={self.last_width}, C), "
                             f"got {tuple(readout.shape)}")
        rows = torch.as_tensor(readout)[(keep + per * np.arange(K)[:, None]).ravel()]
        if self.recurrent:
            keep, rows = self._recurrent_closure(keep, rows)
        width = keep.shape[1]
        cfg = self.config() | dict(n_out=readout.shape[1], last_width=width * K)
        out = ParallelSNN(**cfg, dtype=self.dtype, device=self.device)
        flat = (keep + per * np.arange(K)[:, None]).ravel()
        with torch.no_grad():
            for i, (src, dst) in enumerate(zip(self.hidden, out.hidden)):
                if i < len(self.hidden) - 1:
                    dst.copy_(src)
                elif src.dim() == 2:  # L = 2: (d_in, K * per)
                    dst.copy_(src[:, torch.as_tensor(flat)])
                else:  # (K, w_in, per)
                    dst.copy_(torch.stack([src[k][:, torch.as_tensor(keep[k])] for k in range(K)]))
            for i, (src, dst) in enumerate(zip(self.recurrent_weights, out.recurrent_weights)):
                if i < len(self.hidden) - 1:
                    dst.copy_(src)
                else:
                    dst.copy_(torch.stack([src[k][keep[k]][:, keep[k]] for k in range(K)]))
            out.readout_weight.copy_(rows.to(dtype=out.dtype, device=out.device))
        return out

    def _recurrent_closure(self, keep: np.ndarray, rows: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """``keep`` (K, w) grown in every branch by the last-layer neurons that reach it through
        nonzero recurrent weights, padded to equal widths and sorted; the readout ``rows``
        (K * w, C) of ``keep`` spread to the new order, zero for the added neurons."""
        K, per = keep.shape[0], self.last_width // self.branches
        if any(len(np.unique(k)) != len(k) for k in keep):
            raise ValueError("keep must not repeat a neuron within a branch of a recurrent network")
        links = (self.recurrent_weights[-1].detach() != 0).cpu().numpy()  # (K, source, target)
        needed = []
        for k in range(K):
            inside = np.zeros(per, dtype=bool)
            inside[keep[k]] = True
            while True:  # add every source that feeds a neuron inside, until nothing changes
                more = inside | links[k][:, inside].any(axis=1)
                if np.array_equal(more, inside):
                    break
                inside = more
            needed.append(inside)
        width = max(int(m.sum()) for m in needed)
        new_keep = np.empty((K, width), dtype=np.intp)
        new_rows = rows.new_zeros((K, width, rows.shape[1]))
        old_rows = rows.reshape(K, -1, rows.shape[1])
        for k in range(K):
            pad = np.flatnonzero(~needed[k])[:width - int(needed[k].sum())]
            new_keep[k] = np.sort(np.concatenate([np.flatnonzero(needed[k]), pad]))
            pos = np.searchsorted(new_keep[k], keep[k])
            new_rows[k, torch.as_tensor(pos)] = old_rows[k]
        return new_keep, new_rows.reshape(K * width, -1)

    # ------------------------------------------------------------------ forward
    def check_input(self, x, time_dim: int = 1, name: str = "x") -> torch.Tensor:
        """Validate inputs x (N, T, d_in) (or (T, N, d_in) with ``time_dim=0``), a tensor or
        numpy array of real numbers; return them batch-major on this network's device and dtype.
        Errors call the inputs ``name``."""
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "biuf":  # complex, object, strings: refused before conversion
                raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
            try:
                x = torch.as_tensor(x)
            except TypeError:  # e.g. float128, which torch has no type for
                raise TypeError(f"{name} has dtype {x.dtype}, which torch cannot hold") from None
        elif not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
        time_dim = check_time_dim(time_dim)
        if x.dim() != 3:
            raise ValueError(f"{name} must be 3-D (N, T, d_in), got shape {tuple(x.shape)}")
        if x.shape[2] != self.d_in:
            raise ValueError(f"{name} must have d_in={self.d_in} features in its last dim, got {x.shape[2]}")
        if x.shape[time_dim] == 0:
            raise ValueError(f"{name} must have at least one time step, got shape {tuple(x.shape)}")
        check_real_array(name, x)
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
                hk = h.reshape(N * T, K, w.shape[1]).transpose(0, 1)
                cur = torch.bmm(hk, w).transpose(0, 1).reshape(N, T, K * w.shape[2])
            init = None if state is None else state[i]
            s, u = lif_scan(cur, self.beta, self.threshold, self.reset, self.surrogate, init=init,
                            recurrent=self._recurrent(i))
            outputs.append((s, u))
            new_state.append((u[:, -1], s[:, -1]))
            h = s
        return outputs, new_state

    @torch.no_grad()
    def write_features(self, x: torch.Tensor, state, out: np.ndarray | None):
        """Run one no-grad pass of a chunk x (n, t, d_in) and write its binary readout features.

        Args:
            x: a batch-major chunk of inputs already returned by ``check_input``.
            state: what the previous call on the preceding time chunk of the same samples
                returned (None: at rest). Its contents are private to this method.
            out: uint8 array that receives the features, (n, t, last_width) for the "every"
                readout or (n, 1, last_width) (the chunk's last step) for "last"; any strides.
                None: this chunk's features are not needed (only the state is advanced).

        Returns the state after the chunk. On the CPU in float32 / float64 every layer is one
        matrix product per branch and the compiled scan, which writes the last layer's features
        straight into ``out``; elsewhere the torch scan runs. Both give the same bits.
        """
        n, t, _ = x.shape
        if out is not None:
            steps = t if self.readout_at == "every" else 1
            if out.dtype != np.uint8 or out.shape != (n, steps, self.last_width):
                raise ValueError(f"out must be a uint8 array of shape {(n, steps, self.last_width)}, "
                                 f"got {out.dtype} {out.shape}")
        if self.device.type == "cpu" and self.dtype in KERNEL_DTYPES:
            return self._cpu_pass(x, state, out)
        layers, state = self.run_layers(x, state)
        if out is not None:
            feats = self.readout_features(*layers[-1]).to(torch.uint8).cpu().numpy()
            out[:] = feats if self.readout_at == "every" else feats[:, -1:]
        return state

    def _cpu_pass(self, x: torch.Tensor, state: list | None, out: np.ndarray | None) -> list:
        """``write_features`` through the compiled scan.

        Activations are kept branch-major, (K, n*t, width/K): each branch's currents come from one
        matrix product written in place, and its spikes are already the layout the next layer's
        batched product reads, so nothing is transposed or copied between layers. ``state`` holds
        each layer's writable (membrane, previous spike) arrays, (K, n, width/K), updated in place;
        the features of branch k are columns k*width/K ... (k+1)*width/K - 1 of ``out``.
        """
        n, t, _ = x.shape
        K = self.branches
        widths = [w // K for w in self.layer_widths]
        if state is None:
            state = [cpu_state(None, (K, n, w), self.dtype) for w in widths]
        zero_reset = self.reset == "zero"
        last = len(self.hidden) - 1
        h = x.reshape(n * t, -1)  # copies a strided time chunk: 2-D products are the fast path
        for i, (w, wk) in enumerate(zip(self.hidden, widths)):
            cur = torch.empty(K, n * t, wk, dtype=self.dtype)
            if i == 0:  # the input is shared: one product per branch with its columns of w
                for k in range(K):
                    torch.mm(h, w[:, k * wk : (k + 1) * wk], out=cur[k])
            else:
                torch.bmm(h, w, out=cur)
            beta = beta_vector(self.beta, wk, self.dtype)
            rec = None if not self.recurrent else self.recurrent_weights[i].detach().contiguous().numpy()
            u, r = state[i]
            c = cur.numpy().reshape(K, n, t, wk)
            if i < last:
                spikes = torch.empty_like(cur)
                run_kernel(c, beta, self.threshold, zero_reset, u, r,
                           spikes=spikes.numpy().reshape(K, n, t, wk), rec=rec)
                h = spikes
            else:
                feats = None
                if out is not None:
                    feats = out.reshape(n, -1, K, wk).transpose(2, 0, 1, 3)
                    if not np.may_share_memory(feats, out):
                        raise ValueError("out must allow a (n, steps, branches, width) view")
                mode = FEATURE_SPIKE if self.readout == "spike" else FEATURE_MEMBRANE
                run_kernel(c, beta, self.threshold, zero_reset, u, r, feats=feats, feat_mode=mode,
                           feat_bias=self.readout_bias, rec=rec)
            del cur, c  # free before the next layer allocates
        return state

    def hidden_states(self, x: torch.Tensor, time_dim: int = 1):
        """Spikes and membranes of every LIF layer, each (N, T, width) with branches concatenated."""
        return self.run_layers(self.check_input(x, time_dim))[0]

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
        if not isinstance(x_t, (torch.Tensor, np.ndarray)):
            raise TypeError(f"x_t must be a torch.Tensor or numpy array, got {type(x_t).__name__}")
        if x_t.ndim != 2:
            raise ValueError(f"x_t must be 2-D (N, d_in), got shape {tuple(x_t.shape)}")
        outs, state = self.run_layers(self.check_input(x_t[:, None, :], 1), state)
        s, u = outs[-1]
        return self.readout_features(s, u)[:, -1] @ self.readout_weight, state
