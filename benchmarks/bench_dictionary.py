"""Dictionary building (no-grad forward) vs snnTorch's forward of the same network.

Each measurement runs in its own subprocess, so its peak memory (the peak RSS above the RSS
once the inputs and weights exist, read from /proc) is its own. Each process first runs once on
two samples and two steps, so one-time costs (loading compiled kernels, BLAS buffers) are not
timed. The processes of the two implementations alternate (--rounds of each); the best time and
the largest peak are reported. spikecvx picks its own batch and time chunk (bounded working
memory); snnTorch runs batch by batch with the case's batch size. "GEMM s" times only the dense
matrix products of the network, all rows at once: no implementation that computes the currents
in float32 can be faster, so snnTorch s / GEMM s bounds the possible speed-up.

Usage:  python benchmarks/bench_dictionary.py [--cases a_linear_lif_4096] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CASES = {
    # (a) Open Neuromorphic benchmark shape, scaled to a CPU: one Linear + LIF layer
    "a_linear_lif_4096": dict(d_in=4096, layers=2, branches=1, width=4096, last_width=4096,
                              N=16, T=500, readout="spike", readout_at="every", batch=16),
    # (b) the Sequential-MNIST preset: T=4, L=3, K=2, 512/1024 neurons, 6000 samples
    "b_mnist_preset": dict(d_in=196, layers=3, branches=2, width=512, last_width=1024,
                           N=6000, T=4, readout="membrane", readout_at="last", batch=1000),
}


REPEATS = 2  # timed runs per process; the best over all rounds is reported


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status (Linux only)")


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS, so earlier peaks
    (building the inputs) do not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def run_one(case: str, impl: str) -> dict:
    import torch

    import spikecvx as sc

    torch.set_num_threads(torch.get_num_threads())
    c = CASES[case]
    net = sc.ParallelSNN(c["d_in"], 1, layers=c["layers"], branches=c["branches"], width=c["width"],
                         last_width=c["last_width"], readout=c["readout"], readout_at=c["readout_at"],
                         beta=0.9, seed=0)
    sc.sample_witnesses(net, witness_scale=1.0 / c["d_in"] ** 0.5 * 3, seed=0)
    x = torch.rand(c["N"], c["T"], c["d_in"], generator=torch.Generator().manual_seed(0))
    forward = _prepare(sc, net, c, impl)
    forward(x[:2, :2])  # warm-up
    _reset_peak()
    base = _status_mb("VmRSS")
    seconds = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        size_mb, check = forward(x)
        seconds.append(time.perf_counter() - t0)
    seconds = min(seconds)
    peak = _status_mb("VmHWM") - base
    return dict(case=case, impl=impl, seconds=seconds, peak_extra_mb=peak, dict_mb=size_mb, check=check)


def _prepare(sc, net, c: dict, impl: str):
    """A function x -> (features size in MB, spike count) for one implementation (set-up untimed)."""
    import torch

    if impl == "gemm":  # the dense products alone, all rows at once: a floor for any implementation
        rows = c["N"] * c["T"]
        K = net.branches
        ins = [torch.rand(rows, w.shape[-2]) if i == 0 else torch.rand(K, rows, w.shape[-2]).round()
               for i, w in enumerate(net.hidden)]

        @torch.no_grad()
        def forward(x):
            if x.shape[0] == c["N"]:
                for i, (h, w) in enumerate(zip(ins, net.hidden)):
                    _ = h @ w if i == 0 else torch.bmm(h, w)
            return 0.0, 0
        return forward

    if impl == "spikecvx":
        def forward(x):
            D = sc.spike_dictionary(net, x)
            return D.matrix.nbytes / 2**20, int(D.matrix.sum())
        return forward

    import snntorch as snn

    layers = []
    with torch.no_grad():
        for i, w in enumerate(net.hidden):
            branch_ws = [w] if i == 0 else list(w)  # snnTorch: one Linear per branch
            layers.append([torch.nn.Linear(bw.shape[0], bw.shape[1], bias=False) for bw in branch_ws])
            for lin, bw in zip(layers[-1], branch_ws):
                lin.weight.data = bw.T.contiguous()
    lifs = [snn.Leaky(beta=0.9) for _ in layers]

    @torch.no_grad()
    def forward(x):
        outs = []
        for a in range(0, x.shape[0], c["batch"]):
            xb = x[a : a + c["batch"]]
            mems = [None] * len(layers)
            feats = []
            for t in range(x.shape[1]):
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
        return out.numel() / 2**20, int(out.sum())
    return forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--one", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--rounds", type=int, default=3, help="processes per implementation, interleaved")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    print(f"{'case':20s} {'spikecvx s':>10s} {'snntorch s':>10s} {'speed-up':>8s} {'GEMM s':>7s} "
          f"{'dict MB':>8s} {'peak extra MB':>13s} {'peak/dict':>9s}")
    for case in args.cases:
        runs = {"spikecvx": [], "snntorch": [], "gemm": []}
        for _ in range(args.rounds):  # interleaved, so slow spells of a shared machine hit both
            for impl in runs:
                out = subprocess.run([sys.executable, __file__, "--one", case, impl], check=True,
                                     capture_output=True, text=True).stdout
                runs[impl].append(json.loads(out.strip().splitlines()[-1]))
        a, b, g = ({**r[0], "seconds": min(x["seconds"] for x in r),
                    "peak_extra_mb": max(x["peak_extra_mb"] for x in r)} for r in runs.values())
        same = "same spikes" if a["check"] == b["check"] else f"SPIKE COUNTS DIFFER {a['check']} {b['check']}"
        speed, mem = b["seconds"] / a["seconds"], a["peak_extra_mb"] / a["dict_mb"]
        print(f"{case:20s} {a['seconds']:10.2f} {b['seconds']:10.2f} {speed:7.1f}x {g['seconds']:7.2f} "
              f"{a['dict_mb']:8.1f} {a['peak_extra_mb']:13.1f} {mem:9.2f}  {same}")


if __name__ == "__main__":
    main()
