"""The ``spikecvx`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PRESETS = {
    # smoke: seconds; checks an installation end to end
    "smoke": dict(T=[4], layers=3, width=20, last_width=60, n_train=200, n_val=100, n_test=200,
                  n_regs=3),
    # quick: minutes on 2 CPU cores
    "quick": dict(T=[6, 8], layers=3, width=500, last_width=2000, n_train=2000, n_val=2000,
                  n_test=4000, n_regs=6),
    # paper: the FIRST-LAST-XOR protocol of spec/TASKS.md
    "paper": dict(T=[6, 8, 11, 14], layers=5, width=500, last_width=1000, n_train=2000, n_val=2000,
                  n_test=4000, n_regs=10),
}
PAPER_XOR = {6: "100.0 (ref-runs CVX, L=5)", 8: "100.0 (ref-runs CVX, L=5)",
             11: "61.4 (ref-runs CVX, L=5)", 14: "51.3 (ref-runs CVX, L=5)"}


def _write_line_atomic(path: Path, record: dict) -> None:
    """Append one JSON line by rewriting the file atomically (finished cells are never lost)."""
    old = path.read_text() if path.exists() else ""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(old + json.dumps(record) + "\n")
    os.replace(tmp, path)


def reproduce(args) -> int:
    from .tasks.xor import CHANCE, first_last_xor
    from .train import fit_cvx

    preset = PRESETS[args.preset]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.jsonl"
    done = set()
    if results_file.exists():
        for line in results_file.read_text().splitlines():
            r = json.loads(line)
            done.add((r["task"], r["T"], r["seed"]))
    for seed in args.seeds:
        for T in preset["T"]:
            key = ("first_last_xor", T, seed)
            if key in done:
                print(f"skip finished cell {key}")
                continue
            t0 = time.perf_counter()
            Xtr, ytr = first_last_xor(preset["n_train"], T, seed=1000 * seed + 1)
            Xva, yva = first_last_xor(preset["n_val"], T, seed=1000 * seed + 2)
            Xte, yte = first_last_xor(preset["n_test"], T, seed=1000 * seed + 3)
            net_kw = dict(layers=preset["layers"], branches=2, width=preset["width"],
                          last_width=preset["last_width"], readout="membrane", readout_at="last")
            model, rep = fit_cvx(Xtr, ytr, Xva, yva, net_kw, loss="hinge", seed=seed,
                                 n_regs=preset["n_regs"], progress=not args.quiet)
            with torch.no_grad():
                pred = np.where(model(torch.as_tensor(Xte)).numpy()[:, 0] >= 0, 1.0, -1.0)
            acc = float(np.mean(pred == yte))
            record = dict(task="first_last_xor", T=T, seed=seed, method="cvx", test_acc=acc,
                          chance=CHANCE, seconds=time.perf_counter() - t0, **{
                              k: rep[k] for k in ("reg", "val_score", "certificate", "dictionary",
                                                  "neurons_kept")})
            _write_line_atomic(results_file, record)
            print(f"XOR T={T} seed={seed}: test {100 * acc:.1f} %  gap {rep['certificate']['gap']:.1e} "
                  f"({record['seconds']:.0f} s)")
    return report(argparse.Namespace(out=str(out)))


def report(args) -> int:
    results_file = Path(args.out) / "results.jsonl"
    if not results_file.exists():
        print(f"no results in {args.out}", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in results_file.read_text().splitlines()]
    by_T: dict[int, list] = {}
    for r in rows:
        by_T.setdefault(r["T"], []).append(r)
    lines = ["| task | T | CVX test acc % (mean ± std) | seeds | max rel. gap | paper / ref | chance |",
             "|---|---|---|---|---|---|---|"]
    for T in sorted(by_T):
        accs = np.array([100 * r["test_acc"] for r in by_T[T]])
        gap = max(r["certificate"]["rel_gap"] for r in by_T[T])
        lines.append(f"| FIRST-LAST-XOR | {T} | {accs.mean():.1f} ± {accs.std():.1f} | {len(accs)} | "
                     f"{gap:.1e} | {PAPER_XOR.get(T, '-')} | 50.0 |")
    table = "\n".join(lines)
    (Path(args.out) / "report.md").write_text(table + "\n")
    print(table)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="spikecvx", description="Globally optimal SNN training by "
                                 "parameter reconstruction, with certified convex solvers.")
    sub = ap.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("reproduce", help="run the paper's benchmarks and print the table beside "
                        "the published numbers (currently FIRST-LAST-XOR)")
    rp.add_argument("--preset", choices=sorted(PRESETS), default="quick",
                    help="smoke: seconds; quick: a few minutes on 2 CPU cores; paper: the full protocol")
    rp.add_argument("--seeds", type=int, nargs="+", default=[0], help="random seeds (default: 0)")
    rp.add_argument("--out", default="runs/reproduce", help="results folder; a rerun resumes there")
    rp.add_argument("--quiet", action="store_true", help="no progress bars")
    rp.set_defaults(func=reproduce)
    rr = sub.add_parser("report", help="print the markdown table of a results folder")
    rr.add_argument("out", help="results folder written by `spikecvx reproduce`")
    rr.set_defaults(func=report)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
