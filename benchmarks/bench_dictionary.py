"""Dictionary building (no-grad forward) vs snnTorch's forward of the same network.

Each measurement runs in its own subprocess so that peak memory (max RSS above the RSS after
the inputs and weights exist) is its own. Usage:  python benchmarks/bench_dictionary.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = {
    # (a) Open Neuromorphic benchmark shape, scaled to a CPU: one Linear + LIF layer
    "a_linear_lif_4096": dict(d_in=4096, layers=2, branches=1, width=4096, last_width=4096,
                              N=16, T=500, readout="spike", readout_at="every", batch=16, chunk=125),
    # (b) the Sequential-MNIST preset: T=4, L=3, K=2, 512/1024 neurons, 6000 samples
    "b_mnist_preset": dict(d_in=196, layers=3, branches=2, width=512, last_width=1024,
                           N=6000, T=4, readout="membrane", readout_at="last", batch=1000, chunk=None),
}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_one(case: str, impl: str) -> dict:
    import torch

    import spikecvx as sc

    torch.set_num_threads(torch.get_num_threads())
    c = CASES[case]
    net = sc.ParallelSNN(c["d_in"], 1, layers=c["layers"], branches=c["branches"], width=c["width"],
                         last_width=c["last_width"], readout=c["readout"], readout_at=c["readout_at"],
                         beta=0.9, seed=0)
    sc.sample_witnesses(net, scale=1.0 / c["d_in"] ** 0.5 * 3, seed=0)
    x = torch.rand(c["N"], c["T"], c["d_in"], generator=torch.Generator().manual_seed(0))
    base = _rss_mb()
    t0 = time.perf_counter()
    if impl == "spikecvx":
        D = sc.spike_dictionary(net, x, batch_size=c["batch"], time_chunk=c["chunk"])
        size_mb = D.matrix.nbytes / 2**20
        check = int(D.matrix.sum())
    else:
        import snntorch as snn

        with torch.no_grad():
            layers = []
            for i, w in enumerate(net.hidden):
                branch_ws = [w] if i == 0 else list(w)  # snnTorch: one Linear per branch
                layers.append([torch.nn.Linear(bw.shape[0], bw.shape[1], bias=False) for bw in branch_ws])
                for lin, bw in zip(layers[-1], branch_ws):
                    lin.weight.data = bw.T.contiguous()
            lifs = [snn.Leaky(beta=0.9) for _ in layers]
            outs = []
            for a in range(0, c["N"], c["batch"]):
                xb = x[a : a + c["batch"]]
                mems = [None] * len(layers)
                feats = []
                for t in range(c["T"]):
                    h = xb[:, t]
                    for i, (lins, lif) in enumerate(zip(layers, lifs)):
                        if i == 0:
                            cur = lins[0](h)
                        else:
                            parts = h.chunk(len(lins), dim=1)
                            cur = torch.cat([lin(p) for lin, p in zip(lins, parts)], 1)
                        if mems[i] is None:
                            mems[i] = torch.zeros_like(cur)
                        h, mems[i] = lif(cur, mems[i])
                    feats.append((h if c["readout"] == "spike" else (mems[-1] >= 0).float()).to(torch.uint8))
                outs.append(torch.stack(feats, 1) if c["readout_at"] == "every" else feats[-1])
            out = torch.cat(outs)
        size_mb = out.numel() / 2**20
        check = int(out.sum())
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    return dict(case=case, impl=impl, seconds=seconds, peak_extra_mb=peak, dict_mb=size_mb, check=check)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--one", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    print(f"{'case':20s} {'spikecvx s':>10s} {'snntorch s':>10s} {'speed-up':>8s} "
          f"{'dict MB':>8s} {'peak extra MB':>13s} {'peak/dict':>9s}")
    for case in args.cases:
        res = {}
        for impl in ("spikecvx", "snntorch"):
            out = subprocess.run([sys.executable, __file__, "--one", case, impl], check=True,
                                 capture_output=True, text=True).stdout
            res[impl] = json.loads(out.strip().splitlines()[-1])
        a, b = res["spikecvx"], res["snntorch"]
        same = "same spikes" if a["check"] == b["check"] else f"SPIKE COUNTS DIFFER {a['check']} {b['check']}"
        speed, mem = b["seconds"] / a["seconds"], a["peak_extra_mb"] / a["dict_mb"]
        print(f"{case:20s} {a['seconds']:10.2f} {b['seconds']:10.2f} {speed:7.1f}x "
              f"{a['dict_mb']:8.1f} {a['peak_extra_mb']:13.1f} {mem:9.2f}  {same}")


if __name__ == "__main__":
    main()
