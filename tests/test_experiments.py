"""Runner, presets, configs, reports and the CLI: resume without loss or duplication."""

import json

import pytest

from spikecvx.cli import main
from spikecvx.experiments import PRESETS, expand, load_config, load_results, run_cells, tables
from spikecvx.experiments.runner import cell_key


def test_expand_preset_and_overrides():
    cells = expand(PRESETS["quick"])
    xor_sg = [c for c in cells if c["task"] == "xor" and c["method"] == "sg"]
    assert {c["T"] for c in xor_sg} == {6, 8, 11} and all(c["net"]["width"] == 100 for c in xor_sg)
    wide = [c for c in cells if c["task"] == "xor" and c["method"] == "cvx" and c["T"] == 11]
    assert len(wide) == 1 and wide[0]["net"]["last_width"] == 8000  # the 'at' override
    assert all("sg" not in c for c in cells)
    assert {c["task"] for c in expand(PRESETS["quick"], tasks=["mnist"])} == {"mnist"}
    assert {c["task"] for c in expand(PRESETS["paper"])} == {"xor", "addition", "mnist", "dfa"}  # all valid
    with pytest.raises(ValueError, match=r"--tasks names \['dfa'\], which the config does not have"):
        expand(PRESETS["smoke"], tasks=["dfa"])


