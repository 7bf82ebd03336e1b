"""torch.distributed runs on 2 and 3 gloo ranks on localhost: collectives, row-sharded
dictionaries with global de-duplication, and the failure path. Each test spawns its ranks."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from dist_harness import RankFailed, run_ranks

from spikecvx import ParallelSNN, spike_dictionary
from spikecvx.dictionary import dedup_columns, dedup_columns_distributed
from spikecvx.distributed import communicator, rank, shard_range, world_size


def _net(seed=0, **kw):
    args = dict(d_in=3, n_out=2, layers=2, branches=2, width=12, last_width=40, seed=seed,
                readout="spike", beta=0.8)
    return ParallelSNN(**(args | kw))


def _inputs(n, T=6, seed=1):
    return torch.randn(n, T, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


# row shards of 3 ranks: uneven, one empty, and rank 2's rows all repeat rank 0's
SHARDS_3 = {0: np.arange(0, 9), 1: np.arange(9, 9), 2: np.array([0, 3, 3, 8])}


def _collectives_and_dictionaries(r, w):
    out = {}
    comm = communicator(True)
    out["rank_world"] = (rank(), world_size(), comm.rank, comm.world_size)
    out["sum"] = comm.allreduce_sum(np.full((2, 3), r + 1.0))
    out["max"] = comm.allreduce_max(np.array([r, -r], dtype=np.int64))
    out["bcast"] = comm.broadcast(np.arange(4.0) * (r + 1), src=w - 1)
    out["gather"] = comm.allgather(np.full((r + 1, 2), r, dtype=np.uint8))
    out["obj"] = comm.broadcast_object({"rank": r} if r == 1 else None, src=1)
    out["gathered"] = comm.gather(np.full(r, r, dtype=np.int64), dst=w - 1)
    if w == 3:  # a process group of ranks 0 and 2: its rank 1 is global rank 2
        import torch.distributed as dist

        group = dist.new_group([0, 2])
        if r != 1:
            sub = communicator(group)
            out["sub"] = (sub.rank, sub.world_size, sub.broadcast(np.array([float(r)]), src=1),
                          sub.gather(np.array([r]), dst=1), sub.allreduce_sum(np.array([r]))[0])
    # global de-duplication of random binary shards with few rows (many local coincidences)
    rng = np.random.default_rng(r)
    M = (rng.random((r + 2, 300)) < 0.3).astype(np.uint8)
    out["dedup_random"] = (M, *dedup_columns_distributed(M, comm))
    # a spike dictionary of this rank's samples
    X = _inputs(9)
    rows = SHARDS_3[r] if w == 3 else np.array_split(np.arange(9), w)[r]
    for at, kw in (("last", {}), ("every", {}), ("recurrent", dict(recurrent=True))):
        net_at = _net(readout_at="last" if at == "recurrent" else at, **kw)
        D = spike_dictionary(net_at, X[rows], dedup=True, distributed=True)
        out[f"dict_{at}"] = (D.matrix, D.column_of_neuron, D.representative, D.n_distinct)
    # every rank must pass the same network
    try:
        spike_dictionary(_net(seed=r), X[rows], distributed=True)
    except ValueError as err:
        out["net_error"] = str(err)
    return out


@pytest.mark.parametrize("world", [2, 3])
def test_collectives_and_global_dedup_match_one_process(world):
    res = run_ranks(_collectives_and_dictionaries, world)
    for r, out in enumerate(res):
        assert out["rank_world"] == (r, world, r, world)
        np.testing.assert_array_equal(out["sum"], np.full((2, 3), world * (world + 1) / 2))
        np.testing.assert_array_equal(out["max"], [world - 1, 0])
        np.testing.assert_array_equal(out["bcast"], np.arange(4.0) * world)
        assert [g.shape for g in out["gather"]] == [(k + 1, 2) for k in range(world)]
        assert all(np.all(g == k) and g.dtype == np.uint8 for k, g in enumerate(out["gather"]))
        assert out["obj"] == {"rank": 1}
        if r == world - 1:
            assert [g.tolist() for g in out["gathered"]] == [[k] * k for k in range(world)]
        else:
            assert out["gathered"] is None
        if world == 3 and r != 1:
            sub_rank, sub_world, bcast, gathered, total = out["sub"]
            assert (sub_rank, sub_world, bcast.tolist(), total) == (r // 2, 2, [2.0], 2.0)
            assert gathered is None if r == 0 else [g.tolist() for g in gathered] == [[0], [2]]
        assert "differs between the ranks" in out["net_error"]
    # de-duplication of the concatenated rows, in one process, is the reference
    full = np.concatenate([out["dedup_random"][0] for out in res])
    first, inverse = dedup_columns(full)
    assert len(first) < 300  # the case has duplicates globally ...
    assert len(dedup_columns(res[0]["dedup_random"][0])[0]) < len(first)  # ... and more on one shard
    for out in res:
        np.testing.assert_array_equal(out["dedup_random"][1], first)
        np.testing.assert_array_equal(out["dedup_random"][2], inverse)
    X = _inputs(9)
    for at, kw in (("last", {}), ("every", {}), ("recurrent", dict(recurrent=True))):
        rows = [SHARDS_3[r] if world == 3 else np.array_split(np.arange(9), world)[r] for r in range(world)]
        net = _net(readout_at="last" if at == "recurrent" else at, **kw)
        ref = spike_dictionary(net, X[np.concatenate(rows)], dedup=True)
        assert at == "every" or ref.n_distinct < ref.n_neurons  # the reference does merge columns
        got = np.concatenate([out[f"dict_{at}"][0] for out in res])
        np.testing.assert_array_equal(got, ref.matrix)
        for out in res:
            np.testing.assert_array_equal(out[f"dict_{at}"][1], ref.column_of_neuron)
            np.testing.assert_array_equal(out[f"dict_{at}"][2], ref.representative)
            assert out[f"dict_{at}"][3] == ref.n_distinct


def _fails_on_rank_1(r, w):
    comm = communicator(True)
    comm.allreduce_sum(np.ones(2))
    if r == 1:
        raise ValueError("bad data on rank 1")
    t0 = time.perf_counter()
    try:
        comm.allreduce_sum(np.ones(2))
    except Exception as err:  # the peers learn of the failure quickly, not at the timeout
        raise RuntimeError(f"{type(err).__name__} after {time.perf_counter() - t0:.1f} s: {err}") from None
    return "no error"


def test_a_failing_rank_stops_the_others_without_waiting_for_the_timeout():
    t0 = time.perf_counter()
    with pytest.raises(RankFailed) as info:
        run_ranks(_fails_on_rank_1, 3, timeout=120)
    assert time.perf_counter() - t0 < 100
    errors = info.value.errors
    assert sorted(errors) == [0, 1, 2]
    assert "ValueError: bad data on rank 1" in errors[1]
    for r in (0, 2):
        assert "DistributedError" in errors[r] and f"rank {r}: all_reduce failed" in errors[r]


def test_one_process_and_bad_arguments():
    assert communicator(None) is None and communicator(False) is None
    assert rank() == 0 and world_size() == 1
    with pytest.raises(ValueError, match="distributed=True needs an initialised default process group"):
        communicator(True)
    with pytest.raises(TypeError, match="distributed must be"):
        communicator("yes")
    with pytest.raises(ValueError, match="distributed=True"):
        spike_dictionary(_net(), _inputs(3), distributed=True)
    from spikecvx.convex import path, reg_max, solve
    from spikecvx.train.sg import train_sg

    D, y = np.eye(4), np.arange(4.0)
    for fn in (solve, reg_max, path):
        with pytest.raises(ValueError, match="distributed=True needs an initialised"):
            fn(D, y, distributed=True)
        with pytest.raises(TypeError, match="distributed must be"):
            fn(D, y, distributed="all")
    X, yb, Xv, yv = _sg_data()
    with pytest.raises(ValueError, match="distributed=True needs an initialised"):
        train_sg(_sg_net(), X, yb, Xv, yv, epochs=1, distributed=True)


@pytest.mark.parametrize("n,world", [(10, 3), (2, 3), (0, 2), (7, 1)])
def test_shard_ranges_cover_the_rows_once(n, world):
    ranges = [shard_range(n, r, world) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [b - a for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1


# ---------------------------------------------------------------- SG with DistributedDataParallel

def _sg_data(n=24, n_val=10):
    from spikecvx.tasks import first_last_xor

    X, y = first_last_xor(n + n_val, 5, seed=0)
    return X[:n], y[:n], X[n:], y[n:]


def _sg_net():
    from spikecvx.train.sg import sg_init

    net = ParallelSNN(2, 1, layers=2, branches=2, width=8, last_width=12, seed=1, dtype=torch.float64)
    return sg_init(net, seed=1)


# uneven shards, some empty (rank 1 of 3 has no rows at all)
SG_SHARDS = {2: [np.arange(0, 17), np.arange(17, 24)],
             3: [np.arange(0, 3), np.arange(3, 3), np.arange(3, 24)]}
VAL_SHARDS = {2: [np.arange(0, 4), np.arange(4, 10)],
              3: [np.arange(0, 10), np.arange(10, 10), np.arange(10, 10)]}


def _sg_rank(r, w):
    """Full batch, and (with 3 ranks) mini-batches of 5 rows over all ranks."""
    from spikecvx.train.sg import train_sg

    X, y, Xv, yv = _sg_data()
    tr, va = SG_SHARDS[w][r], VAL_SHARDS[w][r]
    out = []
    for batch_size in [None] + ([5] if w == 3 else []):
        net, rep = train_sg(_sg_net(), X[tr], y[tr], Xv[va], yv[va], lrs=(1e-2,), epochs=4, patience=10,
                            batch_size=batch_size, path_norm_reg=1e-3, distributed=True)
        out.append(({k: v.detach().numpy() for k, v in net.state_dict().items()}, rep.sg.runs[0].history))
    return out


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_equals_one_process_on_the_concatenated_rows(world):
    from spikecvx.train.sg import train_sg

    runs = run_ranks(_sg_rank, world)
    res = [out[0] for out in runs]
    X, y, Xv, yv = _sg_data()
    ref, rep = train_sg(_sg_net(), X, y, Xv, yv, lrs=(1e-2,), epochs=4, patience=10, path_norm_reg=1e-3)
    start = _sg_net().state_dict()
    for state, history in res:
        np.testing.assert_allclose(history, rep.sg.runs[0].history, rtol=1e-10)
        for k, v in ref.state_dict().items():
            assert not np.allclose(v.numpy(), start[k].numpy())  # the weights did move
            np.testing.assert_allclose(state[k], v.numpy(), rtol=1e-9, atol=1e-12)
    if world == 3:  # mini-batches over uneven shards (one empty): the ranks stay identical
        _mini_batches_agree([out[1] for out in runs])


def _mini_batches_agree(res):
    (s0, h0), *others = res
    assert len(h0) == 4 and np.all(np.isfinite(h0))
    for state, history in others:
        assert history == h0
        for k in s0:
            np.testing.assert_array_equal(state[k], s0[k])
