"""NIR export/import: exact round trips, agreement with snnTorch's NIR importer, refusals."""

import warnings

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from spikecvx.interop import from_nir, load_nir, save_nir, to_nir  # noqa: E402
from spikecvx.snn import ParallelSNN  # noqa: E402

CONFIGS = [  # (layers, branches, width, last_width, beta)
    (2, 1, 8, 12, 0.9),
    (3, 2, 12, 8, 0.8),
    (4, 3, 12, 18, 0.95),
    (3, 1, 10, 10, 0.0),
    (3, 4, 16, 8, 0.5),
]


def _net(layers, branches, width, last_width, beta, seed=0, dtype=torch.float32, **kw):
    opts = dict(threshold=0.6, reset="zero", readout="spike", readout_at="every") | kw
    net = ParallelSNN(9, 3, layers=layers, branches=branches, width=width, last_width=last_width,
                      beta=beta, seed=seed, dtype=dtype, **opts)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        net.readout_weight.copy_(torch.randn(net.readout_weight.shape, generator=gen))
    return net


def _inputs(seed, n=6, T=15, d=9):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, T, d, generator=g) < 0.5).float()


def import_from_nir(graph):
    """snnTorch's NIR importer (the test is skipped where snnTorch or nirtorch is absent)."""
    pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.import_nir import import_from_nir as snntorch_import

    return snntorch_import(graph)


