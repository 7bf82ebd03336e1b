"""The documentation: the site builds offline in strict mode, its code compiles, the reproduction
tables come from the result files, and the README stays a short product page."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HISTORY_WORDS = re.compile(r"\bsessions?\b|this machine|earlier run|\btried\b", re.IGNORECASE)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _hook():
    spec = importlib.util.spec_from_file_location("docs_report_hook", DOCS / "hooks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(task: str, method: str, value: int, acc: float, seed: int = 0) -> dict:
    key = {"xor": "T", "mnist": "T", "addition": "base"}[task]
    return {"cell": {"task": task, "method": method, "seed": seed, key: value},
            "result": {"headline": acc, "certificates": {}, "report": {}}, "seconds": 1.0}


# ---------------------------------------------------------------- the site

@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_site_builds_offline_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the reproduction page holds the tables rendered from the committed result file
    page = (site / "reproduction" / "index.html").read_text(encoding="utf-8")
    assert "docs/results/quick.jsonl" in page
    assert "spikecvx-report" not in page  # the marker was replaced
    assert "test accuracy %" in page
    # the changelog page includes CHANGELOG.md
    first_entry = re.search(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert first_entry is not None
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert first_entry.group(1).split(" (")[0] in changelog
    # the API reference was generated from the docstrings
    api = (site / "api" / "convex" / "index.html").read_text(encoding="utf-8")
    assert 'id="spikecvx.convex.solve"' in api


def test_no_plugin_fetches_at_build_time():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert not re.search(r"^\s*-\s*(privacy|social|optimize)\b", config, re.MULTILINE)
    assert re.search(r"^\s*font:\s*false", config, re.MULTILINE)
    assert "import:" not in config  # no inventories downloaded by mkdocstrings


def test_every_page_in_the_nav_exists():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config[config.index("\nnav:"):]
    pages = re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, re.MULTILINE)
    assert len(pages) >= 10
    for page in pages:
        assert (DOCS / page).is_file(), page


# ---------------------------------------------------------------- code in the docs

def _python_blocks(path: Path) -> list[str]:
    return PYTHON_BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["xor", "mnist", "addition", "nir"])
def test_tutorial_code_compiles(name):
    path = DOCS / "tutorials" / f"{name}.md"
    blocks = _python_blocks(path)
    assert blocks, f"{path} has no python code block"
    for i, code in enumerate(blocks):
        compile(code, f"{path.name}[block {i}]", "exec")


@pytest.mark.parametrize("path", [ROOT / "README.md", DOCS / "getting-started.md", DOCS / "engine.md"],
                         ids=lambda p: p.name)
def test_other_code_blocks_compile(path):
    for i, code in enumerate(_python_blocks(path)):
        compile(code, f"{path.name}[block {i}]", "exec")


def test_the_block_checker_sees_a_syntax_error():
    blocks = PYTHON_BLOCK.findall("text\n```python\nx = (1,\n```\n")
    assert blocks == ["x = (1,\n"]
    with pytest.raises(SyntaxError):
        compile(blocks[0], "broken", "exec")


# ---------------------------------------------------------------- README and product text

def test_readme_is_a_short_product_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci in text  # the test command is the one CI runs
    assert re.search(r"^python3 -m venv .*spikecvx reproduce --preset quick$", text, re.MULTILINE)
    for link in re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)", text):
        assert (ROOT / link).is_file(), link


def test_product_text_does_not_narrate_development():
    text_files = (p for p in DOCS.rglob("*") if p.suffix in (".md", ".py", ".js", ".yml"))
    files = [ROOT / "README.md", *sorted(text_files)]
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
            for p in files for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if HISTORY_WORDS.search(line)]
    assert not hits, "history belongs in CHANGELOG.md:\n" + "\n".join(hits)


# ---------------------------------------------------------------- the report hook

def test_hook_renders_the_tables_of_the_results_file(tmp_path):
    from spikecvx.experiments import tables

    hook = _hook()
    records = [_record("xor", "cvx", 6, 1.0), _record("xor", "sg", 6, 0.75)]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "quick.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = hook.on_page_markdown("# T\n\n<!-- spikecvx-report: quick -->\n", None,
                                {"docs_dir": str(tmp_path)}, None)
    assert tables(records) in out
    assert "`docs/results/quick.jsonl` (2 records" in out
    assert "| 6 | cvx | 100.0 ± 0.0 |" in out and "| 6 | sg | 75.0 ± 0.0 |" in out
    assert "match no preset" in out
    assert "spikecvx-report" not in out


def test_hook_names_bad_lines_and_keeps_good_ones(tmp_path):
    hook = _hook()
    good = _record("mnist", "cvx", 4, 0.5)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "quick.jsonl").write_text(
        json.dumps(good) + "\n{truncated\n" + json.dumps({"result": {}}) + "\n\n" + json.dumps(good) + "\n")
    records, bad = hook.read_records(tmp_path / "results" / "quick.jsonl")
    assert records == [good, good] and bad == [2, 3]
    out = hook.render("quick", tmp_path)
    assert "Lines 2, 3 of `docs/results/quick.jsonl`" in out
    assert "| 4 | cvx | 50.0 ± 0.0 | 2 |" in out


@pytest.mark.parametrize("content", [None, "", "\n\n"])
def test_hook_renders_a_note_for_a_missing_or_empty_file(tmp_path, content):
    hook = _hook()
    if content is not None:
        (tmp_path / "results").mkdir()
        (tmp_path / "results" / "paper.jsonl").write_text(content)
    out = hook.render("paper", tmp_path)
    assert out.startswith('!!! note "No results yet"')
    assert "docs/results/paper.jsonl" in out and "|" not in out


def test_hook_identifies_the_preset_of_the_committed_results():
    from spikecvx.experiments import PRESETS, expand

    hook = _hook()
    records, bad = hook.read_records(DOCS / "results" / "quick.jsonl")
    assert records and not bad
    name = hook.preset_of(records)
    assert name in PRESETS
    assert sorted(json.dumps(r["cell"], sort_keys=True) for r in records) == \
        sorted(json.dumps(c, sort_keys=True) for c in expand(PRESETS[name]))
    assert hook.preset_of(records[:-1]) is None  # a part of a preset is not that preset


def test_hook_warns_when_a_file_holds_another_preset(tmp_path):
    hook = _hook()
    committed = (DOCS / "results" / "quick.jsonl").read_text(encoding="utf-8")
    records, _ = hook.read_records(DOCS / "results" / "quick.jsonl")
    preset = hook.preset_of(records)
    (tmp_path / "results").mkdir()
    for name in ("quick", "paper", preset):
        (tmp_path / "results" / f"{name}.jsonl").write_text(committed)
    for name in ("quick", "paper"):
        warned = f'!!! warning "Not the {name} preset"' in hook.render(name, tmp_path)
        assert warned == (name != preset)
    assert "Not the" not in hook.render(preset, tmp_path)


def test_committed_result_configs_match_their_results():
    """Each config in docs/results is valid today and its results line is a run of that config."""
    from spikecvx.experiments.presets import expand, load_config

    cells = expand(load_config(DOCS / "results" / "mnist_full_4ranks.toml"))
    records = [json.loads(line) for line in (DOCS / "results" / "mnist_full_4ranks.jsonl").open()]
    assert len(cells) == len(records) == 1
    ran = records[0]["cell"]
    for key in ("task", "method", "T", "n_train", "n_val", "n_test", "epochs", "n_regs", "min_ratio"):
        assert ran[key] == cells[0][key], key
    assert ran["net"]["last_width"] == cells[0]["net"]["last_width"] == 16384
    assert records[0]["result"]["certificates"]["digit"]["rel_gap"] <= 1e-6
