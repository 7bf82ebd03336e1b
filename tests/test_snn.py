import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikecvx.snn import SURROGATE_GRADS, ParallelSNN, lif_scan, spike

snntorch = pytest.importorskip("snntorch")


def _snntorch_scan(cur, beta, threshold, reset):
    """Reference: snnTorch Leaky stepped over time (batch-major input)."""
    lif = snntorch.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset)
    mem = torch.zeros_like(cur[:, 0])
    spikes, mems = [], []
    for t in range(cur.shape[1]):
        s, mem = lif(cur[:, t], mem)
        spikes.append(s)
        mems.append(mem)
    return torch.stack(spikes, 1), torch.stack(mems, 1)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("beta,threshold", [(0.99, 1.0), (0.5, 0.7), (0.9, 2.0), (1.0, 1.0), (0.0, 0.5)])
@pytest.mark.parametrize("grad", [False, True])
def test_lif_scan_equals_snntorch(reset, beta, threshold, grad):
    g = torch.Generator().manual_seed(1)
    cur = torch.randn(8, 64, 13, generator=g) * 1.5
    ref_s, ref_u = _snntorch_scan(cur, beta, threshold, reset)
    with torch.set_grad_enabled(grad):
        s, u = lif_scan(cur.requires_grad_(grad), beta, threshold, reset)
    assert ref_s.sum() > 0 and (ref_s == 0).any()  # the test exercises both spikes and silences
    assert torch.equal(s.detach(), ref_s.detach())
    assert torch.equal(u.detach(), ref_u.detach())


def test_lif_scan_time_major_and_chunked():
    cur = torch.randn(4, 30, 6) * 2
    s, u = lif_scan(cur)
    s0, u0 = lif_scan(cur.transpose(0, 1).contiguous(), time_dim=0)
    assert torch.equal(s, s0.transpose(0, 1)) and torch.equal(u, u0.transpose(0, 1))
    s1, u1 = lif_scan(cur[:, :11])
    s2, u2 = lif_scan(cur[:, 11:], init=(u1[:, -1], s1[:, -1]))
    assert torch.equal(torch.cat([s1, s2], 1), s) and torch.equal(torch.cat([u1, u2], 1), u)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_stacked_network_equals_snntorch(reset):
    """A 3-layer-deep branch of ParallelSNN equals nn.Linear + Leaky stacks in snnTorch."""
    net = ParallelSNN(d_in=5, n_out=3, layers=4, branches=2, width=12, last_width=8, beta=0.8,
                      threshold=0.9, reset=reset, readout="spike", readout_at="every", seed=3)
    x = torch.randn(6, 55, 5)
    states = net.hidden_states(x)
    for k in range(2):  # each branch separately, through snnTorch
        h = x
        for i, w in enumerate(net.hidden):
            wk = w[:, k * 6:(k + 1) * 6] if i == 0 else w[k]
            lin = torch.nn.Linear(wk.shape[0], wk.shape[1], bias=False)
            lin.weight.data = wk.detach().T.clone()
            lif = snntorch.Leaky(beta=0.8, threshold=0.9, reset_mechanism=reset)
            mem = torch.zeros(6, wk.shape[1])
            ss, us = [], []
            for t in range(55):
                s, mem = lif(lin(h[:, t]), mem)
                ss.append(s)
                us.append(mem)
            h = torch.stack(ss, 1)
            width = wk.shape[1]
            ours_s, ours_u = states[i]
            sl = slice(k * width, (k + 1) * width)
            assert torch.equal(ours_s[..., sl], h)
            assert torch.allclose(ours_u[..., sl], torch.stack(us, 1), atol=1e-5)
    assert states[-1][0].sum() > 0


