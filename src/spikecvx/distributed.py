"""SPMD runs on torch.distributed: process groups, ranks, and collectives on numpy arrays.

Every distributed entry point of spikecvx takes ``distributed``: ``False`` / ``None`` (one
process), ``True`` (the default process group, which must be initialised) or a
``torch.distributed.ProcessGroup``. ``communicator(distributed)`` turns that into a
``Communicator`` (or None), whose collectives take and return numpy arrays. The convex engine
never imports torch: it only calls ``allreduce_sum`` and friends on the object it is given.

A collective that fails (a peer stopped, or the group's timeout ran out) raises
``DistributedError`` naming the rank and the collective. The input checks of the distributed
entry points (``spike_dictionary``, ``convex.solve`` / ``path`` / ``reg_max``) agree across
ranks (``spikecvx._agree.agree``): a bad argument on one rank raises ValueError on every rank
at once, and the group stays usable. Any other error on one rank stops the others
once it destroys its process group, as the CLI does on every error; a program that calls the
library on its own ranks must do the same (``torch.distributed.destroy_process_group()`` in a
``finally``), or the other ranks wait for the group's timeout.
"""

from __future__ import annotations

import os
import pickle
import re
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

# Timeout of every collective in groups made by ``init_from_env`` (seconds); the
# SPIKECVX_DIST_TIMEOUT environment variable overrides it.
DEFAULT_TIMEOUT_S = 300.0

__all__ = ["Communicator", "DistributedError", "communicator", "env_world_size", "init_from_env",
           "rank", "shard_range", "world_size"]


class DistributedError(RuntimeError):
    """A collective failed: another rank stopped or the group's timeout ran out."""


def _short(err: BaseException) -> str:
    """The first sentence of a backend error, without its source-file prefix."""
    text = re.sub(r"\[[^\]]*\.(cc|cpp|h|hpp):\d+\]\s*", "", " ".join(str(err).split()))
    return text.split(". ")[0][:200]


def _check_group(distributed):
    """The process group ``distributed`` names, or None for a one-process run."""
    if distributed is None or distributed is False:
        return None
    if not dist.is_available():
        raise ValueError("distributed: this torch build has no torch.distributed")
    if distributed is True:
        if not dist.is_initialized():
            raise ValueError("distributed=True needs an initialised default process group: call "
                             "torch.distributed.init_process_group first (or run under torchrun "
                             "and call spikecvx.distributed.init_from_env())")
        return dist.group.WORLD
    if isinstance(distributed, dist.ProcessGroup):
        return distributed
    if isinstance(distributed, Communicator):
        return distributed.group
    raise TypeError(f"distributed must be True, False, None, a torch.distributed.ProcessGroup or a "
                    f"Communicator; got {type(distributed).__name__}")


