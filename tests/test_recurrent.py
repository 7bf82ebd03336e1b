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
