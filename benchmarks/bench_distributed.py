"""Row-sharded certified solves and dictionaries on 1, 2, 4 gloo ranks of one machine.

For each rank count k, k processes (spawned here, meeting through a FileStore) each take a
contiguous shard of the rows of one synthetic problem and solve it with ``distributed=``; the
table gives the wall time of the solve (slowest rank), its outer iterations, the payload bytes
one rank puts into collectives (``Communicator.bytes_sent``: all-reduce inputs, gathered rows,
broadcast results; a ring all-reduce moves about 2 (k - 1) / k of its input per rank) per outer
iteration, and the time against the one-process solve measured in the same run ("plain").
Every process, the one-process reference included, uses one BLAS thread.
The last block builds a de-duplicated spike dictionary the same way (global de-duplication:
one all-gather of P int32 labels per rank).

More ranks than cores oversubscribe the machine: those rows measure communication volume and
correctness, not speed.

Usage:  python benchmarks/bench_distributed.py [--n 20000] [--p 1000] [--ranks 1 2 4]
            [--losses squared logistic softmax hinge] [--json out.json]

Softmax runs twice per rank count: with its working-set rows gathered on rank 0 and with the
subproblem sharded (``convex.sharded.SOFTMAX_GATHER_MAX_BYTES`` set for each).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import timedelta

import numpy as np
from _machine import cpu_model
from threadpoolctl import threadpool_limits

REG_FRACTION = 20  # reg = reg_max / REG_FRACTION: a few dozen active columns


def warm_up(losses, distributed=None) -> None:
    """One small solve per loss first, so compiling the kernels is not timed."""
    from spikecvx.convex import solve

    for loss in losses:
        D, y = problem(200, 30, loss, seed=1)
        solve(D, y, loss, "l1", reg=1e-2, distributed=distributed)


def problem(n: int, p: int, loss: str, seed: int = 0):
    """A binary (n, p) uint8 design with repeated rows and columns, and labels for ``loss``."""
    rng = np.random.default_rng(seed)
    D = (rng.random((n, p)) < 0.3).astype(np.uint8)
    D[:, p // 2: p // 2 + p // 20] = D[:, : p // 20]  # repeated columns
    D[n // 2: n // 2 + n // 10] = D[: n // 10]  # repeated rows
    w = rng.normal(size=p) * (rng.random(p) < 0.05)
    z = D @ w + rng.normal(size=n)
    if loss == "squared":
        return D, z
    if loss == "softmax":  # three classes of equal size
        return D, np.digitize(z, np.quantile(z, [1 / 3, 2 / 3]))
    return D, np.where(z > np.median(z), 1.0, -1.0)


def variants(loss: str):
    """(row label, bytes limit of a gathered softmax working set): softmax runs both ways."""
    if loss == "softmax":
        return [("softmax, rows gathered", np.inf), ("softmax, sharded", 0)]
    return [(loss, None)]


def _rank(rank: int, world: int, store_path: str, n: int, p: int, losses, out_q) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch
    import torch.distributed as dist

    from spikecvx import ParallelSNN, spike_dictionary
    from spikecvx.convex import reg_max, sharded, solve
    from spikecvx.distributed import communicator, shard_range

    torch.set_num_threads(1)
    threadpool_limits(1)
    dist.init_process_group("gloo", store=dist.FileStore(store_path, world), rank=rank, world_size=world,
                            timeout=timedelta(seconds=600))
    comm = communicator(True)
    warm_up(losses, comm)
    a, b = shard_range(n, rank, world)
    rows = {}
    for loss in losses:
        D, y = problem(n, p, loss)
        reg = reg_max(D[a:b], y[a:b], loss, distributed=comm) / REG_FRACTION
        for label, limit in variants(loss):
            if limit is not None:
                sharded.SOFTMAX_GATHER_MAX_BYTES = limit
            comm.barrier()
            comm.bytes_sent = 0
            t0 = time.perf_counter()
            res = solve(D[a:b], y[a:b], loss, "l1", reg=reg, tol=1e-6, distributed=comm)
            seconds = time.perf_counter() - t0
            rows[label] = dict(seconds=seconds, n_iter=res.n_iter, bytes=comm.bytes_sent,
                               primal=res.primal, gap=res.gap, nnz=res.n_nonzero_rows)
    # a de-duplicated dictionary of 4 * n / 10 samples x 2048 neurons, rows sharded
    net = ParallelSNN(d_in=16, n_out=2, layers=2, branches=2, width=256, last_width=2048, seed=0)
    X = torch.randn(4 * n // 10, 8, 16, generator=torch.Generator().manual_seed(1))
    a, b = shard_range(len(X), rank, world)
    comm.barrier()
    comm.bytes_sent = 0
    t0 = time.perf_counter()
    Dd = spike_dictionary(net, X[a:b], dedup=True, distributed=comm)
    rows["dictionary"] = dict(seconds=time.perf_counter() - t0, bytes=comm.bytes_sent, n_iter=1,
                              distinct=Dd.n_distinct)
    out_q.put((rank, rows))
    dist.destroy_process_group()


def run_ranks(world: int, n: int, p: int, losses) -> dict:
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [ctx.Process(target=_rank, args=(r, world, os.path.join(tmp, "store"), n, p, losses, q))
                 for r in range(world)]
        for proc in procs:
            proc.start()
        results = dict(q.get(timeout=3600) for _ in range(world))
        for proc in procs:
            proc.join()
    # slowest rank's time, largest per-rank payload; primal / gap are the same on every rank
    out = {}
    for key in results[0]:
        per = [results[r][key] for r in range(world)]
        out[key] = dict(per[0], seconds=max(x["seconds"] for x in per), bytes=max(x["bytes"] for x in per))
    return out


def plain(n: int, p: int, losses) -> dict:
    from spikecvx.convex import reg_max, solve

    warm_up(losses)
    out = {}
    for loss in losses:
        D, y = problem(n, p, loss)
        reg = reg_max(D, y, loss) / REG_FRACTION
        t0 = time.perf_counter()
        res = solve(D, y, loss, "l1", reg=reg, tol=1e-6)
        out[loss] = dict(seconds=time.perf_counter() - t0, n_iter=res.n_iter, primal=res.primal, gap=res.gap)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--p", type=int, default=1000)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--losses", nargs="+", default=["squared", "logistic", "softmax", "hinge"])
    ap.add_argument("--json", default=None, help="also write the measurements here")
    args = ap.parse_args()
    threadpool_limits(1)
    cores = os.cpu_count()
    print(f"# {cpu_model()}, {cores} cores; n={args.n} p={args.p}; "
          f"{time.strftime('%Y-%m-%d')}")
    ref = plain(args.n, args.p, args.losses)
    runs = {k: run_ranks(k, args.n, args.p, args.losses) for k in args.ranks}
    print("\n| problem | ranks | seconds | x plain | outer iters | KiB sent / rank / iter | "
          "rel. primal diff |")
    print("|---|---|---|---|---|---|---|")
    for loss in args.losses:
        r = ref[loss]
        print(f"| {loss} + l1 | plain | {r['seconds']:.2f} | 1.00 | {r['n_iter']} | - | - |")
        for label, _ in variants(loss):
            for k, rows in runs.items():
                x = rows[label]
                diff = abs(x["primal"] - r["primal"]) / max(1.0, abs(r["primal"]))
                note = " (oversubscribed)" if k > cores else ""
                ratio = x["seconds"] / r["seconds"]
                print(f"| {label} + l1 | {k}{note} | {x['seconds']:.2f} | {ratio:.2f} | {x['n_iter']} | "
                      f"{x['bytes'] / x['n_iter'] / 1024:.1f} | {diff:.1e} |")
    for k, rows in runs.items():
        x = rows["dictionary"]
        print(f"| dictionary {4 * args.n // 10} x 2048, dedup | {k} | {x['seconds']:.2f} | - | - | "
              f"{x['bytes'] / 1024:.1f} | distinct {x['distinct']} |")
    if args.json:
        with open(args.json, "w") as f:
            record = dict(plain=ref, ranks={str(k): v for k, v in runs.items()}, n=args.n, p=args.p)
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
