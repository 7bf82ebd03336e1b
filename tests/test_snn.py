import math

import numpy as np
import pytest
import torch

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
    ],
)
def test_bad_network_arguments(kwargs, match):
    args = dict(d_in=2, n_out=2, layers=3, branches=2, width=8, last_width=8) | kwargs
    with pytest.raises(ValueError, match=match):
        ParallelSNN(**args)


def test_bad_inputs():
    net = ParallelSNN(2, 2, layers=3, branches=2, width=8, last_width=8)
    with pytest.raises(ValueError, match="3-D"):
        net(torch.randn(4, 2))
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
