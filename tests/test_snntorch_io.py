"""snnTorch <-> ParallelSNN: identical spikes and readouts against snnTorch run step by step."""

import pytest
import torch
from torch import nn

snn = pytest.importorskip("snntorch")
from snntorch.utils import reset as snn_reset  # noqa: E402

from spikecvx.interop import from_snntorch, to_snntorch  # noqa: E402
from spikecvx.snn import ParallelSNN  # noqa: E402


def _tutorial(sizes, beta=0.9, threshold=1.0, reset="subtract", readout=True, seed=0, **leaky_kw):
    """Linear, Leaky, ..., [Linear]: the snnTorch tutorial network with bias-free random layers."""
    torch.manual_seed(seed)
    mods = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        leaky = snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset, init_hidden=True, **leaky_kw)
        mods += [nn.Linear(a, b, bias=False), leaky]
    if readout:
        mods.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
    seq = nn.Sequential(*mods)
    with torch.no_grad():
        for m in seq:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 1.0)
    return seq


def _step(seq, x):
    """Run an snnTorch Sequential step by step: (outputs (N, T, n_out), last Leaky's spikes)."""
    snn_reset(seq)
    leaky = [m for m in seq if isinstance(m, snn.Leaky)][-1]
    spikes = []
    hook = leaky.register_forward_hook(lambda mod, inp, out: spikes.append(out))
    try:
        outs = torch.stack([seq(x[:, t]) for t in range(x.shape[1])], 1)
    finally:
        hook.remove()
    return outs, torch.stack(spikes, 1)