def test_surrogate_forward_is_exact_step_and_backward_matches_formula():
    x = torch.linspace(-2, 2, 401, dtype=torch.float64)
    expected = {
        "atan": 1.0 / (1 + (math.pi * x) ** 2),
        "fast_sigmoid": 1 / (25 * x.abs() + 1) ** 2,
        "sigmoid": 25 * torch.sigmoid(25 * x) * (1 - torch.sigmoid(25 * x)),
        "triangular": torch.clamp(1 - x.abs(), min=0),
        "straight_through": torch.ones_like(x),
    }
    assert set(expected) == set(SURROGATE_GRADS)
    for name, d in expected.items():
        xi = x.clone().requires_grad_(True)
        y = spike(xi, name)
        assert torch.equal(y.detach(), (x > 0).double())
        y.sum().backward()
        assert torch.allclose(xi.grad, d), name
    # fast sigmoid: its backward is the derivative of x / (1 + 25|x|) (numerical check)
    h = 1e-6
    xs = x[x.abs() > 1e-3]
    f = lambda v: v / (1 + 25 * v.abs())  # noqa: E731
    num = (f(xs + h) - f(xs - h)) / (2 * h)
    assert torch.allclose(num, 1 / (25 * xs.abs() + 1) ** 2, atol=1e-6)


def test_membrane_readout_uses_non_strict_tie():
    x = torch.tensor([-1.0, 0.0, 1.0])
    assert spike(x, strict=False).tolist() == [0.0, 1.0, 1.0]
    assert spike(x, strict=True).tolist() == [0.0, 0.0, 1.0]


def test_parallel_snn_shapes_dtypes_and_time_dim():
    for dtype in (torch.float32, torch.float64):
        net = ParallelSNN(3, 4, layers=3, branches=2, width=10, last_width=6, seed=0, dtype=dtype)
        x = torch.randn(7, 9, 3)
        assert net(x).shape == (7, 4) and net(x).dtype == dtype
        assert torch.equal(net(x), net(x.transpose(0, 1), time_dim=0))
    net.readout_at = "every"
    assert net(x).shape == (7, 9, 4)
    net2 = ParallelSNN(3, 4, layers=2, branches=3, width=9, last_width=9, seed=0)
    assert len(net2.hidden) == 1 and net2.features(x).shape == (7, 9)


def test_branches_are_independent_subnetworks():
    """Changing branch 1's weights leaves branch 0's features unchanged."""
    net = ParallelSNN(2, 1, layers=3, branches=2, width=8, last_width=8, seed=0,
                      readout="spike", readout_at="every")
    x = torch.randn(4, 20, 2) * 3
    f0 = net.features(x)
    with torch.no_grad():
        net.hidden[1][1].mul_(-1)
    f1 = net.features(x)
    assert torch.equal(f0[..., :4], f1[..., :4]) and not torch.equal(f0[..., 4:], f1[..., 4:])


def test_surrogate_training_gradient_flows():
    net = ParallelSNN(2, 2, layers=3, branches=2, width=8, last_width=8, seed=0)
    with torch.no_grad():
        net.readout_weight.normal_()
    x = torch.randn(16, 10, 2) * 2
    net(x).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.hidden)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(width=7), "width"),
        (dict(last_width=5), "last_width"),
        (dict(threshold=0.0), "threshold"),
        (dict(threshold=-1.0), "threshold"),
        (dict(beta=1.5), "beta"),
        (dict(beta=-0.1), "beta"),
        (dict(readout="foo"), "readout"),
        (dict(reset="foo"), "reset"),
        (dict(surrogate="foo"), "surrogate"),
        (dict(readout_at="sometimes"), "readout_at"),
        (dict(layers=1), "layers"),
        (dict(readout_bias=float("nan")), "readout_bias"),
        (dict(readout_bias=float("inf")), "readout_bias"),
        (dict(beta=float("nan")), "beta"),
        (dict(threshold=float("inf")), "threshold"),
        (dict(dtype=torch.int32), "dtype"),
        (dict(dtype=torch.float16), "dtype"),
        (dict(device="nowhere"), "device"),
        (dict(seed=-1), "seed"),
        (dict(seed=2**64), "seed"),
    ],
)
def test_bad_network_arguments(kwargs, match):
    args = dict(d_in=2, n_out=2, layers=3, branches=2, width=8, last_width=8) | kwargs
    with pytest.raises(ValueError, match=match):
        ParallelSNN(**args)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(layers="3"), "layers"),
        (dict(width=8.0), "width"),
        (dict(d_in=True), "d_in"),
        (dict(beta="0.9"), "beta"),
        (dict(beta=0.5 + 0j), "beta"),
        (dict(threshold="1"), "threshold"),
        (dict(readout_bias=1j), "readout_bias"),
        (dict(readout=None), "readout"),
        (dict(dtype="float32"), "dtype"),
        (dict(device=0), "device"),
        (dict(seed=1.5), "seed"),
        (dict(seed="0"), "seed"),
    ],
)
def test_network_argument_types(kwargs, match):
    args = dict(d_in=2, n_out=2, layers=3, branches=2, width=8, last_width=8) | kwargs
    with pytest.raises(TypeError, match=match):
        ParallelSNN(**args)


