"""SG trainer, SG-CVX, hybrids, the method registry, fit reports, per-step heads, theory oracles,
checkpoints."""

import json

import numpy as np
import pytest
import torch

import spikecvx as sc
from spikecvx.convex import SolveResult, solve
from spikecvx.dictionary import spike_dictionary
from spikecvx.interop import FORMAT_VERSION, load_network, save_network
from spikecvx.tasks import addition, first_last_xor
from spikecvx.train import (
    METHODS,
    Certificate,
    FitReport,
    Head,
    default_heads,
    fine_tune,
    fit_cvx,
    fit_sg,
    fit_sg_cvx,
    get_method,
    path_norm,
    train_sg,
)
from spikecvx.train.heads import smooth_heads

NET = dict(layers=3, branches=2, width=16, last_width=32)


def _xor(T=4):
    return first_last_xor(300, T, 1), first_last_xor(200, T, 2), first_last_xor(400, T, 3)


def _acc(net, X, y):
    with torch.no_grad():
        return float(np.mean(np.where(net(torch.as_tensor(X))[:, 0].numpy() >= 0, 1, -1) == y))


def test_sg_learns_and_is_deterministic():
    (Xtr, ytr), (Xva, yva), (Xte, yte) = _xor()
    wide = dict(NET, width=40, last_width=100)
    a, rep = fit_sg(Xtr, ytr, Xva, yva, wide, epochs=40, lrs=(1e-2,), seed=3)
    b, _ = fit_sg(Xtr, ytr, Xva, yva, wide, epochs=40, lrs=(1e-2,), seed=3)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert rep.sg.val_loss < np.log(2) - 0.05  # better than the constant predictor
    assert _acc(a, Xte, yte) >= 0.95  # first-last XOR at T=4 is solved, not just beaten
    run = rep.sg.runs[0]
    assert run.epochs == len(run.history) and min(run.history) == rep.sg.val_loss


def test_sg_picks_the_learning_rate_with_lowest_validation_loss():
    (Xtr, ytr), (Xva, yva), _ = _xor()
    _, rep = fit_sg(Xtr, ytr, Xva, yva, NET, epochs=10, lrs=(1e-5, 1e-2), seed=0)
    losses = {r.lr: r.val_loss for r in rep.sg.runs}
    assert rep.sg.lr == min(losses, key=losses.get) and len(losses) == 2


def test_path_norm_regulariser_shrinks_readout():
    (Xtr, ytr), (Xva, yva), _ = _xor()
    plain, _ = fit_sg(Xtr, ytr, Xva, yva, NET, epochs=20, lrs=(1e-2,), seed=0)
    reg, _ = fit_sg(Xtr, ytr, Xva, yva, NET, epochs=20, lrs=(1e-2,), seed=0, path_norm_reg=0.05)
    assert float(path_norm(reg).detach()) < float(path_norm(plain).detach())


def test_weight_decay_shrinks_weights_and_augment_sees_every_batch():
    (Xtr, ytr), (Xva, yva), _ = _xor()
    plain, _ = fit_sg(Xtr, ytr, Xva, yva, NET, epochs=15, lrs=(1e-2,), seed=0)
    decayed, _ = fit_sg(Xtr, ytr, Xva, yva, NET, epochs=15, lrs=(1e-2,), seed=0, weight_decay=5.0)
    norm = lambda net: sum(float(p.detach().norm() ** 2) for p in net.parameters())  # noqa: E731
    assert norm(decayed) < 0.5 * norm(plain)
    seen = []

    def flip_sign(X, gen):  # flips the input: a network fit on it must differ
        seen.append(X.shape[0])
        return -X

    aug, _ = fit_sg(Xtr, ytr, Xva, yva, NET, epochs=2, lrs=(1e-2,), seed=0, batch_size=64, augment=flip_sign)
    assert seen == [64, 64, 64, 64, 44] * 2  # every training batch, never validation
    ref, _ = fit_sg(Xtr, ytr, Xva, yva, NET, epochs=2, lrs=(1e-2,), seed=0, batch_size=64)
    assert not all(torch.equal(p, q) for p, q in zip(aug.parameters(), ref.parameters()))
    with pytest.raises(ValueError, match="weight_decay"):
        fit_sg(Xtr, ytr, Xva, yva, NET, epochs=1, weight_decay=-1.0)
    with pytest.raises(ValueError, match="augment"):
        fit_sg(Xtr, ytr, Xva, yva, NET, epochs=1, augment=3)


