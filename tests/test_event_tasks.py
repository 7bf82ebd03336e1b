"""The event tasks (SHD, N-MNIST) through the registry and the command line, on synthetic data;
the CLI's --version and export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spikecvx import ParallelSNN, sample_witnesses, save_network
from spikecvx.cli import main
from spikecvx.experiments import run_cell
from spikecvx.tasks import TASKS, load_nmnist

DT = np.dtype([("x", np.int64), ("y", np.int64), ("p", np.int64), ("t", np.int64)])


def _record(rng, digit: int) -> bytes:
    """An N-MNIST .bin recording whose events sit in a 3-pixel-wide column chosen by the digit."""
    n = 150
    x = 3 * digit + rng.integers(0, 3, n)
    y, p = rng.integers(0, 34, n), rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 100_000, n))
    t[0], t[-1] = 0, 100_000
    return b"".join(bytes([xi, yi, (pi << 7) | (ti >> 16), (ti >> 8) & 255, ti & 255])
                    for xi, yi, pi, ti in zip(x, y, p, t))


@pytest.fixture(scope="module")
def nmnist_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("nmnist")
    rng = np.random.default_rng(0)
    for split, per_digit in (("Train", 12), ("Test", 4)):
        for d in range(10):
            (root / split / str(d)).mkdir(parents=True)
            for k in range(per_digit):
                (root / split / str(d) / f"{k:05d}.bin").write_bytes(_record(rng, d))
    return root


CELL = dict(task="nmnist", method="cvx", seed=0, T=2, n_val=30, n_regs=3, min_ratio=0.05,
            net=dict(layers=2, branches=1, width=300, last_width=300))


def test_nmnist_cell_learns_and_holds_out_validation(nmnist_dir):
    spec = TASKS["nmnist"]
    splits = spec.splits(dict(CELL, data_dir=str(nmnist_dir)))
    X, y = load_nmnist(nmnist_dir, "train", 2)
    (Xtr, ytr), (Xva, yva) = splits.train, splits.val
    assert len(yva) == 30 and len(ytr) == len(y) - 30
    rows = {r.tobytes() for r in X.reshape(len(X), -1)}
    assert len(rows) == len(X)  # every recording is distinct, so disjointness is checkable
    train_rows = {r.tobytes() for r in Xtr.reshape(len(Xtr), -1)}
    assert not train_rows & {r.tobytes() for r in Xva.reshape(len(Xva), -1)}
    result = run_cell(CELL, data_dir=str(nmnist_dir))
    assert result["chance"] == pytest.approx(0.1)
    assert result["headline"] >= 0.9  # the digit is written in which columns fire
    assert result["certificates"]["label"]["rel_gap"] <= 1e-6


def test_event_task_without_data_is_one_line_error(tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_text('[nmnist]\nmethods = ["cvx"]\nT = [2]\nnet = { layers = 2, branches = 1, '
                      'width = 10, last_width = 10 }\n')
    code = main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet", "--no-plots",
                 "--data-dir", str(tmp_path / "absent")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "Train.zip" in err and "absent" in err


def test_cli_runs_an_event_task_from_data_dir(nmnist_dir, tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_text('[nmnist]\nmethods = ["cvx"]\nT = [2]\nn_val = 30\nn_regs = 3\nmin_ratio = 0.05\n'
                      'net = { layers = 2, branches = 1, width = 300, last_width = 300 }\n')
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet", "--no-plots",
                 "--data-dir", str(nmnist_dir)]) == 0
    record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert "data_dir" not in record["cell"]  # the folder is not part of the cell's identity
    assert record["result"]["headline"] == run_cell(CELL, data_dir=str(nmnist_dir))["headline"]
    assert "N-MNIST" in capsys.readouterr().out


def test_version(capsys):
    import spikecvx

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"spikecvx {spikecvx.__version__}"


def _net(reset: str, readout: str) -> ParallelSNN:
    net = ParallelSNN(d_in=3, n_out=2, layers=3, branches=2, width=8, last_width=6, reset=reset,
                      readout=readout, beta=0.75, seed=0)
    sample_witnesses(net, "standard", 1.0, 0)
    with torch.no_grad():
        net.readout_weight.normal_(generator=torch.Generator().manual_seed(1))
    return net


def test_export_nir_round_trip(tmp_path, capsys):
    pytest.importorskip("nir")
    from spikecvx.interop import load_nir

    net = _net("zero", "spike")
    save_network(net, tmp_path / "net.pt")
    assert main(["export", str(tmp_path / "net.pt"), "--nir", str(tmp_path / "net.nir")]) == 0
    back = load_nir(tmp_path / "net.nir")
    x = torch.rand(5, 7, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(back(x), net(x))


def test_export_refuses_what_nir_cannot_represent(tmp_path, capsys):
    pytest.importorskip("nir")
    save_network(_net("subtract", "membrane"), tmp_path / "net.pt")
    code = main(["export", str(tmp_path / "net.pt"), "--nir", str(tmp_path / "net.nir")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "subtract" in err
    assert not (tmp_path / "net.nir").exists()
    with pytest.warns(UserWarning):
        assert main(["export", str(tmp_path / "net.pt"), "--nir", str(tmp_path / "net.nir"), "--lossy"]) == 0
    assert (tmp_path / "net.nir").exists()
