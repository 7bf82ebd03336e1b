"""Markdown tables (mean +- std over seeds, beside the published numbers) and PNG plots.

Cells of the witness-search methods also get a per-round table (objective, gap, violations,
columns added, validation accuracy, and the final statement and test score) and a plot of the
objective, the best violation and the validation accuracy per round."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..tasks import TASKS

# Published figures from the paper's protocol: [paper] = the paper, [ref] = the authors' result files.
PAPER = {(name, v): text for name, spec in TASKS.items() for v, text in spec.published.items()}
PARAM = {name: spec.grid_key for name, spec in TASKS.items()}


def _pm(values) -> str:
    v = 100 * np.asarray(values, dtype=float)
    return f"{v.mean():.1f} ± {v.std():.1f}"


def _max_gap(records) -> str:
    gaps = [c["rel_gap"] for r in records for c in r["result"].get("certificates", {}).values()]
    return f"{max(gaps):.0e}" if gaps else "-"


def _chosen(records) -> str:
    """Hyper-parameters chosen on validation, per seed (empty when there was no grid)."""
    picks = {", ".join(f"{k}={v}" for k, v in r["result"].get("report", {}).get("chosen", {}).items())
             for r in records}
    return "; ".join(sorted(p for p in picks if p)) or "-"


def _lengths_table(spec, rows) -> list[str]:
    """One column per test length (from each result's ``metrics``), plus the whole-sequence accuracy."""
    lengths = sorted({n for rs in rows.values() for r in rs for n in r["result"]["metrics"]}, key=int)
    head = " | ".join(f"n={n}" for n in lengths)
    lines = [f"### {spec.title}: {spec.metric}\n",
             f"| {spec.grid_key} | method | {head} | seq. acc n={lengths[0]} | seeds | max rel. gap | chosen "
             f"| {spec.published_label} | {spec.chance_label} |",
             "|---" * (len(lengths) + 8) + "|"]
    for (v, m), rs in sorted(rows.items()):
        accs = " | ".join(_pm([r["result"]["metrics"][n]["joint"] for r in rs]) for n in lengths)
        seq = _pm([r["result"]["metrics"][lengths[0]]["sequence"] for r in rs])
        lines.append(f"| {v} | {m} | {accs} | {seq} | {len(rs)} | {_max_gap(rs)} | {_chosen(rs)} | "
                     f"{spec.published_for(v)} | {100 * spec.chance({spec.grid_key: v}):.1f} |")
    return lines


def _accuracy_table(spec, rows) -> list[str]:
    """One headline column."""
    lines = [f"### {spec.title}: {spec.metric}\n",
             f"| {spec.grid_key} | method | ours (mean ± std) | seeds | max rel. gap | "
             f"{spec.published_label} | {spec.chance_label} |",
             "|---|---|---|---|---|---|---|"]
    for (v, m), rs in sorted(rows.items()):
        lines.append(f"| {v} | {m} | {_pm([r['result']['headline'] for r in rs])} | {len(rs)} | "
                     f"{_max_gap(rs)} | {spec.published_for(v)} | "
                     f"{100 * spec.chance({spec.grid_key: v}):.1f} |")
    return lines


_LAYOUTS = {"accuracy": _accuracy_table, "lengths": _lengths_table}


def _searches(records) -> list[tuple[str, dict, dict]]:
    """(label, record, search dict) for every head of every witness-search record, in order."""
    out = []
    for r in records:
        c = r["cell"]
        for head, s in r["result"].get("report", {}).get("search", {}).items():
            key = TASKS[c["task"]].grid_key if c.get("task") in TASKS else None
            label = f"{c['task']} {key}={c.get(key)} {c['method']} s{c['seed']} {head}"
            out.append((label, r, s))
    return out


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def search_tables(records: list[dict]) -> str:
    """Per-round tables of the witness-search cells ("" when there are none)."""
    found = _searches(records)
    if not found:
        return ""
    lines = ["### Witness search, per round\n",
             "Violations in units of reg (a candidate improves the objective when > 1); the scores are "
             "the validation accuracy of the solution the round priced against.\n",
             "| cell | round | columns | objective | gap | max violation | median violation | added "
             "| val. acc. % |", "|---|---|---|---|---|---|---|---|---|"]
    for label, r, s in found:
        for e in s["rounds"]:
            val = None if e["val_score"] is None else 100 * e["val_score"]
            lines.append(f"| {label} | {e['round']} | {e['columns']} | {e['objective']:.5g} | "
                         f"{e['gap']:.1e} | {_num(e['max_violation'], '.3g')} | "
                         f"{_num(e['median_violation'], '.3g')} | {e['added']} | {_num(val, '.1f')} |")
        lines.append(f"| {label} | final: {s['statement']}; test (headline) "
                     f"{100 * r['result']['headline']:.1f} % | | | | | | | |")
    return "\n".join(lines)


def tables(records: list[dict]) -> str:
    """One markdown table per task, in the order of ``TASKS``; records of other tasks are left out."""
    groups: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for r in records:
        c = r["cell"]
        if c.get("task") in TASKS:
            groups[c["task"]][(c.get(TASKS[c["task"]].grid_key), c.get("method"))].append(r)
    parts = ["\n".join(_LAYOUTS[spec.layout](spec, groups[name]))
             for name, spec in TASKS.items() if name in groups]
    search = search_tables(records)
    return "\n\n".join(parts + ([search] if search else []))


def plots(records: list[dict], out: str | Path) -> list[Path]:
    """PNG figures: XOR accuracy vs T, addition accuracy vs length, MNIST path, solver gaps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    written = []

    def save(fig, name):
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    by = defaultdict(list)
    for r in records:
        by[r["cell"]["task"]].append(r)
    if by["xor"]:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for m in sorted({r["cell"]["method"] for r in by["xor"]}):
            pts = defaultdict(list)
            for r in by["xor"]:
                if r["cell"]["method"] == m:
                    pts[r["cell"]["T"]].append(100 * r["result"]["headline"])
            Ts = sorted(pts)
            ax.plot(Ts, [np.mean(pts[T]) for T in Ts], "o-", label=m)
        ax.axhline(50, ls=":", c="gray", label="chance")
        ax.set(xlabel="sequence length T", ylabel="test accuracy %", title=TASKS["xor"].title)
        ax.legend()
        save(fig, "xor_accuracy_vs_T.png")
    if by["addition"]:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for r in by["addition"]:
            ms = r["result"]["metrics"]
            ns = sorted(ms, key=int)
            ax.plot([int(n) for n in ns], [100 * ms[n]["joint"] for n in ns], "o-",
                    label=f"base {r['cell']['base']} {r['cell']['method']} s{r['cell']['seed']}")
        ns = sorted({int(n) for r in by["addition"] for n in r["result"]["metrics"]})
        ax.set(xscale="log", xlabel="digits n (5 = in distribution)", ylabel="joint token accuracy %",
               title="Addition, autoregressive")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.legend(fontsize=7)
        save(fig, "addition_accuracy_vs_length.png")
    if by["mnist"]:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for r in by["mnist"]:
            for path in r["result"]["report"].get("paths", {}).values():
                ax.plot([p["reg"] for p in path], [100 * p["val_acc"] for p in path], "o-",
                        label=f"T={r['cell']['T']} {r['cell']['method']} s{r['cell']['seed']}")
        ax.set(xscale="log", xlabel="regularisation", ylabel="validation accuracy %",
               title="Sequential MNIST along the path")
        ax.legend(fontsize=7)
        save(fig, "mnist_accuracy_along_path.png")
    found = _searches(records)
    if found:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for label, _, s in found:
            rounds = [e["round"] for e in s["rounds"]]
            axes[0].plot(rounds, [e["objective"] for e in s["rounds"]], "o-", label=label)
            # the closing entry prices nothing: its point is every searched candidate re-priced
            # at the final solution (the statement's v)
            axes[1].plot(rounds, [(s["best_violation"] if e is s["rounds"][-1] else np.nan)
                                  if e["max_violation"] is None else e["max_violation"]
                                  for e in s["rounds"]], "o-", label=label)
            axes[2].plot(rounds, [np.nan if e["val_score"] is None else 100 * e["val_score"]
                                  for e in s["rounds"]], "o-", label=label)
        axes[0].set(xlabel="round", ylabel="objective", yscale="log", title="Certified objective")
        axes[1].axhline(1, ls=":", c="gray")
        axes[1].set(xlabel="round", ylabel="best violation / reg", yscale="log", title="Best candidate")
        axes[2].set(xlabel="round", ylabel="validation accuracy %", title="Validation accuracy")
        axes[2].legend(fontsize=6)
        for ax in axes:
            ax.xaxis.get_major_locator().set_params(integer=True)
        save(fig, "search_rounds.png")
    gaps = [(f"{r['cell']['task']} {r['cell']['method']}", p["rel_gap"]) for r in records
            for path in r["result"].get("report", {}).get("paths", {}).values() for p in path]
    if gaps:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        labels = sorted({g[0] for g in gaps})
        for i, lab in enumerate(labels):
            vals = [max(g[1], 1e-17) for g in gaps if g[0] == lab]
            ax.scatter(np.full(len(vals), i), vals, s=12)
        ax.axhline(1e-6, ls=":", c="red", label="target 1e-6")
        ax.set(yscale="log", ylabel="relative duality gap", title="Certificates of every solve")
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
        ax.legend()
        save(fig, "duality_gaps.png")
    return written


def write_report(records: list[dict], out: str | Path, with_plots: bool = True) -> str:
    """Write report.md (and PNGs) into ``out``; returns the markdown."""
    out = Path(out)
    md = tables(records)
    if with_plots:
        figs = plots(records, out)
        if figs:
            md += "\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in figs)
    (out / "report.md").write_text(md + "\n")
    return md