def test_complex_inputs_and_time_dims_are_refused():
    net = ParallelSNN(2, 2, layers=3, branches=2, width=8, last_width=8, seed=0)
    x = torch.randn(4, 5, 2)
    for bad in (x.to(torch.complex64), x.numpy().astype(np.complex128)):
        for call in (net, net.features, net.hidden_states):
            with pytest.raises(TypeError, match="x must hold real numbers"):
                call(bad)
        with pytest.raises(TypeError, match="x must hold real numbers"):
            net.step(bad[:, 0])
    with pytest.raises(TypeError, match="currents must be a real floating-point tensor"):
        lif_scan(x.to(torch.complex64))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        net(x.tolist())
    with pytest.raises(TypeError, match="x_t must be"):
        net.step(x[:, 0].tolist())
    with pytest.raises(ValueError, match="x_t must be 2-D"):
        net.step(x)
    for call in (net, net.features, net.hidden_states, lambda v, time_dim: lif_scan(v, time_dim=time_dim)):
        for td in (2, -1, 3):
            with pytest.raises(ValueError, match="time_dim"):
                call(x, time_dim=td)
        for td in (True, 1.0, "1"):
            with pytest.raises(TypeError, match="time_dim"):
                call(x, time_dim=td)
    with pytest.raises(TypeError, match="beta"):
        lif_scan(x, beta="0.5")
    with pytest.raises(ValueError, match="beta"):
        lif_scan(x, beta=float("nan"))
    # a numpy input gives what the same tensor gives
    assert torch.equal(net(x.numpy()), net(x))


def test_bad_inputs():
    net = ParallelSNN(2, 2, layers=3, branches=2, width=8, last_width=8)
    with pytest.raises(ValueError, match="3-D"):
        net(torch.randn(4, 2))
    with pytest.raises(ValueError, match="at least one time step"):
        net(torch.randn(4, 0, 2))
    with pytest.raises(ValueError, match="d_in"):
        net(torch.randn(4, 5, 3))
    bad = torch.randn(4, 5, 2)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        net(bad)
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="x contains"):
        net(bad)
    with pytest.raises(ValueError, match="time_dim"):
        net(torch.randn(4, 5, 2), time_dim=2)
    with pytest.raises(ValueError, match="beta"):
        lif_scan(torch.randn(2, 3, 4), beta=np.array([0.5, 2.0, 0.1, 0.2]))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_scan_equals_torch_scan_bitwise(reset, dtype):
    # the CPU no-grad path (compiled kernel) against the torch in-place scan used on other devices
    from spikecvx.snn.lif import _scan_cpu, _scan_inplace

    g = torch.Generator().manual_seed(3)
    cur = (torch.randn(5, 40, 7, generator=g) * 1.3).to(dtype)
    beta = torch.tensor([0.0, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0], dtype=dtype)
    init = (torch.randn(5, 7, generator=g).to(dtype), (torch.rand(5, 7, generator=g) > 0.5).to(dtype))
    saved = tuple(v.clone() for v in init)
    for state in (None, init):
        s1, u1 = _scan_cpu(cur, beta, 0.7, reset, state)
        s2, u2 = _scan_inplace(cur.transpose(0, 1), beta, 0.7, reset, state)
        assert s1.dtype == dtype and 0 < float(s1.mean()) < 1
        assert torch.equal(s1, s2.transpose(0, 1)) and torch.equal(u1, u2.transpose(0, 1))
    assert all(torch.equal(a, b) for a, b in zip(init, saved))  # the caller's state is not modified