def _run_snntorch(module, x):
    """Step an imported snnTorch graph module over time: (readout (N, T, n_out), last-layer spikes)."""
    import snntorch
    from snntorch.utils import reset as snn_reset

    snn_reset(module)
    leaky = [m for m in module.modules() if isinstance(m, snntorch.Leaky)][-1]
    spikes = []
    hook = leaky.register_forward_hook(lambda mod, inp, out: spikes.append(out))
    try:
        outs = [module(x[:, t])[0] for t in range(x.shape[1])]
    finally:
        hook.remove()
    return torch.stack(outs, 1), torch.stack(spikes, 1)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_is_exact(cfg, dtype):
    net = _net(*cfg, seed=3, dtype=dtype)
    back = from_nir(to_nir(net))
    assert back.config() == net.config()
    assert back.dtype == dtype
    for (name, a), b in zip(net.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name
    x = _inputs(1)
    assert torch.equal(net(x), back(x))


def test_file_round_trip(tmp_path):
    net = _net(3, 2, 12, 8, 0.9, seed=5, readout_at="last")
    path = save_nir(net, tmp_path / "net.nir")
    back = load_nir(path)
    assert back.config() == net.config()
    x = _inputs(2)
    assert torch.equal(net(x), back(x))
    with pytest.raises(FileNotFoundError, match="path"):
        load_nir(tmp_path / "missing.nir")


def test_graph_types_and_orientation():
    net = _net(3, 2, 12, 8, 0.8)
    g = to_nir(net)
    g.infer_types()  # raises if input/output types of connected nodes disagree
    assert g.nodes["input"].input_type["input"].tolist() == [9]
    assert g.nodes["output"].output_type["output"].tolist() == [3]
    assert g.nodes["fc0"].weight.shape == (12, 9)
    np.testing.assert_array_equal(g.nodes["fc0"].weight, net.hidden[0].detach().numpy().T)
    w1 = g.nodes["fc1"].weight  # block-diagonal: branch k maps its 6 inputs to its 4 outputs
    np.testing.assert_array_equal(w1[:4, :6], net.hidden[1][0].detach().numpy().T)
    np.testing.assert_array_equal(w1[4:, 6:], net.hidden[1][1].detach().numpy().T)
    assert not w1[:4, 6:].any() and not w1[4:, :6].any()
    lif = g.nodes["lif0"]
    np.testing.assert_allclose(lif.tau, 1e-4 / (1 - 0.8))
    np.testing.assert_allclose(lif.r * 1e-4 / lif.tau, 1.0)
    assert not lif.v_leak.any() and not lif.v_reset.any()
    np.testing.assert_array_equal(lif.v_threshold, 0.6)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_snntorch_import_matches(cfg):
    """snnTorch's own NIR importer (immediate zero reset) reproduces our spikes and readout."""
    net = _net(*cfg, seed=11)
    x = _inputs(4, n=8, T=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = import_from_nir(to_nir(net))
    outs, spikes = _run_snntorch(module, x)
    ours = net.hidden_states(x)[-1][0]
    assert ours.sum() > 0  # the comparison is about spikes, so there must be some
    assert torch.equal(spikes, ours)
    torch.testing.assert_close(outs, net(x), rtol=1e-6, atol=1e-6)


def test_snntorch_import_matches_bitwise_on_dyadic_values():
    """With weights, leak and inputs exact in binary, every sum is exact: outputs agree bit for bit."""
    net = _net(3, 2, 12, 8, 0.5, seed=2)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.round(p * 4) / 4)
    x = _inputs(6, n=8, T=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = import_from_nir(to_nir(net))
    outs, spikes = _run_snntorch(module, x)
    assert torch.equal(spikes, net.hidden_states(x)[-1][0])
    assert torch.equal(outs, net(x))


def test_readout_at_last_is_last_step_of_graph_output():
    net = _net(3, 1, 10, 10, 0.9, seed=7, readout_at="last")
    x = _inputs(8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs, _ = _run_snntorch(import_from_nir(to_nir(net)), x)
    torch.testing.assert_close(outs[:, -1], net(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kw, feature", [
    (dict(reset="subtract"), "reset='subtract'"),
    (dict(readout="membrane"), "readout='membrane'"),
])
def test_refuses_unrepresentable_unless_lossy(kw, feature):
    net = _net(3, 2, 12, 8, 0.9, **kw)
    with pytest.raises(ValueError, match=feature.replace("(", r"\(")):
        to_nir(net)
    with pytest.warns(UserWarning, match=feature):
        g = to_nir(net, lossy=True)
    back = from_nir(g)  # the approximation: the same weights with a zero reset and spike readout
    assert back.reset == "zero" and back.readout == "spike"
    assert torch.equal(back.hidden[0], net.hidden[0])


def test_lossy_subtract_export_changes_the_spikes():
    """Why subtract is refused: snnTorch's import of the lossy graph spikes like the zero-reset net."""
    net = _net(3, 2, 12, 8, 0.9, seed=4, reset="subtract")
    zero = _net(3, 2, 12, 8, 0.9, seed=4, reset="zero")
    x = _inputs(5, n=8, T=25)
    with pytest.warns(UserWarning):
        graph = to_nir(net, lossy=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, spikes = _run_snntorch(import_from_nir(graph), x)
    assert torch.equal(spikes, zero.hidden_states(x)[-1][0])
    assert not torch.equal(spikes, net.hidden_states(x)[-1][0])


def test_refuses_beta_one_and_bad_arguments():
    with pytest.raises(ValueError, match="beta=1"):
        to_nir(_net(3, 1, 8, 8, 1.0), lossy=True)
    with pytest.raises(TypeError, match="net"):
        to_nir("not a network")
    with pytest.raises(ValueError, match="dt"):
        to_nir(_net(3, 1, 8, 8, 0.9), dt=0.0)
    with pytest.raises(TypeError, match="lossy"):
        to_nir(_net(3, 1, 8, 8, 0.9), lossy="yes")


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _lif(n, tau=1e-3, dt=1e-4, thr=1.0):
    tau = np.full(n, tau)
    return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=np.full(n, thr), v_reset=np.zeros(n))


def _chain(mid, d_in=3, n_out=2):
    keys = ["in"] + [k for k, _ in mid] + ["out"]
    nodes = {"in": nir.Input(input_type=np.array([d_in])), "out": nir.Output(output_type=np.array([n_out]))}
    nodes.update(dict(mid))
    return _graph(nodes, list(zip(keys[:-1], keys[1:])))


def test_from_nir_reads_foreign_graph_and_lif_ending():
    """A graph not written by spikecvx (no metadata), ending in a LIF: identity readout, K inferred."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3))
    w1 = np.zeros((4, 4))
    w1[:2, :2], w1[2:, 2:] = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    g = _chain([("a", nir.Linear(weight=w0)), ("b", _lif(4)), ("c", nir.Linear(weight=w1)), ("d", _lif(4))],
               n_out=4)
    net = from_nir(g)
    assert net.branches == 2 and net.n_out == 4 and net.reset == "zero" and net.readout == "spike"
    assert net.beta == pytest.approx(0.9, abs=1e-12)
    torch.testing.assert_close(net.readout_weight, torch.eye(4, dtype=net.dtype))
    x = _inputs(1, d=3)
    assert torch.equal(net(x), net.hidden_states(x)[-1][0][:, -1])


@pytest.mark.parametrize("mid, match", [
    ([("a", nir.Linear(weight=np.ones((4, 3)))),
      ("cuba", nir.CubaLIF(tau_syn=np.ones(4), tau_mem=np.ones(4), r=np.ones(4), v_leak=np.zeros(4),
                           v_threshold=np.ones(4))),
      ("r", nir.Linear(weight=np.ones((2, 4))))], "'cuba' is a CubaLIF"),
    ([("aff", nir.Affine(weight=np.ones((4, 3)), bias=np.ones(4))), ("b", _lif(4)),
      ("r", nir.Linear(weight=np.ones((2, 4))))], "'aff'.*non-zero bias"),
    ([("a", nir.Linear(weight=np.ones((4, 3)))), ("leaky", nir.LIF(tau=np.full(4, 1e-3), r=np.full(4, 10.0),
                                                          v_leak=np.ones(4), v_threshold=np.ones(4))),
      ("r", nir.Linear(weight=np.ones((2, 4))))], "'leaky'.*v_leak"),
    ([("a", nir.Linear(weight=np.ones((4, 3)))), ("b", _lif(4)), ("c", nir.Linear(weight=np.ones((4, 4)))),
      ("d", _lif(4, tau=2e-3)), ("r", nir.Linear(weight=np.ones((2, 4))))], "'d'.*differ"),
    ([("a", nir.Linear(weight=np.ones((4, 3)))), ("b", _lif(4)), ("c", nir.Linear(weight=np.ones((5, 4)))),
      ("d", _lif(5)), ("e", nir.Linear(weight=np.ones((4, 5)))), ("f", _lif(4)),
      ("r", nir.Linear(weight=np.ones((2, 4))))], "'c': 5 neurons"),
    ([("a", nir.Linear(weight=np.ones((4, 3)))), ("b", _lif(4, tau=1e-3, dt=1e-3)),
      ("r", nir.Linear(weight=np.ones((2, 4))))], "'b'.*r \\* dt / tau"),
])
def test_from_nir_refuses_unmappable_nodes(mid, match):
    with pytest.raises(ValueError, match=match):
        from_nir(_chain(mid))


def test_from_nir_refuses_branch_metadata_that_weights_contradict():
    net = _net(3, 2, 12, 8, 0.9)
    g = to_nir(net)
    g.nodes["fc1"].weight[0, -1] = 1.0  # a connection across branches
    with pytest.raises(ValueError, match="'fc1'.*block-diagonal with 2 branches"):
        from_nir(g)
    g.metadata.clear()  # without the metadata the dense layer reads as one branch
    back = from_nir(g)
    assert back.branches == 1 and back.readout_at == "last"
    np.testing.assert_array_equal(back.hidden[1][0].detach().numpy(), g.nodes["fc1"].weight.T)


def test_from_nir_refuses_non_chain_graphs():
    g = _chain([("a", nir.Linear(weight=np.ones((4, 3)))), ("b", _lif(4)),
                ("r", nir.Linear(weight=np.ones((2, 4))))])
    g.edges.append(("b", "a"))
    with pytest.raises(ValueError, match="'b' has 2 outgoing edges"):
        from_nir(g)
    with pytest.raises(TypeError, match="graph"):
        from_nir({"nodes": {}})


def test_from_nir_accepts_zero_bias_affine():
    rng = np.random.default_rng(2)
    w0, wr = rng.normal(size=(4, 3)), rng.normal(size=(2, 4))
    g = _chain([("a", nir.Affine(weight=w0, bias=np.zeros(4))), ("b", _lif(4)), ("r", nir.Linear(weight=wr))])
    net = from_nir(g)
    np.testing.assert_array_equal(net.hidden[0].detach().numpy(), w0.T)
    np.testing.assert_array_equal(net.readout_weight.detach().numpy(), wr.T)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "two", True])
def test_from_nir_refuses_a_bad_branch_count_in_the_metadata(bad):
    g = to_nir(_net(3, 2, 12, 8, 0.9))
    key = next(k for k in g.metadata if k.endswith(".branches"))
    g.metadata[key] = bad
    with pytest.raises(ValueError, match="branches"):
        from_nir(g)


@pytest.mark.parametrize("lossy", [False, True])
def test_recurrent_network_is_refused(lossy):
    net = ParallelSNN(3, 2, layers=2, branches=1, width=4, last_width=4, reset="zero", readout="spike", recurrent=True)
    with pytest.raises(ValueError, match="recurrent"):
        to_nir(net, lossy=lossy)
