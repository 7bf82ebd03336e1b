"""Run a function on several gloo ranks on localhost, each in its own spawned process.

``run_ranks(fn, world, *args)`` returns every rank's return value in rank order, or raises
``RankFailed`` with each failing rank's error. The ranks meet through a FileStore in a temporary
folder (no ports to pick) and every collective times out after ``timeout`` seconds, so a broken
test fails instead of hanging.
"""

from __future__ import annotations

import os
import queue
import tempfile
import traceback
from datetime import timedelta

import torch.distributed as dist
import torch.multiprocessing as mp


class RankFailed(RuntimeError):
    def __init__(self, errors: dict[int, str]):
        self.errors = errors
        lines = (f"rank {r}: {e.strip().splitlines()[-1]}" for r, e in sorted(errors.items()))
        super().__init__("; ".join(lines))


def _worker(rank, world, store_path, timeout, fn, args, out):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout))
    try:
        result = fn(rank, world, *args)
    except BaseException:  # reported to the parent, then the group goes down so peers stop
        out.put((rank, False, traceback.format_exc()))
        dist.destroy_process_group()
        raise SystemExit(1) from None
    out.put((rank, True, result))
    dist.destroy_process_group()


def run_ranks(fn, world: int, *args, timeout: float = 60.0):
    """fn(rank, world, *args) on ``world`` ranks; fn and args must be picklable."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        procs = [ctx.Process(target=_worker, args=(r, world, store, timeout, fn, args, out))
                 for r in range(world)]
        for p in procs:
            p.start()
        results, errors = {}, {}
        deadline = 3 * timeout + 60
        try:
            for _ in range(world):
                rank, ok, value = out.get(timeout=deadline)
                (results if ok else errors)[rank] = value
        except queue.Empty:
            errors.setdefault(-1, "no answer from some rank before the deadline")
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    if errors:
        raise RankFailed(errors)
    return [results[r] for r in range(world)]