def test_check_finite_fast_path_and_overflow():
    from spikecvx._validation import check_finite

    big = torch.full((4, 1000), 3e38)  # finite entries whose float32 sum overflows
    check_finite("x", big)
    check_finite("x", big.numpy())
    for value in (float("nan"), float("inf"), -float("inf")):
        bad = big.clone()
        bad[2, 7] = value
        with pytest.raises(ValueError, match="x contains NaN or inf"):
            check_finite("x", bad)
        with pytest.raises(ValueError, match="x contains NaN or inf"):
            check_finite("x", bad.numpy())


# ---------------------------------------------------------------- layout
@pytest.mark.parametrize("layers", [2, 3, 4])
def test_layout_matches_the_weights(layers):
    net = ParallelSNN(3, 2, layers=layers, branches=3, width=12, last_width=9, seed=0)
    assert [tuple(p.shape) for p in net.hidden] == net.layer_shapes
    assert net.layer_widths == [12] * (layers - 2) + [9]
    widths = [s.shape[-1] for s, _ in net.hidden_states(torch.randn(2, 3, 3))]
    assert widths == net.layer_widths


@pytest.mark.parametrize("layers", [2, 3])
def test_last_incoming_norms_and_with_last_neurons(layers):
    """References written per neuron: branch k's neuron j is feature k * per + j."""
    K, per = 3, 4
    net = ParallelSNN(3, 2, layers=layers, branches=K, width=6, last_width=K * per, seed=1,
                      readout_at="every", readout_bias=0.1)
    with torch.no_grad():
        net.readout_weight.normal_()
    w = net.hidden[-1].detach()
    incoming = [w[:, k * per + j] if layers == 2 else w[k][:, j] for k in range(K) for j in range(per)]
    assert torch.allclose(net.last_incoming_norms(), torch.stack([v.norm() for v in incoming]))
    keep = np.array([[3, 0], [1, 2], [0, 3]])
    small = net.with_last_neurons(keep)
    flat = [k * per + j for k in range(K) for j in keep[k]]
    x = torch.randn(5, 7, 3) * 2
    assert torch.equal(small.features(x), net.features(x)[..., flat])
    assert torch.equal(small.readout_weight, net.readout_weight[flat])
    assert small.last_width == 6 and small.n_out == 2
    readout = np.arange(K * per * 5, dtype=np.float64).reshape(K * per, 5)
    assert small.last_width == 6 and net.with_last_neurons(keep, readout).n_out == 5
    with pytest.raises(ValueError, match="keep"):
        net.with_last_neurons(np.array([[0, 4], [0, 1], [0, 1]]))
    with pytest.raises(ValueError, match="keep"):
        net.with_last_neurons(np.array([[0], [1]]))
    with pytest.raises(TypeError, match="keep"):
        net.with_last_neurons(keep.astype(float))
    with pytest.raises(ValueError, match="readout"):
        net.with_last_neurons(keep, readout[:5])