def test_sg_cvx_keeps_sg_witnesses_and_certifies():
    (Xtr, ytr), (Xva, yva), (Xte, yte) = _xor()
    sg, _ = fit_sg(Xtr, ytr, Xva, yva, NET, epochs=20, lrs=(1e-2,), seed=0)
    model, rep = fit_sg_cvx(Xtr, ytr, Xva, yva, NET, sg_net=sg, n_regs=4)
    assert rep.method == "sg-cvx" and rep.heads["y"].certificate.rel_gap <= 1e-6
    for src, dst in zip(sg.hidden[:-1], model.hidden[:-1]):
        assert torch.equal(src, dst)


def test_fine_tune_from_cvx_trains_the_network_with_logistic_loss():
    (Xtr, ytr), (Xva, yva), _ = _xor()
    net, _ = fit_cvx(Xtr, ytr, Xva, yva, NET, n_regs=4)
    tuned, rep = fine_tune(net, Xva, yva, Xtr, ytr, epochs=5, lrs=(1e-3,))
    assert rep.method == "fine-tune"
    assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), tuned.parameters()))
    with torch.no_grad():  # the kept state is the one with the reported validation (logistic) loss
        out = tuned(torch.as_tensor(Xtr))[:, 0]
        logistic = torch.nn.functional.softplus(-torch.as_tensor(ytr, dtype=out.dtype) * out).mean()
    assert float(logistic) == pytest.approx(rep.sg.val_loss, rel=1e-5)


def test_multi_head_every_step_cvx_and_step_matches_forward():
    A, V = addition(64, 3, 3, 1), addition(32, 3, 3, 2)
    heads = [Head("sum", 3), Head("carry", 3)]
    kw = dict(NET, readout="spike", readout_at="every", beta=0.5)
    net, rep = fit_cvx(A.X, [A.sum, A.carry], V.X, [V.sum, V.carry], kw, heads=heads, n_regs=3,
                       min_ratio=0.1, witness_scale=3.0)
    assert set(rep.heads) == {"sum", "carry"} and net.n_out == 6
    x = torch.as_tensor(A.X[:5])
    with torch.no_grad():
        full = net(x)
        state, steps = None, []
        for t in range(x.shape[1]):
            out, state = net.step(x[:, t], state)
            steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), full)


def test_grid_chooses_best_validation_point():
    (Xtr, ytr), (Xva, yva), _ = _xor()
    _, rep = fit_cvx(Xtr, ytr, Xva, yva, NET, n_regs=3, grid=dict(beta=[0.5, 0.99]))
    scores = {g["beta"]: g["val_score"] for g in rep.grid}
    assert rep.chosen["beta"] == max(scores, key=scores.get)
    with pytest.raises(ValueError, match="grid key"):
        fit_cvx(Xtr, ytr, Xva, yva, NET, grid=dict(width=[4]))


def test_bad_targets_and_witness_shapes():
    (Xtr, ytr), (Xva, yva), _ = _xor()
    with pytest.raises(ValueError, match="y_val"):
        fit_cvx(Xtr, ytr, Xva, yva[:10], NET)
    with pytest.raises(ValueError, match="must be -1 or \\+1"):
        train_sg(sc.ParallelSNN(2, 1, **NET), Xtr, ytr * 2, Xva, yva, heads=[Head("y", 1, "logistic")])
    other = sc.ParallelSNN(2, 1, layers=3, branches=2, width=8, last_width=32)
    with pytest.raises(ValueError):
        fit_sg_cvx(Xtr, ytr, Xva, yva, NET, sg_net=other)