class Communicator:
    """Collectives of one process group on numpy arrays.

    Sums and extrema are taken in float64 whatever the input dtype; the other collectives keep
    the dtype. On a group whose backend is NCCL alone the arrays travel through the GPU of this
    rank; with gloo (or a ``cpu:gloo,cuda:nccl`` group) they stay on the CPU.
    """

    def __init__(self, group) -> None:
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        backend = str(dist.get_backend(group))
        self._device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" \
            else torch.device("cpu")
        # payload bytes this rank contributed to collectives (what it puts in, before the backend's
        # own algorithm: a ring all-reduce moves about 2 (k - 1) / k of it per rank)
        self.bytes_sent = 0

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, world_size={self.world_size})"

    def _run(self, name: str, fn, *args, **kwargs):
        try:
            return fn(*args, group=self.group, **kwargs)
        except (RuntimeError, dist.DistBackendError) as err:
            raise DistributedError(f"rank {self.rank}: {name} failed, another rank stopped or the "
                                   f"timeout ran out ({_short(err)})") from None

    def _global(self, rank: int) -> int:
        """The global rank of this group's rank ``rank`` (what torch's src / dst arguments take)."""
        return rank if self.group is dist.group.WORLD else dist.get_global_rank(self.group, rank)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(array)
        if array.dtype == np.uint64:
            array = array.view(np.int64)
        return torch.from_numpy(array.copy()).to(self._device)

    def _reduce(self, array, op) -> np.ndarray:
        a = np.asarray(array, dtype=np.float64)
        t = self._tensor(a)
        self.bytes_sent += a.nbytes
        self._run("all_reduce", dist.all_reduce, t, op=op)
        out = t.cpu().numpy()
        return out if np.ndim(array) else out.reshape(())

    def allreduce_sum(self, array) -> np.ndarray:
        """Sum over ranks, float64."""
        return self._reduce(array, dist.ReduceOp.SUM)

    def allreduce_max(self, array) -> np.ndarray:
        """Elementwise maximum over ranks, float64."""
        return self._reduce(array, dist.ReduceOp.MAX)

    def allreduce_min(self, array) -> np.ndarray:
        """Elementwise minimum over ranks, float64."""
        return self._reduce(array, dist.ReduceOp.MIN)

    def sum_scalar(self, value: float) -> float:
        return float(self.allreduce_sum(np.array([value]))[0])

    def broadcast(self, array, src: int = 0) -> np.ndarray:
        """``array`` of rank ``src`` on every rank (shape and dtype must agree; see
        ``broadcast_object`` otherwise)."""
        a = np.asarray(array)
        t = self._tensor(a)
        if self.rank == src:
            self.bytes_sent += a.nbytes
        self._run("broadcast", dist.broadcast, t, src=self._global(src))
        out = t.cpu().numpy()
        return out.view(a.dtype) if a.dtype == np.uint64 else out

    def allgather(self, array) -> list[np.ndarray]:
        """Every rank's array, in rank order; the first dimension may differ between ranks."""
        a = np.ascontiguousarray(array)
        sizes = self.allgather_sizes(a.shape[0] if a.ndim else 1)
        a2 = a.reshape(a.shape[0] if a.ndim else 1, *a.shape[1:])
        top = int(max(sizes))
        padded = np.zeros((top,) + a2.shape[1:], dtype=a2.dtype)
        padded[: len(a2)] = a2
        t = self._tensor(padded)
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        self.bytes_sent += padded.nbytes
        self._run("all_gather", dist.all_gather, parts, t)
        out = []
        for p, s in zip(parts, sizes):
            arr = p.cpu().numpy()[: int(s)]
            out.append(arr.view(a.dtype) if a.dtype == np.uint64 else arr)
        if not a.ndim:
            out = [o.reshape(()) for o in out]
        return out

    def gather(self, array, dst: int = 0) -> list[np.ndarray] | None:
        """Every rank's array on rank ``dst`` in rank order (None on the others); the first
        dimension may differ between ranks, the dtype and the other dimensions may not."""
        a = np.ascontiguousarray(array)
        if a.ndim == 0:
            raise ValueError("array must have at least one dimension (the rows gathered)")
        sizes = self.allgather_sizes(a.shape[0])
        top = int(max(sizes))
        padded = np.zeros((top,) + a.shape[1:], dtype=a.dtype)
        padded[: len(a)] = a
        t = self._tensor(padded)
        parts = [torch.empty_like(t) for _ in range(self.world_size)] if self.rank == dst else None
        self.bytes_sent += a.nbytes
        self._run("gather", dist.gather, t, gather_list=parts, dst=self._global(dst))
        if self.rank != dst:
            return None
        out = []
        for p, s in zip(parts, sizes):
            arr = p.cpu().numpy()[: int(s)]
            out.append(arr.view(a.dtype) if a.dtype == np.uint64 else arr)
        return out

    def allgather_sizes(self, n: int) -> np.ndarray:
        """One integer per rank, in rank order."""
        t = torch.tensor([int(n)], dtype=torch.int64, device=self._device)
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        self._run("all_gather", dist.all_gather, parts, t)
        return np.array([int(p.item()) for p in parts], dtype=np.int64)

    def broadcast_object(self, obj, src: int = 0):
        """A picklable object of rank ``src`` on every rank."""
        box = [obj]
        if self.rank == src:
            self.bytes_sent += len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        self._run("broadcast_object_list", dist.broadcast_object_list, box, src=self._global(src))
        return box[0]

    def barrier(self) -> None:
        self._run("barrier", dist.barrier)

    def check_same(self, name: str, array) -> None:
        """Raise ValueError on every rank unless ``array`` (float64) is identical on all ranks."""
        a = np.asarray(array, dtype=np.float64).ravel()
        lo, hi = self.allreduce_min(a), self.allreduce_max(a)
        bad = bool(np.any((lo != hi) & ~(np.isnan(lo) & np.isnan(hi))))
        if bad:
            raise ValueError(f"{name} differs between the ranks of the process group; every rank "
                             f"must pass the same one")


def communicator(distributed) -> Communicator | None:
    """``Communicator`` of the group ``distributed`` names (None for a one-process run).

    ``distributed``: False / None (one process), True (the default group, initialised), a
    ``torch.distributed.ProcessGroup``, or a ``Communicator`` (returned as it is)."""
    if isinstance(distributed, Communicator):
        return distributed
    group = _check_group(distributed)
    return None if group is None else Communicator(group)


def rank(distributed=True) -> int:
    """This process's rank in the group (0 when not distributed or no group is initialised)."""
    if distributed is True and not (dist.is_available() and dist.is_initialized()):
        return 0
    comm = communicator(distributed)
    return 0 if comm is None else comm.rank


def world_size(distributed=True) -> int:
    """Number of ranks in the group (1 when not distributed or no group is initialised)."""
    if distributed is True and not (dist.is_available() and dist.is_initialized()):
        return 1
    comm = communicator(distributed)
    return 1 if comm is None else comm.world_size


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows [start, stop) of rank ``rank`` when n rows are cut into ``world_size`` contiguous
    shards whose sizes differ by at most one (the first ranks get the extra rows)."""
    base, extra = divmod(int(n), int(world_size))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def env_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 when absent)."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"the WORLD_SIZE environment variable must be an integer, got {value!r}") from None


def _env_timeout() -> float:
    value = os.environ.get("SPIKECVX_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        out = float(value)
    except ValueError:
        out = -1.0
    if not out > 0:
        raise ValueError(f"SPIKECVX_DIST_TIMEOUT must be a positive number of seconds, got {value!r}")
    return out


def init_from_env(device: str | torch.device | None = None,
                  timeout_s: float | None = None) -> Communicator | None:
    """Initialise the default process group from torchrun's environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT); None when WORLD_SIZE is 1 or absent.

    The backend is gloo for CPU networks and ``cpu:gloo,cuda:nccl`` for CUDA ones (numpy
    collectives stay on gloo, tensors on the GPU use NCCL); each rank uses GPU LOCAL_RANK.
    Collectives time out after ``timeout_s`` (default SPIKECVX_DIST_TIMEOUT or 300 s).
    An already initialised default group is used as it is.
    """
    if env_world_size() <= 1:
        return None
    if dist.is_initialized():
        return Communicator(dist.group.WORLD)
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise ValueError(f"WORLD_SIZE is {env_world_size()} but {key} is not set: start the "
                             f"ranks with torchrun")
    timeout = _env_timeout() if timeout_s is None else float(timeout_s)
    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo",
                            timeout=timedelta(seconds=timeout))
    return Communicator(dist.group.WORLD)
