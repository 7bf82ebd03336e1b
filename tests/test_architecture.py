"""The layering of ARCHITECTURE.md, checked on the source: no layer imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "spikecvx"

# layer -> the spikecvx layers it may import besides itself (shared helpers such as _validation are no layer)
ALLOWED = {
    "snn": set(),
    "dictionary": {"snn"},
    "convex": set(),
    "tasks": set(),
    # interop depends on snn alone, so the estimator's save / load through its checkpoints
    # closes no cycle
    "train": {"snn", "dictionary", "convex", "interop"},
    "interop": {"snn"},
    "experiments": {"snn", "dictionary", "convex", "train", "tasks"},
    "cli": {"experiments", "interop", "tasks", "snn"},
}


def _layer_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imported_layers(path: Path, source: str | None = None) -> set[str]:
    """spikecvx layers imported by one module (absolute and relative imports, at any depth)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = list(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "spikecvx" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if p.parent != SRC or p.name == "cli.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_imports(path):
    layer = _layer_of(path)
    assert layer in ALLOWED, f"{path}: module outside the known layers {sorted(ALLOWED)}"
    bad = (_imported_layers(path) & set(ALLOWED)) - ALLOWED[layer] - {layer}
    assert not bad, f"{path.relative_to(SRC)} ({layer}) imports {sorted(bad)}, above or beside it"


def test_the_checker_sees_every_import_form():
    """Relative imports resolve to their layer; absolute and nested ones are seen too."""
    source = ("from ..train import SpikingClassifier\nfrom . import lif\n"
              "def f():\n    import spikecvx.experiments\n    from spikecvx.tasks import TASKS\n")
    layers = _imported_layers(SRC / "snn" / "probe.py", source)
    assert layers == {"train", "snn", "experiments", "tasks"}
