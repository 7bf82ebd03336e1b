"""Recurrent LIF layers: snnTorch ``RLeaky`` golden tests, the dictionary fast path, witnesses,
pruning, surrogate-gradient training and checkpoints of ``ParallelSNN(recurrent=True)``."""

import numpy as np
import pytest
import torch

from spikecvx import ParallelSNN, sample_witnesses, spike_dictionary, transfer_witnesses
from spikecvx.snn import lif_scan

snntorch = pytest.importorskip("snntorch")


def _net(**kw):
    args = dict(d_in=3, n_out=2, layers=3, branches=2, width=16, last_width=12, beta=0.8, seed=0,
                recurrent=True)
    return ParallelSNN(**(args | kw))


def _snntorch_branch(net, k, x, reset):
    """Branch k of ``net`` rebuilt from snnTorch layers and stepped over time: per layer (spikes,
    membranes), each (N, T, width/K). Subtraction runs ``RLeaky`` (all_to_all, linear feedback);
    reset to zero runs ``Leaky`` on the input plus a recurrent ``Linear`` of the previous spikes
    (``RLeaky``'s reset to zero also drops that input, see docs/design/recurrent.md)."""
    K = net.branches
    h, out = x, []
    for i, w in enumerate(net.hidden):
        wk = (w[:, k * (w.shape[1] // K):(k + 1) * (w.shape[1] // K)] if i == 0 else w[k]).detach()
        v = net.recurrent_weights[i][k].detach()
        width = wk.shape[1]
        lin = torch.nn.Linear(wk.shape[0], width, bias=False)
        rec = torch.nn.Linear(width, width)  # RLeaky's feedback is a Linear with a bias: set to 0
        with torch.no_grad():
            lin.weight.copy_(wk.T)
            rec.weight.copy_(v.T)
            rec.bias.zero_()
        if reset == "subtract":
            lif = snntorch.RLeaky(beta=net.beta, threshold=net.threshold, linear_features=width,
                                  reset_mechanism="subtract", reset_delay=True)
            with torch.no_grad():
                lif.recurrent.weight.copy_(v.T)
                lif.recurrent.bias.zero_()
        else:
            lif = snntorch.Leaky(beta=net.beta, threshold=net.threshold, reset_mechanism="zero")
        spk, mem = torch.zeros(x.shape[0], width), torch.zeros(x.shape[0], width)
        ss, us = [], []
        for t in range(x.shape[1]):
            if reset == "subtract":
                spk, mem = lif(lin(h[:, t]), spk, mem)
            else:
                spk, mem = lif(lin(h[:, t]) + rec(spk), mem)
            ss.append(spk)
            us.append(mem)
        h = torch.stack(ss, 1)
        out.append((h, torch.stack(us, 1)))
    return out


@pytest.mark.parametrize("width", [5, 32, 257])
@pytest.mark.parametrize("beta,threshold", [(0.9, 1.0), (0.5, 0.7), (1.0, 1.5)])
@pytest.mark.parametrize("grad", [False, True])
def test_recurrent_scan_equals_snntorch_rleaky_exactly(width, beta, threshold, grad):
    """One recurrent layer on given currents: spikes and membranes bit for bit those of RLeaky
    (subtraction, all_to_all, linear feedback with zero bias), compiled and autograd scans."""
    g = torch.Generator().manual_seed(width)
    cur = torch.randn(8, 30, width, generator=g) * 1.5
    v = torch.randn(width, width, generator=g) * 0.5 / width ** 0.5
    lif = snntorch.RLeaky(beta=beta, threshold=threshold, linear_features=width, reset_delay=True)
    with torch.no_grad():
        lif.recurrent.weight.copy_(v.T)
        lif.recurrent.bias.zero_()
        spk, mem = torch.zeros(8, width), torch.zeros(8, width)
        ss, us = [], []
        for t in range(30):
            spk, mem = lif(cur[:, t], spk, mem)
            ss.append(spk)
            us.append(mem)
    ref_s, ref_u = torch.stack(ss, 1), torch.stack(us, 1)
    with torch.set_grad_enabled(grad):
        s, u = lif_scan(cur.clone().requires_grad_(grad), beta, threshold, recurrent=v)
    assert 0 < ref_s.mean() < 1
    assert torch.equal(s.detach(), ref_s) and torch.equal(u.detach(), ref_u)
    s0, _ = lif_scan(cur, beta, threshold)
    assert not torch.equal(s0, ref_s)  # the feedback changes the spikes


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("layers,branches,width,last_width,beta,threshold", [
    (2, 1, 4, 7, 0.9, 1.0), (3, 2, 16, 12, 0.8, 0.9), (4, 3, 15, 9, 0.5, 0.7), (3, 1, 10, 20, 1.0, 1.5),
])
@pytest.mark.parametrize("grad", [False, True])
def test_recurrent_network_equals_snntorch(reset, layers, branches, width, last_width, beta, threshold,
                                           grad):
    net = _net(layers=layers, branches=branches, width=width, last_width=last_width, beta=beta,
               threshold=threshold, reset=reset, readout="spike", readout_at="every")
    sample_witnesses(net, "standard", 1.0, seed=layers, recurrent_scale=0.5)
    x = torch.randn(6, 25, 3, generator=torch.Generator().manual_seed(branches))
    with torch.set_grad_enabled(grad):  # the compiled scan (no grad) and the autograd scan
        ours = net.hidden_states(x)
    for k in range(branches):
        ref = _snntorch_branch(net, k, x, reset)
        for (s, u), (ref_s, ref_u) in zip(ours, ref):
            n = ref_s.shape[-1]
            cols = slice(k * n, (k + 1) * n)
            assert torch.equal(s[..., cols].detach(), ref_s.detach())
            # the feed-forward products sum in another order than nn.Linear (as for Leaky)
            assert torch.allclose(u[..., cols].detach(), ref_u.detach(), rtol=0, atol=1e-4)
    spikes = ours[-1][0]
    assert 0 < spikes.mean() < 1
    plain = ParallelSNN(**(net.config() | dict(recurrent=False)))
    with torch.no_grad():
        for a, b in zip(net.hidden, plain.hidden):
            b.copy_(a)
        assert not torch.equal(plain.hidden_states(x)[-1][0], spikes.detach())  # feedback matters


def test_snntorch_rleaky_reset_to_zero_drops_the_input():
    """Why reset="zero" is not mapped to RLeaky: after a spike RLeaky's membrane is 0, whatever
    the input; spikecvx (like Leaky) keeps the input of that step."""
    lif = snntorch.RLeaky(beta=0.9, linear_features=1, reset_mechanism="zero")
    with torch.no_grad():
        lif.recurrent.weight.zero_()
        lif.recurrent.bias.zero_()
    spk, mem = lif(torch.tensor([[2.0]]), torch.zeros(1, 1), torch.zeros(1, 1))
    spk, mem = lif(torch.tensor([[0.5]]), spk, mem)
    _, u = lif_scan(torch.tensor([[[2.0], [0.5]]]), 0.9, reset="zero", recurrent=torch.zeros(1, 1))
    assert float(mem.detach()) == 0.0 and float(u[0, 1, 0]) == 0.5


# ---------------------------------------------------------------- network, dictionary, witnesses
def test_recurrent_option_adds_only_the_recurrent_weights():
    plain, rec = _net(recurrent=False), _net()
    assert sorted(plain.state_dict()) == ["hidden.0", "hidden.1", "readout_weight"]
    assert [tuple(p.shape) for p in rec.recurrent_weights] == [(2, 8, 8), (2, 6, 6)]
    assert rec.recurrent_shapes == [(2, 8, 8), (2, 6, 6)] and len(plain.recurrent_weights) == 0
    assert all(torch.equal(a, b) for a, b in zip(plain.hidden, rec.hidden))  # drawn after them
    assert rec.config()["recurrent"] is True and plain.config()["recurrent"] is False
    for bad in ("yes", 1, None):
        with pytest.raises(TypeError, match="recurrent"):
            _net(recurrent=bad)
    with pytest.raises(ValueError, match="recurrent must have shape"):
        lif_scan(torch.randn(2, 3, 6), recurrent=torch.zeros(4, 4))
    with pytest.raises(ValueError, match="recurrent must have shape"):
        lif_scan(torch.randn(2, 3, 6), recurrent=torch.zeros(4, 3, 3))
    with pytest.raises(TypeError, match="recurrent must have the dtype"):
        lif_scan(torch.randn(2, 3, 6), recurrent=torch.zeros(6, 6, dtype=torch.float64))


def test_zero_recurrent_weights_give_the_feed_forward_network():
    rec = _net(reset="zero", readout="membrane", readout_bias=0.2)
    plain = _net(recurrent=False, reset="zero", readout="membrane", readout_bias=0.2)
    with torch.no_grad():
        for w in rec.recurrent_weights:
            w.zero_()
    x = torch.randn(7, 9, 3) * 2
    for a, b in zip(rec.hidden_states(x), plain.hidden_states(x)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("readout", ["membrane", "spike"])
@pytest.mark.parametrize("readout_at", ["last", "every"])
@pytest.mark.parametrize("reset,dtype", [("subtract", torch.float32), ("zero", torch.float64)])
def test_recurrent_dictionary_equals_plain_forward(readout, readout_at, reset, dtype):
    """The dictionary's compiled fast path (batches, time chunks) equals the plain forward: the
    autograd scan, the no-grad scan and the torch scan of other devices."""
    import spikecvx.snn.lif as lif
    import spikecvx.snn.network as network

    net = _net(readout=readout, readout_at=readout_at, reset=reset, dtype=dtype, readout_bias=0.3)
    sample_witnesses(net, "standard", 1.0, seed=2, recurrent_scale=0.5)
    x = torch.randn(37, 9, 3, dtype=dtype) * 2
    full = net.features(x).detach().to(torch.uint8).reshape(-1, 12).numpy()
    with torch.no_grad():
        assert np.array_equal(net.features(x).to(torch.uint8).reshape(-1, 12).numpy(), full)
    for batch_size, time_chunk in [(5, 4), (1, 1), (37, None), (None, 2)]:
        D = spike_dictionary(net, x, batch_size=batch_size, time_chunk=time_chunk)
        assert np.array_equal(D.matrix, full), (batch_size, time_chunk)
    assert 0 < full.mean() < 1
    torch_path = pytest.MonkeyPatch()
    for module in (lif, network):  # the torch scan, as on other devices
        torch_path.setattr(module, "KERNEL_DTYPES", ())
    try:
        assert np.array_equal(spike_dictionary(net, x, batch_size=6, time_chunk=4).matrix, full)
    finally:
        torch_path.undo()
    plain = sample_witnesses(ParallelSNN(**(net.config() | dict(recurrent=False)), dtype=dtype),
                             "standard", 1.0, seed=2)  # the same feed-forward weights, no feedback
    assert not np.array_equal(spike_dictionary(plain, x).matrix, full)


def test_step_by_step_equals_forward():
    net = _net(readout_at="every")
    with torch.no_grad():
        net.readout_weight.normal_()
        x = torch.randn(4, 8, 3)
        state, outs = None, []
        for t in range(8):
            o, state = net.step(x[:, t], state)
            outs.append(o)
        assert torch.equal(torch.stack(outs, 1), net(x))


@pytest.mark.parametrize("kind", ["standard", "normalized", "orthogonal"])
def test_recurrent_witnesses(kind):
    net = sample_witnesses(_net(), kind, 2.0, seed=4, recurrent_scale=0.25)
    again = sample_witnesses(_net(seed=9), kind, 2.0, seed=4, recurrent_scale=0.25)
    plain = sample_witnesses(_net(recurrent=False), kind, 2.0, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(net.recurrent_weights, again.recurrent_weights))
    assert all(torch.equal(a, b) for a, b in zip(net.hidden, plain.hidden))
    unit = sample_witnesses(_net(), kind, 1.0, seed=4)
    for v, u in zip(net.recurrent_weights, unit.recurrent_weights):
        assert torch.allclose(v, u * 0.5)
        if kind != "standard":  # unit-norm incoming weights per neuron, as for the feed-forward
            assert torch.allclose(u.double().norm(dim=1), torch.ones(2, u.shape[2], dtype=torch.float64),
                                  atol=1e-5)
    wide = sample_witnesses(_net(width=240, last_width=240), kind, 1.0, seed=4, recurrent_scale=0.8)
    for v in wide.recurrent_weights:  # recurrent_scale is about the spectral radius
        radius = torch.linalg.eigvals(v.double()).abs().max(dim=1).values
        assert torch.allclose(radius, torch.full((2,), 0.8, dtype=torch.float64), rtol=0.15)
    off = sample_witnesses(_net(), kind, 1.0, seed=4, recurrent_scale=0.0)
    assert all(not w.any() for w in off.recurrent_weights)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="recurrent_scale"):
            sample_witnesses(_net(), kind, 1.0, seed=4, recurrent_scale=bad)


def test_transfer_witnesses_copies_recurrent_weights():
    src, dst = _net(seed=1), _net(seed=2)
    transfer_witnesses(src, dst)
    assert all(torch.equal(a, b) for a, b in zip(src.recurrent_weights, dst.recurrent_weights))
    with pytest.raises(ValueError, match="recurrent"):
        transfer_witnesses(src, _net(recurrent=False))


# ---------------------------------------------------------------- pruning, training, checkpoints
@pytest.mark.parametrize("layers", [2, 3])
def test_reconstruction_of_a_recurrent_network_is_exact(layers):
    """Pruning keeps every neuron that feeds a kept one: with dense feedback whole branches,
    with sparse feedback fewer; the outputs are D @ coef either way."""
    from spikecvx.convex import reg_max, solve
    from spikecvx.tasks import first_last_xor
    from spikecvx.train import reconstruct

    X, y = first_last_xor(200, 5, seed=0)
    net = _net(d_in=2, n_out=1, layers=layers, width=20, last_width=40)
    sample_witnesses(net, seed=1, recurrent_scale=0.3)
    for sparse in (False, True):
        if sparse:  # feedback only among the first 3 neurons of each branch
            with torch.no_grad():
                net.recurrent_weights[-1][:, 3:, :] = 0
                net.recurrent_weights[-1][:, :, 3:] = 0
        D = spike_dictionary(net, X, dedup=True)
        res = solve(D.matrix, y, "hinge", reg=reg_max(D.matrix, y, "hinge") / 20)
        coef = D.neuron_weights(res.coef)
        pruned = reconstruct(net, res, D)
        with torch.no_grad():
            out = pruned(torch.as_tensor(X)).double().numpy()[:, 0]
        assert np.allclose(out, D.matrix.astype(float) @ res.coef, atol=1e-5)
        used = np.count_nonzero(coef.reshape(2, 20), axis=1).max()
        if sparse:
            assert used <= pruned.last_width // 2 < 20
        else:
            assert pruned.last_width == net.last_width and used < 20
    with pytest.raises(ValueError, match="repeat"):
        net.with_last_neurons(np.array([[0, 0], [1, 2]]))


def test_with_last_neurons_keeps_the_recurrent_closure_in_order():
    net = _net(layers=2, branches=1, last_width=6)
    with torch.no_grad():
        v = torch.zeros(6, 6)
        v[4, 1] = 0.7  # 4 -> 1 -> 5: keeping 5 needs 1 and 4; 2 is padding for branch widths
        v[1, 5] = -0.3
        v[3, 3] = 0.5
        net.recurrent_weights[0].copy_(v[None])
        net.readout_weight.copy_(torch.arange(6.0)[:, None].repeat(1, 2))
    out = net.with_last_neurons(np.array([[5]]))
    assert out.last_width == 3
    assert torch.equal(out.readout_weight[:, 0], torch.tensor([0.0, 0.0, 5.0]))
    assert torch.equal(out.recurrent_weights[0][0], v[[1, 4, 5]][:, [1, 4, 5]])
    x = torch.randn(9, 12, 3) * 2
    with torch.no_grad():
        assert torch.equal(out.features(x)[:, 2], net.features(x)[:, 5])


def test_sg_training_learns_the_recurrent_weights():
    """A few surrogate-gradient steps (train_sg as it stands) change the recurrent weights and
    lower the loss on a task that needs memory (first-last XOR)."""
    from spikecvx.tasks import first_last_xor
    from spikecvx.train import train_sg
    from spikecvx.train.sg import sg_init

    X, y = first_last_xor(128, 6, seed=0)
    Xv, yv = first_last_xor(64, 6, seed=1)
    net = sg_init(_net(d_in=2, n_out=1, width=16, last_width=16, beta=0.9), seed=0)
    start = [v.detach().clone() for v in net.recurrent_weights]
    def val_loss(model):  # the logistic loss SG trains a +-1 hinge head with
        with torch.no_grad():
            out = model(torch.as_tensor(Xv))[:, 0].double()
        return float(torch.nn.functional.softplus(-torch.as_tensor(yv) * out).mean())

    trained, report = train_sg(net, X, y, Xv, yv, lrs=(1e-2,), epochs=15, batch_size=32, patience=15)
    assert val_loss(trained) == pytest.approx(report.sg.val_loss, rel=1e-5)
    assert val_loss(trained) < val_loss(net) - 0.05
    assert trained.recurrent
    for a, b in zip(start, trained.recurrent_weights):
        assert not torch.equal(a, b.detach())
    assert all(torch.equal(a, b) for a, b in zip(start, net.recurrent_weights))  # input untouched


def test_checkpoint_round_trip_of_a_recurrent_network(tmp_path):
    from spikecvx.interop import load_network, save_network

    net = _net(readout_at="every")
    with torch.no_grad():
        net.readout_weight.normal_()
    back, _ = load_network(save_network(net, tmp_path / "rec.pt"))
    assert back.recurrent and back.config() == net.config()
    assert all(torch.equal(a, b) for a, b in zip(net.recurrent_weights, back.recurrent_weights))
    x = torch.randn(4, 5, 3)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
