"""The witness-search methods (cvx-search, sg-cvx-search) through the registry, the estimator, the
TOML runner and the presets; their typed reports and their checkpoints."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from spikecvx.cli import main
from spikecvx.experiments import PRESETS, expand, load_results
from spikecvx.interop import load_network, save_network
from spikecvx.snn import ParallelSNN
from spikecvx.snn.grown import GrownSNN
from spikecvx.tasks import first_last_xor
from spikecvx.train import METHODS, FitReport, SpikingClassifier
from spikecvx.train.search import DualAscent, RandomPool, fit_search

NET = dict(layers=3, branches=2, width=20, last_width=40)
TINY = dict(search_rounds=2, search_candidates=32, search_steps=5)


def _xor(n=200, T=5, seed=0):
    X, y = first_last_xor(n, T, seed=seed)
    return X, y


def test_registry_lists_the_search_methods_with_their_options():
    for name in ("cvx-search", "sg-cvx-search"):
        m = METHODS[name]
        assert m.certified
        for key in ("reg_ratio", "search_rounds", "generators", "search_candidates", "search_steps",
                    "search_seconds", "max_add", "penalty", "tol"):
            assert key in m.options
    assert "witness_scale" in METHODS["cvx-search"].options and "epochs" in METHODS["sg-cvx-search"].options
    assert "epochs" not in METHODS["cvx-search"].options
    assert METHODS["cvx-search"].options["generators"] == ("ascent",)
    params = SpikingClassifier().get_params()  # one set of defaults
    for key in ("reg_ratio", "search_rounds", "generators", "search_candidates", "search_steps",
                "search_seconds", "max_add"):
        assert params[key] == METHODS["cvx-search"].options[key] == METHODS["sg-cvx-search"].options[key]


@pytest.mark.parametrize("option, value, error", [
    ("search_candidates", 0, ValueError), ("search_rounds", 1.5, TypeError), ("reg_ratio", -0.1, ValueError),
    ("search_seconds", 0.0, ValueError), ("search_steps", -1, ValueError), ("max_add", 0, ValueError),
    ("generators", ["adam"], ValueError), ("generators", "ascent", TypeError)])
def test_bad_search_options_name_the_option(option, value, error):
    X, y = _xor(40)
    for method in ("cvx-search", "sg-cvx-search"):
        with pytest.raises(error, match=option):
            METHODS[method].fit(X, y, X, y, NET, **{option: value})
    cell = {"task": "xor", "method": "cvx-search", "seed": 0, "T": 4, "net": dict(NET), option: value}
    with pytest.raises((TypeError, ValueError), match=option):
        expand({"xor": {k: v for k, v in cell.items() if k not in ("task", "method", "seed")} | {
            "methods": ["cvx-search"], "T": [4]}})
    with pytest.raises(ValueError, match="search_roundz"):
        METHODS["cvx-search"].fit(X, y, X, y, NET, search_roundz=2)


def test_estimator_search_fit_predict_save_load(tmp_path, capsys):
    X, y = _xor(240)
    Xt, yt = _xor(200, seed=5)
    labels = np.where(y > 0, "odd", "even")
    clf = SpikingClassifier(method="cvx-search", loss="logistic", verbose=True, **NET, **TINY).fit(X, labels)
    out = capsys.readouterr().out
    assert "witness search, head 'y'" in out and "round 1:" in out  # verbose shows the rounds
    assert isinstance(clf.network_, GrownSNN)
    assert clf.score(Xt, np.where(yt > 0, "odd", "even")) >= 0.8  # chance: 0.5
    p = clf.predict_proba(Xt)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-clf.decision_function(Xt))))
    search = clf.report_.heads["y"].search
    assert clf.report_.method == "cvx-search" and 2 <= len(search.rounds) <= 3  # + the closing entry
    assert search.statement.startswith(f"certified over the {search.columns} columns found")
    assert clf.certificate_["rel_gap"] <= 1e-6
    assert clf.certificate_["distinct_columns"] == search.columns <= clf.certificate_["dictionary_neurons"]
    # objectives fall round by round: each round solves the same problem over more columns
    objs = [r.objective for r in search.rounds] + [clf.certificate_["primal"]]
    assert all(b <= a + 1e-12 for a, b in zip(objs, objs[1:]))
    clf.save(tmp_path / "clf.pt")
    back = SpikingClassifier.load(tmp_path / "clf.pt")
    assert isinstance(back.network_, GrownSNN)
    np.testing.assert_array_equal(back.decision_function(Xt), clf.decision_function(Xt))
    np.testing.assert_array_equal(back.predict(Xt), clf.predict(Xt))
    assert back.report_ == clf.report_ and back.report_.heads["y"].search == search


def test_search_report_round_trips_through_json():
    X, y = _xor(160)
    Xv, yv = _xor(80, seed=3)
    _, rep = METHODS["sg-cvx-search"].fit(X, y, Xv, yv, NET, epochs=2, lrs=(1e-2,), **TINY)
    back = FitReport.from_dict(json.loads(json.dumps(rep.to_dict())))
    assert back == rep and back.to_dict() == rep.to_dict()
    assert rep.method == "sg-cvx-search" and rep.sg_stage.method == "sg" and set(rep.searches) == {"y"}
    r1 = rep.searches["y"].rounds[0]
    assert r1.round == 1 and r1.candidates == {"ascent": 32} and r1.max_violation >= r1.median_violation
    assert rep.searches["y"].rounds[-1].objective == rep.heads["y"].certificate.primal
    assert r1.val_score is not None and r1.added <= r1.violating


def test_sg_cvx_search_starts_from_the_sg_networks_hidden_weights():
    """sg-cvx-search == SG, then fit_search with that network as witness_net (same seed)."""
    from spikecvx.train import fit_sg
    from spikecvx.train.registry import SG_OPTIONS

    X, y = _xor(120)
    Xv, yv = _xor(60, seed=3)
    sg = dict(epochs=2, lrs=(1e-2,))
    net, rep = METHODS["sg-cvx-search"].fit(X, y, Xv, yv, NET, seed=1, **sg, **TINY)
    sg_net, _ = fit_sg(X, y, Xv, yv, NET, seed=1, **(dict(SG_OPTIONS) | sg))
    ref, ref_rep = fit_search(X, y, Xv, yv, dict(NET, beta=sg_net.beta, threshold=sg_net.threshold),
                              witness_net=sg_net, seed=1, reg_ratio=0.03, max_rounds=2,
                              generators=[DualAscent(32, steps=5, seed=3)])
    x = torch.as_tensor(Xv)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
    same = dataclasses.replace(ref_rep.heads["y"].certificate, time=rep.heads["y"].certificate.time)
    assert rep.heads["y"].certificate == same


def test_search_time_budget_stops_after_the_round_that_spends_it():
    """The first round runs, its violating columns are added, and a closing entry describes the
    final solution (the one the certificate belongs to)."""
    X, y = _xor(120)
    _, rep = fit_search(X, y, X, y, NET, max_rounds=5, max_seconds=1e-3, generators=[RandomPool(16)])
    first, closing = rep.heads["y"].search.rounds
    assert first.added > 0 and closing.candidates == {} and closing.max_violation is None
    assert closing.columns == first.columns + first.added == rep.heads["y"].search.columns
    assert closing.objective == rep.heads["y"].certificate.primal < first.objective


def test_grown_network_checkpoint_round_trip(tmp_path):
    X, y = _xor(120)
    y_every = np.repeat(y[:, None], 5, axis=1)  # a label at every step: readout_at="every"
    net, _ = fit_search(X, y_every, X, y_every, dict(NET, readout_at="every"), loss="logistic",
                        max_rounds=2, generators=[RandomPool(16), DualAscent(16, steps=3, fresh_trunk=True)])
    assert isinstance(net, GrownSNN) and len(net.blocks) >= 2  # fresh trunks deploy as separate blocks
    back, meta = load_network(save_network(net, tmp_path / "g.pt", metadata={"k": 1}))
    assert isinstance(back, GrownSNN) and meta == {"k": 1} and back.sources == net.sources
    x = torch.as_tensor(_xor(50, seed=7)[0])
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    assert back.config() == net.config()


def test_grown_checkpoint_errors_name_the_file_and_block(tmp_path):
    X, y = _xor(80)
    net, _ = fit_search(X, y, X, y, NET, max_rounds=1, generators=[RandomPool(8)])
    path = save_network(net, tmp_path / "g.pt")
    blob = torch.load(path, weights_only=True)

    def write(b):
        torch.save(b, tmp_path / "bad.pt")
        return tmp_path / "bad.pt"

    bad = dict(blob, blocks=[dict(blob["blocks"][0], state={})] + blob["blocks"][1:])
    with pytest.raises(ValueError, match=r"bad\.pt block 0: 'state'"):
        load_network(write(bad))
    with pytest.raises(ValueError, match="'sources' must be a list of"):
        load_network(write(dict(blob, sources=blob["sources"] + ["extra"])))
    with pytest.raises(ValueError, match="'blocks' must be a non-empty list"):
        load_network(write(dict(blob, blocks=[])))
    with pytest.raises(ValueError, match=r"missing the entries \['sources'\]"):
        load_network(write({k: v for k, v in blob.items() if k != "sources"}))
    with pytest.raises(TypeError, match="ParallelSNN or a GrownSNN"):
        save_network(torch.nn.Linear(2, 2), tmp_path / "x.pt")


def test_toml_cell_runs_a_search_and_reports_its_rounds(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[xor]\nmethods = ["cvx", "cvx-search"]\nT = [4]\nn_train = 160\nn_val = 80\n'
                   'n_test = 200\nn_regs = 2\n'
                   '[xor.net]\nlayers = 3\nbranches = 2\nwidth = 20\nlast_width = 40\n'
                   '[xor.cvx-search]\nT = [4, 5]\nsearch_rounds = 2\nsearch_candidates = 32\n'
                   'search_steps = 3\ngenerators = ["ascent", "random"]\n'
                   '[xor.cvx-search.at.5]\nmax_add = 7\n')
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet", "--no-plots"]) == 0
    recs = load_results(out)
    search = [r for r in recs if r["cell"]["method"] == "cvx-search"]
    assert [r["cell"]["T"] for r in recs if r["cell"]["method"] == "cvx"] == [4]
    assert sorted(r["cell"]["T"] for r in search) == [4, 5]
    assert [r["cell"].get("max_add") for r in sorted(search, key=lambda r: r["cell"]["T"])] == [None, 7]
    for r in search:
        s = r["result"]["report"]["search"]["y"]
        assert r["result"]["headline"] > 0.5 and s["statement"].startswith("certified over")
        assert s["rounds"][0]["candidates"] == {"ascent": 32, "random": 32}
        if r["cell"]["T"] == 5:  # the cell with max_add = 7
            assert all(e["added"] <= 7 for e in s["rounds"])
        assert r["result"]["certificates"]["y"]["rel_gap"] <= 1e-6
    md = (out / "report.md").read_text()
    assert "### Witness search, per round" in md and "xor T=5 cvx-search s0 y" in md


def test_presets_hold_the_search_cells():
    cells = expand(PRESETS["quick"])
    quick = [c for c in cells if "search" in c["method"]]
    assert sorted(c["T"] for c in quick if c["task"] == "xor") == [6, 8, 11, 14]
    assert sorted(c["base"] for c in quick if c["task"] == "addition") == [2, 3, 5]
    assert [c["method"] for c in quick if c["task"] == "mnist"] == ["sg-cvx-search"]
    assert all(c["search_seconds"] > 0 for c in quick)
    assert sum(c["search_seconds"] for c in quick) <= 600  # the search cells' share of the quick preset
    assert not any(c["T"] == 14 for c in cells if c["task"] == "xor" and "search" not in c["method"])
    paper = [c for c in expand(PRESETS["paper"]) if "search" in c["method"]]
    assert {c["seed"] for c in paper} == {0, 1, 2}
    assert {(c["task"], c["method"]) for c in paper} == {("xor", "cvx-search"), ("addition", "cvx-search"),
                                                         ("mnist", "cvx-search"), ("mnist", "sg-cvx-search")}


def test_search_refuses_recurrent_networks():
    from spikecvx.train.search import fit_search, search
    X = torch.zeros(8, 3, 2)
    y = np.array([-1, 1] * 4)
    net_kw = dict(layers=2, branches=1, width=4, last_width=4, recurrent=True)
    with pytest.raises(ValueError, match="recurrent"):
        fit_search(X, y, X, y, net_kw, loss="hinge")
    with pytest.raises(ValueError, match="recurrent"):
        search(X, y, ParallelSNN(2, 1, **net_kw), loss="hinge")