def test_toml_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('seeds = [1, 2]\n[xor]\nmethods = ["cvx"]\nT = [4, 5]\nn_regs = 2\n'
                   '[xor.net]\nlayers = 3\nbranches = 2\nwidth = 8\nlast_width = 16\n')
    cells = expand(load_config(cfg))
    assert len(cells) == 4 and {c["seed"] for c in cells} == {1, 2}
    cfg.write_text('[xor]\nmethods = ["cvx", "sg"]\nT = [4, 11]\nnet = { layers = 3, width = 8 }\n'
                   '[xor.at.11]\nnet = { layers = 3, width = 80 }\nn_regs = 9\n'
                   '[xor.sg]\nnet = { layers = 5, width = 8 }\n')
    cells = {(c["method"], c["T"]): c for c in expand(load_config(cfg))}
    assert cells["cvx", 11]["net"]["width"] == 80 and cells["cvx", 11]["n_regs"] == 9
    assert cells["cvx", 4]["net"]["width"] == 8 and "n_regs" not in cells["cvx", 4]
    assert cells["sg", 11]["net"]["layers"] == 5 and cells["sg", 11]["n_regs"] == 9  # method wins
    assert all("at" not in c for c in cells.values())
    cfg.write_text('[xor]\nT = [4]\nnet = { layers = 3 }\n[xor.at.12]\nn_regs = 1\n')
    with pytest.raises(ValueError, match="'at' names"):
        expand(load_config(cfg))
    cfg.write_text('[xor]\nT = [4]\nnet = { layers = 3 }\nat = 3\n')
    with pytest.raises(ValueError, match="'at' must be a table"):
        expand(load_config(cfg))
    cfg.write_text("[xor\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_config(cfg)
    cfg.write_text('[chess]\nmethods = ["cvx"]\n')
    with pytest.raises(ValueError, match="unknown task"):
        expand(load_config(cfg))


def test_resume_after_a_crash_loses_and_duplicates_nothing(tmp_path):
    cells = [dict(task="xor", method="cvx", seed=s, T=4) for s in range(4)]
    calls = []

    def crashing(cell):
        if cell["seed"] == 2:
            raise KeyboardInterrupt  # killed mid-way
        calls.append(cell["seed"])
        return dict(headline=0.5)

    with pytest.raises(KeyboardInterrupt):
        run_cells(cells, crashing, tmp_path, progress=False, log=lambda s: None)
    assert [r["cell"]["seed"] for r in load_results(tmp_path)] == [0, 1]
    records = run_cells(cells, lambda c: calls.append(c["seed"]) or dict(headline=1.0), tmp_path,
                        progress=False, log=lambda s: None)
    assert sorted(cell_key(r["cell"]) for r in records) == sorted(cell_key(c) for c in cells)
    assert calls == [0, 1, 2, 3]  # finished cells were not run again
    assert not list(tmp_path.glob(".tmp-*"))


def test_reproduce_smoke_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["reproduce", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    first = (out / "results.jsonl").read_text().splitlines()
    assert len(first) == len(expand(PRESETS["smoke"]))
    for line in first:
        rec = json.loads(line)
        assert 0 <= rec["result"]["headline"] <= 1
        for cert in rec["result"]["certificates"].values():
            assert cert["rel_gap"] <= 1e-6
    md = (out / "report.md").read_text()
    assert "FIRST-LAST-XOR" in md and "Addition" in md and (out / "xor_accuracy_vs_T.png").exists()
    assert main(["reproduce", "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    assert (out / "results.jsonl").read_text().splitlines() == first
    assert "already finished" in capsys.readouterr().out
    assert main(["report", str(out), "--no-plots"]) == 0
    assert main(["report", str(tmp_path / "empty")]) == 1


def test_tables_show_published_numbers():
    recs = [dict(cell=dict(task="mnist", method="cvx", seed=0, T=4),
                 result=dict(headline=0.9, certificates={"digit": dict(rel_gap=1e-9)}), seconds=1.0)]
    md = tables(recs)
    assert "90.0 ± 0.0" in md and "92.5 [paper]" in md and "1e-09" in md


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if "time" not in k and k != "seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


@pytest.fixture
def trained(monkeypatch):
    """Keeps every network the cells train, for an independent evaluation."""
    from spikecvx.experiments import cells

    nets = []
    train = cells._train

    def keep(*args, **kw):
        net, rep = train(*args, **kw)
        nets.append(net)
        return net, rep

    monkeypatch.setattr(cells, "_train", keep)
    return nets


NET = dict(layers=3, branches=2, width=8, last_width=16)


@pytest.mark.parametrize("cell", [
    dict(task="dfa", method="cvx", seed=0, symbols=3, n_train=200, n_val=100, n_test=100, n_regs=2,
         ood=[1, 2], net=NET),
    dict(task="mnist", method="cvx", seed=0, T=4, n_train=150, n_val=50, n_test=50, n_regs=2,
         min_ratio=0.3, net=NET),
    dict(task="addition", method="sg-sg", seed=0, base=2, n_train=32, n_val=16, n_test=16,
         test_lengths=[5, 10], epochs=2, lrs=[1e-2], net=NET),
])
def test_every_task_cell_is_deterministic_and_certified(cell):
    from spikecvx.experiments import run_cell

    res = run_cell(cell)
    assert 0 <= res["headline"] <= 1 and 0 < res["chance"] < 1
    for cert in res["certificates"].values():
        assert cert["rel_gap"] <= 1e-6
    assert _without_timings(run_cell(dict(cell))) == _without_timings(res)  # same seed, same result


def test_xor_cell_headline_is_the_accuracy_of_its_network_on_fresh_test_data(trained):
    import torch

    from spikecvx.experiments import run_cell
    from spikecvx.tasks import first_last_xor

    cell = dict(task="xor", method="cvx", seed=0, T=3, n_train=200, n_val=100, n_test=300, n_regs=3,
                net=dict(NET, width=20, last_width=60))
    res = run_cell(cell)
    X, y = first_last_xor(300, 3, seed=3)  # the test split's documented seed, 1000 * seed + 3
    with torch.no_grad():
        scores = trained[0](torch.as_tensor(X))[:, 0].numpy()
    assert res["headline"] == pytest.approx(float(((scores >= 0) * 2 - 1 == y).mean()), abs=0)
    assert res["headline"] == 1.0  # T = 3 is easy for the convex readout


def test_mnist_cell_headline_is_the_accuracy_of_its_network_on_the_test_images(trained):
    import torch

    from spikecvx.experiments import run_cell
    from spikecvx.tasks import sequential_mnist

    cell = dict(task="mnist", method="cvx", seed=1, T=4, n_train=100, n_val=50, n_test=80, n_regs=2,
                min_ratio=0.3, net=NET)
    res = run_cell(cell)
    X, y = sequential_mnist(4, 100, 50, 80, seed=1)["test"]
    with torch.no_grad():
        pred = trained[0](torch.as_tensor(X)).argmax(1).numpy()
    assert res["headline"] == float((pred == y).mean())


def _append_many(path, writer, n):
    from spikecvx.experiments.runner import append_atomic

    for i in range(n):
        append_atomic(path, dict(cell=dict(writer=writer, i=i), result=dict(pad="x" * 2000)))


def test_concurrent_appends_lose_nothing(tmp_path):
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    path = tmp_path / "results.jsonl"
    procs = [ctx.Process(target=_append_many, args=(path, w, 150)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 300
    seen = {(r["cell"]["writer"], r["cell"]["i"]) for r in map(json.loads, lines)}
    assert seen == {(w, i) for w in range(2) for i in range(150)}


def test_addition_table_shows_lengths_and_chosen_hyper_parameters():
    metrics = {"5": dict(joint=0.9, sequence=0.5), "10": dict(joint=0.8, sequence=0.2)}
    recs = [dict(cell=dict(task="addition", method="cvx", seed=s, base=3),
                 result=dict(headline=0.9, metrics=metrics, certificates={},
                             report=dict(chosen=dict(beta=b))), seconds=1.0)
            for s, b in [(0, 0.0), (1, 0.5)]]
    md = tables(recs)
    assert "| n=5 | n=10 |" in md and "80.0 ± 0.0" in md and "beta=0.0; beta=0.5" in md
    assert "36.6 / 31.4 / 30.7 / 31.0 [paper]" in md


def _wrong_values(default):
    """Values of a type that a key with this default must refuse."""
    from hypothesis import strategies as st

    words = st.text(max_size=4)
    table = st.dictionaries(st.text(min_size=1, max_size=3), st.integers(), min_size=1, max_size=2)
    wrong = [st.booleans(), table, st.lists(words, min_size=1, max_size=2)]
    if not isinstance(default, str):
        wrong.append(words)
    if isinstance(default, int) and not isinstance(default, bool):
        wrong.append(st.floats(allow_nan=False).filter(lambda v: v != int(v) if abs(v) < 1e300 else True))
    return st.one_of(*wrong)


def _task_keys():
    from spikecvx.experiments.options import METHOD_OPTIONS
    from spikecvx.tasks import TASKS

    examples = dict(n_regs=2, min_ratio=0.1, grid=None, witness_scale=1.0, tol=1e-6, epochs=2, lrs=[1e-3],
                    batch_size=None, weight_decay=0.0, ft_lrs=[1e-3], penalty="l1", witness="standard",
                    path_norm_reg=0.0, reg_ratio=0.03, search_rounds=2, search_candidates=64, search_steps=0,
                    search_seconds=10.0, max_add=100, generators=["ascent", "random"])
    assert set(examples) == set(METHOD_OPTIONS)
    return [(task, key, default) for task, spec in TASKS.items()
            for key, default in [*spec.cell_keys.items(), *examples.items()]]


@pytest.mark.parametrize("task, key, default", _task_keys())
def test_config_fuzz_wrong_types_are_refused_naming_the_key(task, key, default):
    from hypothesis import HealthCheck, given, settings

    from spikecvx.tasks import TASKS

    spec = TASKS[task]
    grid_value = 3 if task == "addition" else 4

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_wrong_values(default))
    def check(value):
        config = {task: {spec.grid_key: [grid_value], "net": dict(NET), key: value}}
        with pytest.raises((TypeError, ValueError), match=rf"\b{key}\b"):
            expand(config)

    config = {task: {spec.grid_key: [grid_value], "net": dict(NET), key: default}}
    if default is not None:
        assert expand(config)[0][key] == default  # the default itself is accepted
    check()


@pytest.mark.parametrize("key", ["layers", "width", "beta", "threshold", "readout", "reset", "surrogate"])
def test_config_fuzz_wrong_network_values_are_refused_naming_the_key(key):
    import inspect

    from hypothesis import given, settings

    from spikecvx.snn import ParallelSNN

    default = inspect.signature(ParallelSNN).parameters[key].default

    @settings(max_examples=15, deadline=None)
    @given(_wrong_values(default))
    def check(value):
        with pytest.raises((TypeError, ValueError), match=rf"net\.{key}\b"):
            expand({"xor": {"T": [4], "net": dict(NET, **{key: value})}})

    check()


def test_config_fuzz_structure():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    odd = st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.floats(allow_nan=False))

    @settings(max_examples=30, deadline=None)
    @given(odd, st.sampled_from(["seeds", "methods", "net", "T", "task table"]))
    def check(value, where):
        config = {"xor": {"T": [4], "net": dict(NET), "methods": ["cvx"]}, "seeds": [0]}
        if where == "task table":
            config["xor"] = value
        elif where == "seeds":
            config["seeds"] = value
        else:
            config["xor"][where] = value
        name = "xor" if where == "task table" else where
        if where == "T" and isinstance(value, int) and not isinstance(value, bool) and value >= 2:
            return  # a single valid T is a grid of one point
        with pytest.raises((TypeError, ValueError), match=rf"\b{name}\b"):
            expand(config)

    check()


_GOOD_NET = dict(layers=3, branches=2, width=20, last_width=40)


@pytest.mark.parametrize("bad, named", [
    (dict(penalty="l2"), "penalty"), (dict(witness="bogus"), "witness"),
    (dict(path_norm_reg=-1.0), "path_norm_reg"), (dict(grid={"bogus": [1]}), "grid.bogus"),
    (dict(net=dict(_GOOD_NET, beta=2.0)), "beta"), (dict(net=dict(_GOOD_NET, width=21)), "width"),
    (dict(net=dict(_GOOD_NET, readout="foo")), "readout"),
])
def test_cell_values_are_checked_before_running(bad, named):
    """Values that only the method or the network would refuse are refused by the cell check."""
    from spikecvx.experiments import METHODS, check_cell

    cell = dict(task="xor", method="cvx", seed=0, T=6, net=_GOOD_NET)
    check_cell(cell, METHODS)
    with pytest.raises((TypeError, ValueError), match=named):
        check_cell({**cell, **bad}, METHODS)
