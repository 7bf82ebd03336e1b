import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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
    first, inverse = dedup_columns(m[:0])  # no rows: one (empty) pattern
    assert first.tolist() == [0] and inverse.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("kind", ["standard", "normalized", "orthogonal"])
def test_witnesses_are_seeded_and_shaped(kind):
    a = sample_witnesses(_net(), kind, witness_scale=2.0, seed=5)
    b = sample_witnesses(_net(seed=9), witness=kind, witness_scale=2.0, seed=5)
    c = sample_witnesses(_net(), kind, 2.0, 6)
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
    with pytest.raises(ValueError, match="witness must be one of"):
        sample_witnesses(net, "uniform")
    with pytest.raises(ValueError, match="witness_scale"):
        sample_witnesses(net, witness_scale=0)
    with pytest.raises(TypeError, match="witness_scale"):
        sample_witnesses(net, witness_scale="2")
    with pytest.raises(TypeError, match="seed"):
        sample_witnesses(net, seed=1.5)


def test_refused_inputs_and_arguments_name_the_argument():
    net = _net()
    x = torch.randn(6, 4, 3)
    cases = [
        (dict(X=x.to(torch.complex64)), TypeError, "X must hold real numbers"),
        (dict(X=x.numpy().astype(np.complex128)), TypeError, "X must hold real numbers"),
        (dict(X=x.tolist()), TypeError, "X must be a torch.Tensor or numpy array"),
        (dict(X=x.numpy().astype(object)), TypeError, "X must hold real numbers"),
        (dict(X=np.full((6, 4, 3), "1.0")), TypeError, "X must hold real numbers"),
        (dict(X=x[:, :0]), ValueError, "X must have at least one time step"),
        (dict(time_dim=2), ValueError, "time_dim"),
        (dict(time_dim=-1), ValueError, "time_dim"),
        (dict(time_dim=True), TypeError, "time_dim"),
        (dict(time_dim=1.0), TypeError, "time_dim"),
        (dict(dedup="yes"), TypeError, "dedup"),
        (dict(progress=1), TypeError, "progress"),
        (dict(memory_limit=1e9), TypeError, "memory_limit"),
        (dict(memory_limit=0), ValueError, "memory_limit"),
        (dict(batch_size=2.0), TypeError, "batch_size"),
        (dict(time_chunk="3"), TypeError, "time_chunk"),
        (dict(net="net"), TypeError, "net must be a ParallelSNN"),
    ]
    for kwargs, error, match in cases:
        args = dict(net=net, X=x) | kwargs
        with pytest.raises(error, match=match):
            spike_dictionary(**args)


def test_write_features_compiled_and_torch_paths_agree(monkeypatch):
    """The pass the dictionary runs, through the compiled kernel and through torch (the path
    of other devices), chunk by chunk, equals the one-shot features."""
    import spikecvx.snn.network as network

    for readout_at in ("last", "every"):
        net = _net(readout_at=readout_at, readout_bias=0.2, beta=0.9, layers=4)
        x = net.check_input(torch.randn(5, 11, 3) * 2)
        full = net.features(x).to(torch.uint8).numpy().reshape(5, -1, 24)
        for kernel in (network.KERNEL_DTYPES, ()):
            monkeypatch.setattr(network, "KERNEL_DTYPES", kernel)
            out = np.full((5, full.shape[1], 24), 7, dtype=np.uint8)
            state = None
            for t0 in range(0, 11, 4):
                t1 = min(11, t0 + 4)
                target = out[:, t0:t1] if readout_at == "every" else (out if t1 == 11 else None)
                state = net.write_features(x[:, t0:t1], state, target)
            assert np.array_equal(out, full), (readout_at, kernel)
        with pytest.raises(ValueError, match="out must be a uint8 array"):
            net.write_features(x, None, np.zeros((5, 11, 23), dtype=np.uint8))


# ---------------------------------------------------------------- property tests
_BAD = dict(  # refused values of each argument
    dtype=[np.complex64, np.complex128, object, np.str_], special=[np.nan, np.inf, -np.inf],
    shape=[(4, 0, 3), (0, 3, 3), (4, 3), (2, 3, 2), (1, 2, 3, 3)], time_dim=[2, -1, True, 1.0, None],
    batch_size=[0, -2, 2.5, "3", True], time_chunk=[0, 1.0, "2"], dedup=[1, "no", None],
)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 4), t=st.integers(1, 4), dtype=st.sampled_from([np.bool_, np.int32, np.float16,
                                                                       np.float32, np.float64]),
    huge=st.booleans(), time_dim=st.sampled_from([0, 1]), as_tensor=st.booleans(),
    batch_size=st.sampled_from([None, 1, 3]), time_chunk=st.sampled_from([None, 1, 2]),
    dedup=st.booleans(), readout_at=st.sampled_from(["last", "every"]), seed=st.integers(0, 2**16),
    bad=st.sampled_from([None] * 7 + sorted(_BAD)), pick=st.integers(0, 4),
)
def test_spike_dictionary_fuzzed(n, t, dtype, huge, time_dim, as_tensor, batch_size, time_chunk, dedup,
                                 readout_at, seed, bad, pick):
    """Either the dictionary the torch forward gives (uint8 0/1, right shape), or a TypeError /
    ValueError naming the argument. At most one argument is bad per example."""
    net = _net(readout_at=readout_at, beta=0.7)
    rng = np.random.default_rng(seed)
    shape = (n, t, 3)
    value = _BAD[bad][pick % len(_BAD[bad])] if bad else None
    if bad == "shape":
        shape = value
    x = rng.normal(size=shape) * 3
    if huge and x.size and dtype in (np.float32, np.float64):
        x.flat[rng.integers(x.size)] = 1e30
    x = x.astype(dtype if bad != "dtype" else value)
    if bad == "special":
        x = x.astype(np.float64)
        x.flat[rng.integers(x.size)] = value if x.size else None
    X = x if time_dim == 1 or x.ndim != 3 else x.transpose(1, 0, 2)  # as the layout time_dim names
    X = torch.as_tensor(X) if as_tensor and x.dtype.kind in "biuf" else X
    kwargs = dict(batch_size=batch_size, time_dim=time_dim, dedup=dedup, time_chunk=time_chunk)
    if bad in kwargs:
        kwargs[bad] = value
    if bad is None or (bad == "special" and not x.size):
        D = spike_dictionary(net, X, **kwargs)
        xb = torch.as_tensor(x.astype(np.float64)).float()
        ref = net.features(xb).to(torch.uint8).numpy().reshape(-1, 24)
        assert D.matrix.dtype == np.uint8 and set(np.unique(D.matrix)) <= {0, 1}
        assert D.n_neurons == 24 and D.matrix.shape[0] == ref.shape[0] == xb.shape[0] * D.steps
        assert np.array_equal(D.matrix[:, D.column_of_neuron], ref)
        return
    name = "X" if bad in ("dtype", "special", "shape") else bad
    with pytest.raises((TypeError, ValueError), match=f"^{name} "):
        spike_dictionary(net, X, **kwargs)
