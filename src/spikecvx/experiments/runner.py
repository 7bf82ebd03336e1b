"""Grid runner: one JSON line per finished cell, written atomically; a rerun skips finished cells."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm.auto import tqdm

RESULTS = "results.jsonl"


def cell_key(cell: dict) -> str:
    """Stable identity of a cell (task, method, seed and parameters)."""
    return json.dumps(cell, sort_keys=True)


def append_atomic(path: Path, record: dict) -> None:
    """Append one JSON line by writing a new file and renaming it over the old one.

    A crash at any moment leaves either the old file or the new one, never a torn line."""
    old = path.read_bytes() if path.exists() else b""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(old + (json.dumps(record) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_results(out: str | Path) -> list[dict]:
    """Records of a results folder (empty when there are none yet)."""
    path = Path(out) / RESULTS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_cells(cells: Iterable[dict], run_cell: Callable[[dict], dict], out: str | Path,
              progress: bool = True, log: Callable[[str], None] = print) -> list[dict]:
    """Run every cell not yet in ``out/results.jsonl``; returns all records of the folder.

    ``run_cell(cell)`` returns a dict of results; the record written is the cell plus those
    results under "result", plus the seconds it took.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = {cell_key(r["cell"]) for r in load_results(out)}
    cells = list(cells)
    todo = [c for c in cells if cell_key(c) not in done]
    if len(todo) < len(cells):
        log(f"resuming in {out}: {len(cells) - len(todo)} of {len(cells)} cells already finished")
    bar = tqdm(todo, desc="cells", disable=not progress, unit="cell")
    for cell in bar:
        bar.set_postfix_str(f"{cell['task']} {cell['method']} seed={cell['seed']}")
        t0 = time.perf_counter()
        result = run_cell(cell)
        record = dict(cell=cell, result=result, seconds=time.perf_counter() - t0)
        append_atomic(out / RESULTS, record)
        log(summary_line(record))
    return load_results(out)


def summary_line(record: dict) -> str:
    cell, res = record["cell"], record["result"]
    params = " ".join(f"{k}={cell[k]}" for k in ("T", "base", "symbols") if k in cell)
    score = res.get("headline")
    return (f"{cell['task']} {cell['method']} seed={cell['seed']} {params}: "
            f"{'' if score is None else f'{100 * score:.1f} %'}  ({record['seconds']:.0f} s)")