def _x(d, seed=1, n=7, T=18):
    return (torch.rand(n, T, d, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


NETS = [  # (sizes, beta, threshold, reset, ends with a Linear readout)
    ([6, 10, 3], 0.9, 1.0, "subtract", True),
    ([6, 10, 10, 4], 0.8, 0.7, "subtract", True),
    ([5, 8, 8, 8, 12, 2], 0.95, 0.5, "zero", True),
    ([6, 9, 9, 5], 0.0, 0.8, "zero", False),
    ([6, 12, 7, 3], 1.0, 1.0, "subtract", True),
]


@pytest.mark.parametrize("sizes, beta, threshold, reset, readout", NETS)
def test_from_snntorch_spikes_identical(sizes, beta, threshold, reset, readout):
    seq = _tutorial(sizes, beta, threshold, reset, readout)
    net = from_snntorch(seq, readout_at="every")
    assert (net.reset, net.branches, net.readout) == (reset, 1, "spike")
    x = _x(sizes[0])
    outs, spikes = _step(seq, x)
    ours = net.hidden_states(x)[-1][0]
    assert ours.sum() > 0
    assert torch.equal(ours, spikes)
    torch.testing.assert_close(net(x), outs, rtol=1e-6, atol=1e-6)
    assert torch.equal(from_snntorch(seq)(x), net(x)[:, -1])  # readout_at="last": the final step


def test_reset_delay_false_zero_reset_spikes_identical():
    """An immediate zero reset and spikecvx's delayed zero reset give the same spike trains."""
    seq = _tutorial([6, 10, 10, 3], 0.9, 0.6, "zero", reset_delay=False)
    net = from_snntorch(seq, readout_at="every")
    x = _x(6, seed=4)
    outs, spikes = _step(seq, x)
    assert spikes.sum() > 0
    assert torch.equal(net.hidden_states(x)[-1][0], spikes)
    torch.testing.assert_close(net(x), outs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("branches", [1, 2, 3])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_to_snntorch_matches_network(branches, reset):
    net = ParallelSNN(6, 4, layers=4, branches=branches, width=12, last_width=6 * branches, beta=0.85,
                      threshold=0.6, reset=reset, readout="spike", readout_at="every", seed=branches)
    with torch.no_grad():
        net.readout_weight.normal_()
    seq = to_snntorch(net)
    x = _x(6, seed=2)
    outs, spikes = _step(seq, x)
    assert torch.equal(net.hidden_states(x)[-1][0], spikes)
    torch.testing.assert_close(net(x), outs, rtol=1e-6, atol=1e-6)
    assert all(m.bias is None for m in seq if isinstance(m, nn.Linear))


def test_round_trip_through_spikecvx():
    seq = _tutorial([6, 10, 10, 4], 0.8, 0.7, "subtract")
    back = to_snntorch(from_snntorch(seq))
    for a, b in zip(seq, back):
        assert type(a) is type(b)
        if isinstance(a, nn.Linear):
            assert torch.equal(a.weight, b.weight)
        else:
            assert (float(a.beta), float(a.threshold), a.reset_mechanism) == \
                (float(b.beta), float(b.threshold), b.reset_mechanism)
    x = _x(6, seed=9)
    assert torch.equal(_step(seq, x)[0], _step(back, x)[0])


def test_zero_biases_are_accepted():
    seq = _tutorial([6, 10, 3])
    lin = nn.Linear(6, 10)
    with torch.no_grad():
        lin.weight.copy_(seq[0].weight)
        lin.bias.zero_()
    seq[0] = lin
    net = from_snntorch(seq)
    assert torch.equal(net.hidden[0], seq[0].weight.T)


def _with(seq, index, module):
    seq[index] = module
    return seq


REFUSALS = [
    (lambda: _with(_tutorial([6, 10, 3]), 0, nn.Linear(6, 10)), r"layer 0 \(Linear\): bias"),
    (lambda: _with(_tutorial([6, 10, 3]), 1, snn.Leaky(beta=torch.full((10,), 0.9), init_hidden=True)),
     r"layer 1 \(Leaky\): beta has 10 values"),
    (lambda: _tutorial([6, 10, 3], reset="subtract", reset_delay=False),
     r"layer 1 \(Leaky\): reset_delay=False"),
    (lambda: _tutorial([6, 10, 3], inhibition=True), r"layer 1 \(Leaky\): inhibition"),
    (lambda: _tutorial([6, 10, 3], graded_spikes_factor=2.0), r"layer 1 \(Leaky\): graded_spikes_factor"),
    (lambda: _tutorial([6, 10, 3], reset="none"), r"layer 1 \(Leaky\): reset_mechanism='none'"),
    (lambda: _with(_tutorial([6, 10, 10, 3]), 3, snn.Leaky(beta=0.5, init_hidden=True)),
     r"layer 3 \(Leaky\): beta"),
    (lambda: _with(_tutorial([6, 10, 10, 3]), 3, snn.Leaky(beta=0.9, threshold=2.0, init_hidden=True)),
     r"layer 3 \(Leaky\): threshold"),
    (lambda: _with(_tutorial([6, 10, 3]), 2, nn.ReLU()), r"layer 2 is ReLU"),
    (lambda: nn.Sequential(nn.Flatten(), *_tutorial([6, 10, 3])), r"layer 0 is Flatten"),
    (lambda: _tutorial([6, 10, 8, 8, 3]), r"layer 2 \(Linear\): out_features=8"),
    (lambda: nn.Sequential(nn.Linear(6, 3, bias=False)), "no Leaky layer"),
]


@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature")
@pytest.mark.parametrize("make, match", REFUSALS)
def test_from_snntorch_refusals(make, match):
    with pytest.raises(ValueError, match=match):
        from_snntorch(make())


def test_type_errors_and_membrane_readout():
    with pytest.raises(TypeError, match="module"):
        from_snntorch([nn.Linear(2, 2)])
    net = ParallelSNN(4, 2, layers=3, branches=1, width=6, last_width=6, readout="membrane", seed=0)
    with pytest.raises(ValueError, match="readout='membrane'"):
        to_snntorch(net)
    with pytest.warns(UserWarning, match="readout='membrane'"):
        seq = to_snntorch(net, lossy=True)
    assert isinstance(seq[-1], nn.Linear)
    with pytest.raises(TypeError, match="net"):
        to_snntorch(seq)


def test_readout_at_is_checked():
    with pytest.raises(ValueError, match="readout_at"):
        from_snntorch(_tutorial([6, 10, 3]), readout_at="first")


def test_learnable_beta_and_threshold_read_as_values():
    seq = _tutorial([6, 10, 3], 0.7, 0.9, learn_beta=True, learn_threshold=True)
    net = from_snntorch(seq, readout_at="every")
    assert net.beta == float(seq[1].beta.detach()) and net.threshold == float(seq[1].threshold.detach())
    x = _x(6, seed=5)
    outs, spikes = _step(seq, x)
    assert torch.equal(net.hidden_states(x)[-1][0], spikes)
    torch.testing.assert_close(net(x), outs.detach(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("lossy", [False, True])
def test_to_snntorch_refuses_recurrent_networks(lossy):
    net = ParallelSNN(3, 2, layers=2, branches=1, width=4, last_width=4, recurrent=True)
    with pytest.raises(ValueError, match="recurrent"):
        to_snntorch(net, lossy=lossy)
