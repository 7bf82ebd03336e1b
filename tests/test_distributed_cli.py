"""`torchrun -m spikecvx run` on 2 and 3 local ranks: rank 0 alone writes the same results as one
process, and a failing rank stops every rank with one error line each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
GRID = ('[xor]\nmethods = ["cvx", "sg"]\nT = [4]\nn_regs = 3\nepochs = 3\n'
        'net = { layers = 3, branches = 2, width = 8, last_width = 16 }\n')


def _env():
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS="1", SPIKECVX_DIST_TIMEOUT="60")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _torchrun(n, *args, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "spikecvx", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_python_dash_m_spikecvx_is_the_cli():
    proc = subprocess.run([sys.executable, "-m", "spikecvx", "--help"], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert proc.returncode == 0 and "torchrun" in proc.stdout and "reproduce" in proc.stdout


def test_torchrun_run_shards_the_cells_and_writes_once_the_results_of_one_process(tmp_path):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(GRID)
    one = subprocess.run([sys.executable, "-m", "spikecvx", "run", str(cfg), "--out", str(tmp_path / "one"),
                          "--quiet", "--no-plots"], capture_output=True, text=True, env=_env(), timeout=240)
    assert one.returncode == 0, one.stderr
    proc = _torchrun(2, "run", str(cfg), "--out", str(tmp_path / "two"), "--quiet", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("report: ") == 1  # rank 0 alone reports
    ones, twos = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert [r["cell"] for r in ones] == [r["cell"] for r in twos] and len(ones) == 2
    for a, b in zip(ones, twos):
        assert b["result"]["headline"] == pytest.approx(a["result"]["headline"], abs=1e-12)
        for name, cert in a["result"]["certificates"].items():  # the same certified optimum (tol 1e-6)
            got = b["result"]["certificates"][name]
            assert got["converged"] and got["rel_gap"] <= 1e-6
            assert got["primal"] == pytest.approx(cert["primal"], rel=2e-6)
        if a["cell"]["method"] == "cvx":  # the sharded dictionary has the rows of all ranks
            assert b["result"]["report"]["dictionary"] == a["result"]["report"]["dictionary"]
        else:
            loss = a["result"]["report"]["val_loss"]
            assert b["result"]["report"]["val_loss"] == pytest.approx(loss, rel=1e-6)
    assert (tmp_path / "two" / "report.md").is_file()


def test_a_rank_that_fails_stops_every_rank_with_one_line(tmp_path):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(GRID)
    (tmp_path / "taken").write_text("a file, not a folder")
    proc = _torchrun(3, "run", str(cfg), "--out", str(tmp_path / "taken"), "--quiet", "--no-plots")
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("spikecvx: error: ")]
    assert len(lines) == 3, proc.stderr
    assert any(ln.startswith("spikecvx: error: rank 0: --out") and "is a file" in ln for ln in lines)
    for r in (1, 2):
        assert any(ln.startswith(f"spikecvx: error: rank {r}: ") and "another rank stopped" in ln
                   for ln in lines)
    assert "spikecvx/" not in proc.stderr  # no rank printed a traceback (torchrun's own summary aside)
