"""Markdown tables (mean +- std over seeds, beside the published numbers) and PNG plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

# Published figures from spec/TASKS.md: [paper] = the paper, [ref] = the authors' result files.
PAPER = {
    ("xor", 6): "CVX 100.0 [paper]; SG 73.7 / CVX 100.0 / SG-CVX 80.3 [ref, L=5]",
    ("xor", 8): "SG 68.9 / CVX 100.0 / SG-CVX 86.5 [ref, L=5]",
    ("xor", 11): "SG 59.7 / CVX 61.4 / SG-CVX 76.0 [ref, L=5]",
    ("xor", 14): "SG 51.6 / CVX 51.3 / SG-CVX 55.0 [ref, L=5]",
    ("addition", 2): "SG 46.1 / 49.9 / 52.3 / 53.3; CVX-SG 84.4 / 71.0 / 59.8 / 51.1 [ref]",
    ("addition", 3): "36.6 / 31.4 / 30.7 / 31.0 [paper]; SG 21.7 / 19.7 / 18.2 / 17.7 [ref]",
    ("addition", 5): "23.0 / 18.8 / 17.3 / 17.2 [paper]; SG 15.9 / 14.8 / 14.2 / 14.1 [ref]",
    ("mnist", 4): "92.5 [paper]; CVX 70.6 / SG-CVX 85.75 [ref, L=3]",
    ("mnist", 14): "CVX 67.9 / SG-CVX 77.75 [ref, L=3]",
    ("mnist", 28): "SG 76.3 / CVX 83.1 [ref, L=3, wider]",
}
CHANCE = {"xor": "50.0", "mnist": "10.0", "dfa": "50.0"}
PARAM = {"xor": "T", "addition": "base", "mnist": "T", "dfa": "symbols"}


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


def tables(records: list[dict]) -> str:
    """One markdown table per task."""
    groups: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for r in records:
        c = r["cell"]
        groups[c["task"]][(c[PARAM[c["task"]]], c["method"])].append(r)
    parts = []
    for task in ("xor", "addition", "mnist", "dfa"):
        if task not in groups:
            continue
        rows = groups[task]
        key = PARAM[task]
        if task == "addition":
            lengths = sorted({n for rs in rows.values() for r in rs for n in r["result"]["metrics"]}, key=int)
            head = " | ".join(f"n={n}" for n in lengths)
            lines = ["### Addition: joint token accuracy %, autoregressive (n=5 in distribution)\n",
                     f"| base | method | {head} | seq. acc n=5 | seeds | max rel. gap | chosen "
                     "| published (ID / 2x / 5x / 10x) | chance (sum digit) |",
                     "|---" * (len(lengths) + 8) + "|"]
            for (base, m), rs in sorted(rows.items()):
                accs = " | ".join(_pm([r["result"]["metrics"][n]["joint"] for r in rs]) for n in lengths)
                seq = _pm([r["result"]["metrics"][lengths[0]]["sequence"] for r in rs])
                lines.append(f"| {base} | {m} | {accs} | {seq} | {len(rs)} | {_max_gap(rs)} | "
                             f"{_chosen(rs)} | "
                             f"{PAPER.get((task, base), '-')} | {100 / base:.1f} |")
        else:
            title = {"xor": "FIRST-LAST-XOR", "mnist": "Sequential MNIST",
                     "dfa": "Random DFA (length 9)"}[task]
            lines = [f"### {title}: test accuracy %\n",
                     f"| {key} | method | ours (mean ± std) | seeds | max rel. gap | published | chance |",
                     "|---|---|---|---|---|---|---|"]
            for (v, m), rs in sorted(rows.items()):
                lines.append(f"| {v} | {m} | {_pm([r['result']['headline'] for r in rs])} | {len(rs)} | "
                             f"{_max_gap(rs)} | {PAPER.get((task, v), '-')} | {CHANCE[task]} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


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
        ax.set(xlabel="sequence length T", ylabel="test accuracy %", title="FIRST-LAST-XOR")
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
