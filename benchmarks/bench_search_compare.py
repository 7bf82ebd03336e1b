"""Search vs random witnesses of the same count, cell by cell.

For every witness-search record of a results folder (``spikecvx reproduce`` / ``spikecvx run``),
runs the CVX method (or SG-CVX for ``sg-cvx-search``) through the same cell protocol with as many
last-layer neurons as the grown dictionary has columns (the larger head's count, rounded up to
the branches; the search cell's neuron parameters, no grid), and prints a markdown table of
neurons kept and test scores.

    python benchmarks/bench_search_compare.py runs/quick --out runs/quick-compare [--tasks xor]
"""

from __future__ import annotations

import argparse
import math

from spikecvx.experiments import load_results, run_cell, run_cells
from spikecvx.experiments.options import METHOD_OPTIONS
from spikecvx.train import METHODS

_SEARCH_KEYS = {k for k in METHODS["cvx-search"].options if k not in METHODS["cvx"].options}


def comparison_cell(cell: dict, result: dict) -> dict:
    """The random-witness cell of the same size as a search cell."""
    columns = max(s["columns"] for s in result["report"]["search"].values())
    net = dict(cell["net"])
    k = net.get("branches", 2)
    net["last_width"] = int(math.ceil(columns / k) * k)
    method = "sg-cvx" if cell["method"] == "sg-cvx-search" else "cvx"
    # the search cell's neuron parameters, no grid: the same witnesses, only more of them
    out = {key: v for key, v in cell.items() if key not in _SEARCH_KEYS and key != "grid" and (
        key not in METHOD_OPTIONS or key in METHODS[method].options)}
    return dict(out, method=method, net=net)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results", help="results folder holding witness-search records")
    p.add_argument("--out", required=True, help="results folder of the comparison cells")
    p.add_argument("--tasks", nargs="+", default=None)
    a = p.parse_args()
    searches = [r for r in load_results(a.results) if "search" in r["cell"]["method"]
                and (a.tasks is None or r["cell"]["task"] in a.tasks)]
    pairs = [(r, comparison_cell(r["cell"], r["result"])) for r in searches]
    done = run_cells([c for _, c in pairs], run_cell, a.out, progress=False)
    by_key = {repr(sorted(d["cell"].items())): d for d in done}
    print("| task | value | search method | columns | kept | test % | random same count: method | "
          "neurons | kept | test % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r, c in pairs:
        d = by_key[repr(sorted(c.items()))]
        cell, res = r["cell"], r["result"]
        value = cell.get("T", cell.get("base", cell.get("symbols")))
        cols = "/".join(str(s["columns"]) for s in res["report"]["search"].values())
        print(f"| {cell['task']} | {value} | {cell['method']} | {cols} | {res['report']['neurons_kept']} | "
              f"{100 * res['headline']:.1f} | {c['method']} | {c['net']['last_width']} | "
              f"{d['result']['report']['neurons_kept']} | {100 * d['result']['headline']:.1f} |")


if __name__ == "__main__":
    main()