# ---------------------------------------------------------------- property tests
_SNN_ARGS = dict(  # valid and refused values of every constructor argument
    d_in=[1, 3, 0, -1, 2.0, "3", True], n_out=[1, 2, 0, 1.5], layers=[2, 3, 4, 1, "3", None],
    branches=[1, 2, 0, 2.0], width=[4, 8, 0, 5, 4.0], last_width=[2, 6, 0, 7, "6"],
    beta=[0.0, 0.5, 1.0, 1.5, -0.1, float("nan"), float("inf"), "0.5", 0.5j, True],
    threshold=[0.5, 1.0, 0.0, -1.0, float("inf"), float("nan"), "1"],
    reset=["subtract", "zero", "none", 1], readout=["membrane", "spike", "both", None],
    readout_at=["last", "every", "first"],
    readout_bias=[0.0, -0.3, 1e30, float("nan"), -float("inf"), 1j, "0"],
    surrogate=["atan", "sigmoid", "tanh"], recurrent=[False, True, 1, "yes"],
    seed=[None, 0, 7, -1, 1.5, 2**64],
    dtype=[torch.float32, torch.float64, torch.float16, torch.int64, "float32", np.float32],
    device=[None, "cpu", torch.device("cpu"), "nowhere", 0],
)
_VALID = dict(d_in=3, n_out=2, layers=3, branches=2, width=4, last_width=6, beta=0.5, threshold=1.0,
              reset="subtract", readout="membrane", readout_at="last", readout_bias=0.0, surrogate="atan",
              recurrent=False, seed=0, dtype=torch.float32, device=None)


@settings(max_examples=30, deadline=None)
@given(picks=st.fixed_dictionaries({k: st.sampled_from(v) for k, v in _SNN_ARGS.items()}),
       keep_valid=st.sets(st.sampled_from(sorted(_SNN_ARGS)), min_size=len(_SNN_ARGS) - 2))
def test_network_constructor_fuzzed(picks, keep_valid):
    """Either a network that runs and equals snnTorch-free references of its own layout, or a
    TypeError / ValueError whose message names an argument that was given."""
    kwargs = {k: (_VALID[k] if k in keep_valid else v) for k, v in picks.items()}
    try:
        net = ParallelSNN(**kwargs)
    except (TypeError, ValueError) as err:
        changed = [k for k in kwargs if k not in keep_valid]
        assert any(k in str(err) for k in changed), (err, changed)
        return
    assert [tuple(p.shape) for p in net.hidden] == net.layer_shapes
    assert net.config() == {k: kwargs[k] for k in net.config()}
    x = torch.randn(2, 3, net.d_in)
    out = net(x)
    steps = (3,) if net.readout_at == "every" else ()
    assert out.shape == (2, *steps, net.n_out) and out.dtype == net.dtype


@settings(max_examples=30, deadline=None)
@given(
    shape=st.sampled_from([(2, 3, 2), (1, 1, 2), (3, 2, 2), (0, 2, 2), (2, 0, 2), (2, 3, 3), (2, 3), (6,)]),
    dtype=st.sampled_from([np.bool_, np.int64, np.float16, np.float32, np.float64, np.complex64, object]),
    special=st.sampled_from([None, float("nan"), float("inf"), 1e30]),
    as_tensor=st.booleans(), time_dim=st.sampled_from([0, 1, 1, 2, True]), seed=st.integers(0, 999),
)
def test_forward_fuzzed(shape, dtype, special, as_tensor, time_dim, seed):
    """net(X): the outputs features(X) @ readout_weight computed from the float copy of X, or a
    TypeError / ValueError naming x or time_dim."""
    net = ParallelSNN(2, 2, layers=3, branches=2, width=4, last_width=4, seed=0, readout_at="every")
    with torch.no_grad():
        net.readout_weight.normal_()
    x = np.random.default_rng(seed).normal(size=shape) * 2
    if special is not None and x.size:
        x.flat[0] = special
    with np.errstate(invalid="ignore", over="ignore"):
        x = x.astype(dtype)
    X = torch.as_tensor(x) if as_tensor and x.dtype.kind in "biufc" else x
    try:
        out = net(X, time_dim=time_dim)
    except (TypeError, ValueError) as err:
        assert str(err).startswith(("x ", "time_dim ")), err
        return
    ref = torch.as_tensor(x.astype(np.float64)).float()
    ref = ref if time_dim == 1 else ref.transpose(0, 1)
    assert x.dtype.kind in "biuf" and bool(torch.isfinite(ref).all())
    expected = net.features(ref) @ net.readout_weight
    assert out.shape == (ref.shape[0], ref.shape[1], 2) and torch.equal(out, expected)
