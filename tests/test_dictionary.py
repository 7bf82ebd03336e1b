import numpy as np
import pytest
import torch

from spikecvx import ParallelSNN, sample_witnesses, spike_dictionary, transfer_witnesses
from spikecvx.dictionary import dedup_columns, estimate_bytes
from spikecvx.dictionary.build import plan_passes


def _net(**kw):
    args = dict(d_in=3, n_out=2, layers=3, branches=2, width=16, last_width=24, seed=0)
    return ParallelSNN(**(args | kw))


@pytest.mark.parametrize("readout", ["membrane", "spike"])
@pytest.mark.parametrize("readout_at", ["last", "every"])
@pytest.mark.parametrize("reset,dtype", [("subtract", torch.float32), ("zero", torch.float64)])
def test_batched_dictionary_equals_one_shot_forward(readout, readout_at, reset, dtype):
    # reference: the differentiable torch forward (the parameters require grad, so net.features
    # takes the autograd scan, not the compiled no-grad kernel the dictionary builder uses)
    net = _net(readout=readout, readout_at=readout_at, reset=reset, dtype=dtype, readout_bias=0.3, beta=0.8)
    x = torch.randn(37, 9, 3, dtype=dtype) * 2
    full = net.features(x).to(torch.uint8).reshape(-1, 24).numpy()
    D = spike_dictionary(net, x, batch_size=5, time_chunk=4)
    assert D.matrix.dtype == np.uint8 and D.matrix.shape == full.shape
    assert np.array_equal(D.matrix, full)
    assert 0 < D.matrix.mean() < 1
    assert np.array_equal(spike_dictionary(net, x.numpy()).matrix, full)
    assert np.array_equal(spike_dictionary(net, x.transpose(0, 1), time_dim=0).matrix, full)
    for batch_size, time_chunk in [(1, 1), (37, None), (None, 2), (6, 9)]:
        D = spike_dictionary(net, x, batch_size=batch_size, time_chunk=time_chunk)
        assert np.array_equal(D.matrix, full), (batch_size, time_chunk)


def test_auto_passes_keep_working_memory_within_budget():
    net = _net(d_in=40, width=200, last_width=300, readout_at="every")
    for n, T, work in [(1000, 50, 1 << 20), (10, 2000, 1 << 20), (3, 4, 1 << 30)]:
        bs, tc = plan_passes(net, n, T, None, None, work_bytes=work)
        assert 1 <= bs <= n and 1 <= tc <= T
        if bs * tc > 1:  # a single row may exceed a tiny budget; anything larger may not
            assert estimate_bytes(net, n, tc, bs) - n * T * 300 <= work
        if work == 1 << 30:
            assert (bs, tc) == (n, T)  # everything fits in one pass
    # a fixed batch size is honoured and the time chunk is cut to fit
    bs, tc = plan_passes(net, 1000, 50, 64, None, work_bytes=1 << 20)
    assert bs == 64 and estimate_bytes(net, 1000, tc, 64) - 1000 * 50 * 300 <= 1 << 20


def test_dedup_round_trip_and_map_to_neurons():
    net = _net(readout="spike", readout_at="every", last_width=40)
    x = torch.randn(20, 6, 3)
    D = spike_dictionary(net, x)
    Dd = spike_dictionary(net, x, dedup=True)
    assert Dd.deduplicated and Dd.matrix.shape[1] == D.n_distinct == Dd.n_distinct
    assert Dd.matrix.shape[1] < 40  # random witnesses produce repeated patterns here
    # every neuron's column is recovered from the de-duplicated matrix
    assert np.array_equal(Dd.matrix[:, Dd.column_of_neuron], D.matrix)
    assert len({tuple(c) for c in D.matrix.T}) == Dd.n_distinct  # brute-force count
    # coefficients on distinct columns give the same outputs when spread to neurons
    coef = np.random.default_rng(0).normal(size=(Dd.matrix.shape[1], 3))
    assert np.allclose(D.matrix @ Dd.neuron_weights(coef), Dd.matrix @ coef)


def test_dedup_columns_small_example():
    m = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]], dtype=np.uint8)
    first, inverse = dedup_columns(m)
    assert first.tolist() == [0, 1] and inverse.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("kind", ["standard", "normalized", "orthogonal"])
def test_witnesses_are_seeded_and_shaped(kind):
    a = sample_witnesses(_net(), kind, scale=2.0, seed=5)
    b = sample_witnesses(_net(seed=9), kind, scale=2.0, seed=5)
    c = sample_witnesses(_net(), kind, scale=2.0, seed=6)
    for pa, pb, pc in zip(a.hidden, b.hidden, c.hidden):
        assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    w = a.hidden[1][0].double()  # (fan_in, width) of branch 0
    if kind == "normalized":
        assert torch.allclose(w.norm(dim=0), torch.full((w.shape[1],), 2.0, dtype=w.dtype))
    if kind == "orthogonal":  # 8 x 12: orthonormal rows, scaled by 2
        assert torch.allclose(w @ w.T, 4 * torch.eye(w.shape[0], dtype=w.dtype), atol=1e-5)
    x = torch.randn(10, 5, 3)
    assert np.array_equal(spike_dictionary(a, x).matrix, spike_dictionary(b, x).matrix)


def test_transfer_witnesses_copies_hidden_only():
    src, dst = _net(seed=1), _net(seed=2)
    with torch.no_grad():
        src.readout_weight.fill_(3.0)
    transfer_witnesses(src, dst)
    assert all(torch.equal(a, b) for a, b in zip(src.hidden, dst.hidden))
    assert dst.readout_weight.abs().sum() == 0
    with pytest.raises(ValueError, match="hidden layer 1"):
        transfer_witnesses(src, _net(last_width=12))
    with pytest.raises(ValueError, match="layers"):
        transfer_witnesses(src, _net(layers=4))


def test_memory_limit_and_bad_input():
    net = _net()
    x = torch.randn(50, 4, 3)
    need = estimate_bytes(net, 50, 4, 512)
    assert need >= 50 * 24
    with pytest.raises(ValueError, match="memory_limit"):
        spike_dictionary(net, x, memory_limit=need - 1)
    spike_dictionary(net, x, memory_limit=need)
    with pytest.raises(ValueError, match="X must be 3-D"):
        spike_dictionary(net, torch.randn(5, 3))
    with pytest.raises(ValueError, match="d_in"):
        spike_dictionary(net, torch.randn(5, 4, 2))
    bad = x.clone()
    bad[3, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        spike_dictionary(net, bad)
    with pytest.raises(ValueError, match="batch_size"):
        spike_dictionary(net, x, batch_size=0)
    with pytest.raises(ValueError, match="time_chunk"):
        spike_dictionary(net, x, time_chunk=0)
    with pytest.raises(ValueError, match="kind"):
        sample_witnesses(net, "uniform")
    with pytest.raises(ValueError, match="scale"):
        sample_witnesses(net, scale=0)