# ---------------------------------------------------------------- theory oracle
def _halfplane_patterns(X):
    """Every pattern 1[x_i . w >= 0] over w in R^2, by sweeping w across the critical angles."""
    angles = np.arctan2(X[:, 1], X[:, 0])
    crit = np.concatenate([angles + np.pi / 2, angles - np.pi / 2])
    eps = 1e-7
    cand = np.concatenate([crit - eps, crit + eps])
    W = np.stack([np.cos(cand), np.sin(cand)])
    P = (X @ W >= 0).astype(np.uint8)
    return np.unique(P, axis=1), W


def test_convex_optimum_over_all_patterns_bounds_every_network():
    """2-D inputs, one threshold layer (scale invariant: membrane readout at bias 0): the convex
    optimum over the enumerated dictionary is <= the objective of random and SG networks, and the
    reconstructed network attains it."""
    rng = np.random.default_rng(0)
    n, reg = 24, 0.01
    X = rng.normal(size=(n, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    full, directions = _halfplane_patterns(X)
    opt = solve(full, y, "squared", "l1", reg=reg, tol=1e-12)

    def objective(F, v):
        return 0.5 * np.mean((F @ v - y) ** 2) + reg * np.abs(v).sum()

    # witness networks: their patterns are a subset of the enumeration, so they cannot beat it
    Xs = torch.as_tensor(X[:, None, :], dtype=torch.float64)
    net = sc.ParallelSNN(2, 1, layers=2, branches=2, width=2, last_width=400, beta=0.0,
                         readout="membrane", dtype=torch.float64, seed=1)
    D = sc.spike_dictionary(net, Xs, dedup=True)  # Gaussian witnesses: a subset of the patterns
    full_set = {c.tobytes() for c in full.T}
    assert all(c.tobytes() in full_set for c in D.matrix.T)
    assert solve(D.matrix, y, "squared", "l1", reg=reg, tol=1e-12).primal >= opt.primal - 1e-9
    # witnesses at the critical directions realise every pattern: the optimum is attained
    net = sc.ParallelSNN(2, 1, layers=2, branches=2, width=2, last_width=directions.shape[1], beta=0.0,
                         readout="membrane", dtype=torch.float64)
    with torch.no_grad():
        net.hidden[0].copy_(torch.as_tensor(directions))
    D = sc.spike_dictionary(net, Xs, dedup=True)
    res = solve(D.matrix, y, "squared", "l1", reg=reg, tol=1e-10)  # 1e-12 is at the float64 floor here
    assert len({c.tobytes() for c in D.matrix.T}) == full.shape[1]
    assert res.primal == pytest.approx(opt.primal, rel=1e-8)
    recon = sc.reconstruct(net, res, D)
    with torch.no_grad():
        out = recon(Xs)[:, 0].numpy()
    assert 0.5 * np.mean((out - y) ** 2) + reg * np.abs(recon.readout_weight.detach().numpy()).sum() \
        == pytest.approx(opt.primal, rel=1e-8)
    # random search: random hidden weights and least-squares / random readouts
    for _ in range(50):
        F = (X @ rng.normal(size=(2, 8)) >= 0).astype(float)
        v = np.linalg.lstsq(F, y, rcond=None)[0]
        assert objective(F, v) >= opt.primal - 1e-12
        assert objective(F, rng.normal(size=8)) >= opt.primal - 1e-12
    # SG-trained network of the same family: scale the readout as the path norm prescribes
    sg = sc.ParallelSNN(2, 1, layers=2, branches=2, width=2, last_width=16, beta=0.0, seed=2,
                        dtype=torch.float64)
    sg_net, _ = train_sg(sg, Xs, y, Xs, y, heads=[Head("y", 1, "squared")], epochs=30, lrs=(1e-2,))
    with torch.no_grad():
        F = sg_net.features(Xs).numpy()
    v = sg_net.readout_weight.detach().numpy()[:, 0]
    assert objective(F, v) >= opt.primal - 1e-12


# ---------------------------------------------------------------- checkpoints
def test_network_checkpoint_round_trip(tmp_path):
    net = sc.ParallelSNN(3, 4, layers=3, branches=2, width=8, last_width=6, beta=0.7, readout="spike",
                         readout_at="every", seed=1, dtype=torch.float64)
    with torch.no_grad():
        net.readout_weight.normal_()
    path = save_network(net, tmp_path / "net.pt", metadata=dict(note="x"))
    back, meta = load_network(path)
    assert meta == dict(note="x") and back.config() == net.config() and back.dtype == torch.float64
    x = torch.rand(5, 7, 3, dtype=torch.float64)
    assert torch.equal(back(x), net(x))


def test_checkpoint_newer_version_and_missing_file(tmp_path):
    net = sc.ParallelSNN(2, 1, **NET)
    path = save_network(net, tmp_path / "net.pt")
    blob = torch.load(path, weights_only=True)
    blob["version"] = FORMAT_VERSION + 1
    torch.save(blob, path)
    with pytest.raises(ValueError, match="newer"):
        load_network(path)
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path / "nope.pt")


# ---------------------------------------------------------------- registry and reports
def _assert_round_trip(rep: FitReport):
    text = json.dumps(rep.to_dict())
    back = FitReport.from_dict(json.loads(text))
    assert back == rep and back.to_dict() == rep.to_dict()


def test_fit_reports_round_trip_through_json():
    (Xtr, ytr), (Xva, yva), _ = _xor()
    A, V = addition(48, 3, 3, 1), addition(24, 3, 3, 2)
    kw = dict(NET, readout="spike", readout_at="every", beta=0.5)
    heads = [Head("sum", 3), Head("carry", 3)]
    _, multi = fit_cvx(A.X, [A.sum, A.carry], V.X, [V.sum, V.carry], kw, heads=heads, n_regs=2,
                       min_ratio=0.1, grid=dict(witness_scale=[1.0, 3.0]))
    _, hybrid = fit_sg_cvx(Xtr, ytr, Xva, yva, NET, n_regs=2, sg_kwargs=dict(epochs=3, lrs=(1e-2, 1e-3)))
    _, tuned = METHODS["cvx-sg"].fit(Xtr, ytr, Xva, yva, NET, n_regs=2, epochs=2)
    _, sgsg = METHODS["sg-sg"].fit(Xtr, ytr, Xva, yva, NET, epochs=2, lrs=(1e-2,))
    for rep in (multi, hybrid, tuned, sgsg):
        _assert_round_trip(rep)
    assert list(multi.heads) == ["sum", "carry"] and len(multi.grid) == 2
    assert multi.chosen in [{k: v for k, v in g.items() if k != "val_score"} for g in multi.grid]
    assert hybrid.sg_stage.method == "sg" and len(hybrid.sg_stage.sg.runs) == 2
    assert tuned.method == "cvx-sg" and tuned.fine_tune.method == "fine-tune" and tuned.heads
    assert sgsg.method == "sg-sg" and sgsg.sg is not None and sgsg.fine_tune.sg.lr == 1e-3
    with pytest.raises(ValueError, match="unknown FitReport keys"):
        FitReport.from_dict(dict(multi.to_dict(), headz={}))


def test_head_fit_holds_the_chosen_solve_and_its_certificate():
    (Xtr, ytr), (Xva, yva), _ = _xor()
    net, rep = fit_cvx(Xtr, ytr, Xva, yva, NET, n_regs=4)
    head = rep.heads["y"]
    assert isinstance(head.solution, SolveResult)
    assert head.certificate == Certificate.of(head.solution) and head.reg == head.solution.reg
    assert head.val_acc == max(p.val_acc for p in head.path)
    assert head.certificate.reg in [p.reg for p in head.path]
    assert rep.neurons_kept == head.solution.n_nonzero_rows
    # the network's readout is the solution: outputs equal the dictionary times the coefficients
    D = spike_dictionary(net, torch.as_tensor(Xtr)).matrix
    with torch.no_grad():
        out = net(torch.as_tensor(Xtr))[:, 0].double().numpy()
    assert np.allclose(out, D @ net.readout_weight.detach().double().numpy()[:, 0], atol=1e-5)
    assert rep.dictionary.distinct <= rep.dictionary.neurons == 32


def test_default_heads_one_rule():
    assert default_heads(np.array([-1, 1, 1])) == [Head("y", 1, "hinge")]
    assert default_heads(np.array([0, 2, 1])) == [Head("y", 3, "softmax")]
    assert default_heads(np.array([0, 1]), n_classes=4) == [Head("y", 4, "softmax")]
    assert default_heads(np.array([-1, 1]), "logistic") == [Head("y", 1, "logistic")]
    assert smooth_heads(default_heads(np.array([-1, 1]))) == [Head("y", 1, "logistic")]
    with pytest.raises(ValueError, match="loss"):
        default_heads(np.array([0, 1]), "adam")
    with pytest.raises(ValueError, match="heads"):
        default_heads([np.zeros(3), np.zeros(3)])
    # every entry point applies it: CVX trains hinge, SG and fine-tuning train its smooth version
    (Xtr, ytr), (Xva, yva), _ = _xor()
    _, cvx = fit_cvx(Xtr, ytr, Xva, yva, NET, n_regs=2)
    assert cvx.heads["y"].loss == "hinge"
    net = sc.ParallelSNN(2, 1, **NET)
    a, _ = train_sg(net, Xtr, ytr, Xva, yva, epochs=2, lrs=(1e-2,))
    b, _ = train_sg(net, Xtr, ytr, Xva, yva, heads=[Head("y", 1, "logistic")], epochs=2, lrs=(1e-2,))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_registry_options_and_errors():
    assert list(METHODS) == ["cvx", "sg", "sg-cvx", "cvx-sg", "sg-sg", "cvx-search", "sg-cvx-search"]
    assert [m for m in METHODS if METHODS[m].certified] == ["cvx", "sg-cvx", "cvx-search", "sg-cvx-search"]
    assert METHODS["cvx"].options["n_regs"] == 8 and "grid" not in METHODS["sg-cvx"].options
    (Xtr, ytr), (Xva, yva), _ = _xor()
    with pytest.raises(ValueError, match="n_regz"):
        METHODS["cvx"].fit(Xtr, ytr, Xva, yva, NET, n_regz=3)
    with pytest.raises(ValueError, match="method must be one of"):
        get_method("adam")
    with pytest.raises(TypeError, match="method"):
        get_method(None)
    with pytest.raises(TypeError):
        METHODS["new"] = METHODS["cvx"]  # read-only: methods are added in registry.py


def test_fit_functions_take_a_device():
    (Xtr, ytr), (Xva, yva), _ = _xor()
    net, _ = fit_sg(Xtr, ytr, Xva, yva, NET, epochs=1, lrs=(1e-2,), device="cpu")
    assert net.device == torch.device("cpu")
    net, _ = fit_cvx(Xtr, ytr, Xva, yva, NET, n_regs=2, device=torch.device("cpu"))
    assert net.device == torch.device("cpu")
    for bad, err in (("gpu0", ValueError), (3, TypeError), ("cuda:99", ValueError)):
        with pytest.raises(err, match="device"):
            fit_sg(Xtr, ytr, Xva, yva, NET, epochs=1, device=bad)
        with pytest.raises(err, match="device"):
            fit_cvx(Xtr, ytr, Xva, yva, NET, device=bad)
        with pytest.raises(err, match="device"):
            fine_tune(net, Xtr, ytr, Xva, yva, epochs=1, device=bad)


def test_convex_path_stops_once_validation_stops_improving():
    from spikecvx.tasks import first_last_xor
    from spikecvx.train import fit_cvx
    from spikecvx.train.methods import PATH_PATIENCE
    X, y = first_last_xor(256, 4, seed=0)
    Xv, yv = first_last_xor(128, 4, seed=1)
    net_kw = dict(layers=2, branches=1, width=64, last_width=256, readout="membrane")
    _, rep = fit_cvx(X, y, Xv, yv, net_kw, loss="hinge", n_regs=12, min_ratio=1e-4)
    (head,) = rep.heads.values()
    accs = [p.val_acc for p in head.path]
    best = accs.index(max(accs))
    assert len(accs) < 12  # stopped early ...
    assert len(accs) == best + 1 + PATH_PATIENCE  # ... exactly PATH_PATIENCE regs after the best
