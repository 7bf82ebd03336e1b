"""The command line: every user error is one line `spikecvx: error: ...` with exit code 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import spikecvx.experiments as experiments
from spikecvx.cli import main
from spikecvx.experiments import load_results, run_cells

NET = "net = { layers = 3, branches = 2, width = 8, last_width = 16 }\n"
GOOD = '[xor]\nmethods = ["cvx"]\nT = [4]\nn_regs = 2\n' + NET


@pytest.fixture
def no_training(monkeypatch):
    """Any cell that would run fails the test: errors must come before computing anything."""
    def refuse(cell, device=None):
        raise AssertionError("a cell ran although the input was bad")
    monkeypatch.setattr(experiments, "run_cell", refuse)


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("spikecvx: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def _run_config(tmp_path, text, *extra):
    cfg = tmp_path / "grid.toml"
    cfg.write_bytes(text if isinstance(text, bytes) else text.encode())
    return main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet", "--no-plots", *extra])


@pytest.mark.parametrize("text, needles", [
    (GOOD.replace("n_regs = 2", 'n_regs = "2"'), ["n_regs", "'2'", "integer"]),
    (GOOD.replace("T = [4]", 'T = ["four"]'), ["T", "'four'", "integer"]),
    ('[xor]\nT = [4]\nnet = 5\n', ["net", "table", "5"]),
    ("seeds = 0\n" + GOOD, ["seeds", "list"]),
    (GOOD.replace("width = 8,", "widht = 8,"), ["net.widht", "width"]),
    (GOOD.replace('methods = ["cvx"]', 'methods = "cvx"'), ["methods", "list", "'cvx'"]),
    (GOOD + "n_regz = 5\n", ["unknown key", "n_regz"]),
    (GOOD + "lrs = [0.01, \"fast\"]\n", ["lrs", "number"]),
    (GOOD + "[xor.sg]\nepochs = 2.5\n", ["epochs", "2.5"]),
    (GOOD + "[xor.at.4]\ntest_lengths = [5]\n", ["unknown key", "test_lengths"]),
    (GOOD.replace('methods = ["cvx"]', 'methods = ["cvx", "svm"]'), ["unknown method", "'svm'"]),
    ('[xor]\nT = [4]\n' + NET.replace("width = 8", 'width = "8"'), ["net.width", "'8'"]),
    ("[xor]\nT = [4]\nnet = { layers = 3, readout_at = \"every\" }\n", ["net.readout_at", "set by the task"]),
    ("[xor\n", ["invalid TOML"]),
    (b"\xff\xfe[xor]", ["invalid TOML"]),  # not UTF-8
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, capsys, no_training, text, needles):
    assert _run_config(tmp_path, text) == 2
    err = _error(capsys)
    assert "grid.toml" in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "unknown method 'c'" not in err


def test_missing_config_and_tasks_not_in_config(tmp_path, capsys, no_training):
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in _error(capsys)
    assert _run_config(tmp_path, GOOD, "--tasks", "xor", "dfa") == 2
    err = _error(capsys)
    assert "'dfa'" in err and "does not have" in err
    with pytest.raises(SystemExit) as exc:  # a task that does not exist at all: argparse says so
        _run_config(tmp_path, GOOD, "--tasks", "chess")
    assert exc.value.code == 2


def test_debug_shows_the_traceback(tmp_path, no_training):
    with pytest.raises(ValueError, match="n_regz"):
        _run_config(tmp_path, GOOD + "n_regz = 5\n", "--debug")


def test_bad_out_is_refused_before_any_cell_runs(tmp_path, capsys, no_training):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(GOOD)
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["run", str(cfg), "--out", str(afile), "--quiet"]) == 2
    assert "is a file" in _error(capsys)
    assert main(["run", str(cfg), "--out", str(afile / "sub"), "--quiet"]) == 2
    assert "afile" in _error(capsys)
    out = tmp_path / "out"
    (out / "results.jsonl").mkdir(parents=True)
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    assert "results.jsonl must be a file" in _error(capsys)
    assert main(["report", str(out)]) == 2
    assert "results.jsonl must be a file" in _error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_out_is_refused(tmp_path, capsys, no_training):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(GOOD)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["run", str(cfg), "--out", str(locked / "out"), "--quiet"]) == 2
        assert "cannot create" in _error(capsys)
    finally:
        locked.chmod(0o700)


def test_bad_device_is_refused_before_any_cell_runs(tmp_path, capsys, monkeypatch, no_training):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = tmp_path / "grid.toml"
    cfg.write_text(GOOD)
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "CUDA is not available" in _error(capsys)
    assert main(["run", str(cfg), "--out", str(tmp_path / "o"), "--device", "gpu0"]) == 2
    assert "'gpu0' is not a torch device" in _error(capsys)


def _write_results(out: Path, lines: list) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    path.write_bytes(b"".join(x if isinstance(x, bytes) else x.encode() for x in lines))
    return path


def _record(seed: int, headline: float = 0.75) -> dict:
    return dict(cell=dict(task="xor", method="cvx", seed=seed, T=4, net={}),
                result=dict(headline=headline, certificates={}), seconds=1.0)


BAD_LINES = ['{"cell": {"task": "xor", "meth\n', "garbage\n", '{"result": {"headline": 1.0}}\n',
             '{"cell": 3, "result": {}}\n', "[1, 2]\n", b"\xff\xfe\n",
             '{"cell": {"task": "xor", "method": "cvx", "seed": 0}, "result": {"headline": 1.0}}\n',
             '{"cell": {"task": "xor", "method": "cvx", "seed": 0, "T": 4}, "result": {}}\n']


def test_report_skips_and_names_every_bad_line(tmp_path, capsys):
    good = [json.dumps(_record(s)) + "\n" for s in range(2)]
    path = _write_results(tmp_path, [good[0], *BAD_LINES, good[1]])
    before = path.read_bytes()
    assert main(["report", str(tmp_path), "--no-plots"]) == 0
    cap = capsys.readouterr()
    assert "| 4 | cvx | 75.0 ± 0.0 | 2 |" in cap.out  # both good records, nothing else
    warnings = cap.err.strip().splitlines()
    assert len(warnings) == len(BAD_LINES)
    for lineno, w in zip(range(2, 2 + len(BAD_LINES)), warnings):
        assert w.startswith("spikecvx: warning: ") and f"{path}:{lineno}:" in w
    assert "without a 'cell'" in warnings[2] and "without a 'cell'" in warnings[3]
    assert "cell has no T" in warnings[6] and "'headline'" in warnings[7]
    assert path.read_bytes() == before  # the bad lines stay where they were


def test_resume_after_a_torn_last_line_keeps_every_good_record(tmp_path, capsys):
    good = json.dumps(_record(0)) + "\n"
    torn = json.dumps(_record(1))[:30]  # a crash in the middle of a write: no newline
    path = _write_results(tmp_path, [good, torn])
    cells = [_record(s)["cell"] for s in range(3)]
    ran = []
    records = run_cells(cells, lambda c: ran.append(c["seed"]) or dict(headline=0.5), tmp_path,
                        progress=False, log=lambda s: None)
    assert ran == [1, 2]  # seed 0 was finished; the torn record of seed 1 is not a record
    assert sorted(r["cell"]["seed"] for r in records) == [0, 1, 2]
    assert capsys.readouterr().err.count("warning") == 1  # once per bad line
    lines = path.read_text().splitlines()
    assert lines[0] == good.strip() and lines[1] == torn and len(lines) == 4  # torn line kept, alone
    again = run_cells(cells, lambda c: pytest.fail("nothing left to run"), tmp_path, progress=False,
                      log=lambda s: None)
    assert len(again) == 3 and len(load_results(tmp_path, warn=None)) == 3


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(GOOD + "n_regz = 5\n")
    env = dict(os.environ, PYTHONPATH=str(Path(experiments.__file__).parents[2]))
    proc = subprocess.run([sys.executable, "-m", "spikecvx.cli", "run", str(cfg), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("spikecvx: error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and "n_regz" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing was created for a bad config
