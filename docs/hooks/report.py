"""mkdocs hook: render the reproduction tables from committed result files at build time.

A page holds a marker ``<!-- spikecvx-report: NAME -->``. The hook reads ``docs/results/NAME.jsonl``
(the ``results.jsonl`` that ``spikecvx reproduce`` writes, one JSON record per finished cell) and
replaces the marker with the tables of ``spikecvx.experiments.tables``, the function behind
``spikecvx report``, preceded by a line naming the file and the preset whose cells it holds. A
missing or empty file renders a note instead of failing the build; lines that are not JSON records
are named in a warning admonition and left out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

MARKER = re.compile(r"<!--\s*spikecvx-report:\s*([A-Za-z0-9_.-]+)\s*-->")


def read_records(path: Path) -> tuple[list[dict], list[int]]:
    """Records of a results file and the 1-based numbers of the lines that are not records."""
    records, bad = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad.append(number)
            continue
        if isinstance(record, dict) and isinstance(record.get("cell"), dict) and "result" in record:
            records.append(record)
        else:
            bad.append(number)
    return records, bad


def _canonical(cell: dict) -> str:
    return json.dumps(cell, sort_keys=True)


def preset_of(records: list[dict]) -> str | None:
    """Name of the preset whose cells are exactly the records' cells (None when none matches)."""
    from spikecvx.experiments import PRESETS, expand

    cells = {_canonical(r["cell"]) for r in records}
    for name, config in PRESETS.items():
        if {_canonical(c) for c in expand(config)} == cells:
            return name
    return None


def render(name: str, docs_dir: Path) -> str:
    """Markdown for one marker: a source line and the tables, or a note."""
    from spikecvx.experiments import tables

    rel = f"docs/results/{name}.jsonl"
    path = docs_dir / "results" / f"{name}.jsonl"
    if not path.is_file():
        return (f'!!! note "No results yet"\n    `{rel}` is not in the repository. Run '
                f"`spikecvx reproduce --preset {name}` and commit its `results.jsonl` as `{rel}`.\n")
    records, bad = read_records(path)
    if not records:
        return f'!!! note "No results yet"\n    `{rel}` holds no result records.\n'
    preset = preset_of(records)
    label = (f"the cells of the `{preset}` preset" if preset
             else "cells that match no preset exactly")
    head = f"Generated at build time from `{rel}` ({len(records)} records: {label}).\n"
    if preset and preset != name:
        head += (f'\n!!! warning "Not the {name} preset"\n    `{rel}` holds the results of the '
                 f"`{preset}` preset; the `{name}` preset's results replace it when committed.\n")
    if bad:
        head += (f'\n!!! warning "Lines left out"\n    Lines {", ".join(map(str, bad))} of `{rel}` are '
                 "not result records.\n")
    return head + "\n" + tables(records) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    docs_dir = Path(config["docs_dir"])
    return MARKER.sub(lambda m: render(m.group(1), docs_dir), markdown)
