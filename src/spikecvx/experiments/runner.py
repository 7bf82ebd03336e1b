"""Grid runner: one JSON line per finished cell, appended atomically; a rerun skips finished cells."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm.auto import tqdm

from ..tasks import TASKS

try:
    import fcntl
except ImportError:  # not POSIX: appends rely on single O_APPEND writes only
    fcntl = None

RESULTS = "results.jsonl"


def cell_key(cell: dict) -> str:
    """Stable identity of a cell (task, method, seed and parameters)."""
    return json.dumps(cell, sort_keys=True)


def append_atomic(path: Path, record: dict) -> None:
    """Append one JSON line; safe under concurrent writers and crashes.

    The line goes out in one ``os.write`` on an ``O_APPEND`` descriptor while an exclusive
    ``flock`` on the file is held, so lines of concurrent writers never interleave or overwrite
    each other. A line torn by a crash (no final newline) is closed with a newline first, so the
    torn line stays one bad line that the loader skips and the new record stays whole.
    """
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"{path}: short write ({written} of {len(line)} bytes); the last line is torn")
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def _warn(message: str) -> None:
    print(f"spikecvx: warning: {message}", file=sys.stderr)


def _record_problem(rec) -> str | None:
    """What keeps ``rec`` from being a record the reports can use (None when nothing does)."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not a record"
    cell, result = rec.get("cell"), rec.get("result")
    if not isinstance(cell, dict):
        return "a record without a 'cell' table"
    if not isinstance(result, dict) or "headline" not in result:
        return "a record without a 'result' table holding a 'headline'"
    missing = [k for k in ("task", "method", "seed") if k not in cell]
    if not missing and cell["task"] in TASKS and TASKS[cell["task"]].grid_key not in cell:
        missing = [TASKS[cell["task"]].grid_key]
    if missing:
        return f"a record whose cell has no {', '.join(missing)}"
    return None


def load_results(out: str | Path, warn: Callable[[str], None] | None = _warn) -> list[dict]:
    """Records of a results folder (empty when there are none yet).

    A line that is not a JSON record with a ``cell`` table (task, method, seed and the task's grid
    key) and a ``result`` table with a ``headline`` (a line torn by a crash, garbage) is skipped
    and left in the file; ``warn`` is told its file and line number.
    """
    path = Path(out) / RESULTS
    if not path.exists():
        return []
    if not path.is_file():
        raise ValueError(f"{path} must be a file, but it is a folder")
    records = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError as err:  # also bytes that are not UTF-8
                problem = f"not valid JSON ({err})"
            else:
                problem = _record_problem(rec)
                if problem is None:
                    records.append(rec)
                    continue
            if warn is not None:
                warn(f"{path}:{lineno}: skipped a line that is {problem}")
    return records


def check_out(out: str | Path) -> Path:
    """Make sure results can be written to ``out`` (created when missing) before anything runs.

    Raises ValueError naming the path when ``out`` is a file, cannot be created or written, or
    its results file is not a writable file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a results folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create the results folder ({err.strerror})") from None
    path = out / RESULTS
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} must be a file, but it is a folder")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    except OSError as err:
        raise ValueError(f"{path}: cannot write results there ({err.strerror})") from None
    return out


def run_cells(cells: Iterable[dict], run_cell: Callable[[dict], dict], out: str | Path,
              progress: bool = True, log: Callable[[str], None] = print, comm=None) -> list[dict]:
    """Run every cell not yet in ``out/results.jsonl``; returns all records of the folder.

    ``run_cell(cell)`` returns a dict of results; the record written is the cell plus those
    results under "result", plus the seconds it took. Lines of the file that are not records
    are reported on stderr, skipped and kept.

    ``comm`` (a ``spikecvx.distributed.Communicator``): every rank runs the same cells (rank 0
    reads the folder and tells the others which are left); rank 0 alone logs and writes, and
    the other ranks return an empty list.
    """
    lead = comm is None or comm.rank == 0
    cells = list(cells)
    todo = None
    if lead:
        out = check_out(out)
        done = {cell_key(r["cell"]) for r in load_results(out)}
        todo = [c for c in cells if cell_key(c) not in done]
        if len(todo) < len(cells):
            log(f"resuming in {out}: {len(cells) - len(todo)} of {len(cells)} cells already finished")
    if comm is not None:
        todo = comm.broadcast_object(todo, src=0)
    if not lead:
        for cell in todo:
            run_cell(cell)
        return []
    bar = tqdm(todo, desc="cells", disable=not progress, unit="cell")
    for cell in bar:
        bar.set_postfix_str(f"{cell['task']} {cell['method']} seed={cell['seed']}")
        t0 = time.perf_counter()
        result = run_cell(cell)
        record = dict(cell=cell, result=result, seconds=time.perf_counter() - t0)
        append_atomic(out / RESULTS, record)
        log(summary_line(record))
    return load_results(out, warn=None)  # the bad lines were reported above


def summary_line(record: dict) -> str:
    cell, res = record["cell"], record["result"]
    params = " ".join(f"{k}={cell[k]}" for k in ("T", "base", "symbols") if k in cell)
    score = res.get("headline")
    return (f"{cell['task']} {cell['method']} seed={cell['seed']} {params}: "
            f"{'' if score is None else f'{100 * score:.1f} %'}  ({record['seconds']:.0f} s)")
