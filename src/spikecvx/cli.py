"""The ``spikecvx`` command line: reproduce the paper's benchmarks, run a config, print a report.

A user error (a bad config, results folder or device) ends with one line
``spikecvx: error: ...`` on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EPILOG = """examples:
  spikecvx reproduce                       # quick preset: every task once, minutes on a laptop
  spikecvx reproduce --preset paper --seeds 0 1 2 --out runs/paper
  spikecvx reproduce --tasks xor mnist     # only some tasks
  spikecvx run my_grid.toml --out runs/mine
  spikecvx report runs/reproduce           # table (and plots) of a results folder
  spikecvx export model.pt --nir model.nir # a saved network as a NIR graph
  torchrun --nproc-per-node 4 -m spikecvx run my_grid.toml   # 4 ranks; rank 0 writes

Results go to OUT/results.jsonl, one line per finished cell; rerunning the same command
resumes and skips finished cells. OUT/report.md and PNG plots are rewritten at the end.
Under torchrun every cell's training rows are split among the ranks (validation and test rows
are every rank's); collectives time out after SPIKECVX_DIST_TIMEOUT seconds (default 300), and a
rank that fails stops the others."""


def _run(cells, args) -> int:
    from ._validation import check_device
    from .experiments import run_cell, run_cells, write_report
    from .experiments.runner import check_out

    check_device(args.device, "--device")
    comm = _init_distributed(args.device)
    extra = {} if comm is None else {"distributed": comm}

    def cell_runner(cell):
        return run_cell(cell, args.device, args.data_dir, **extra)

    if comm is not None and comm.rank != 0:  # the other ranks compute; rank 0 writes and reports
        run_cells(cells, cell_runner, args.out, progress=False, log=lambda _: None, comm=comm)
        return 0
    check_out(args.out)
    records = run_cells(cells, cell_runner, args.out, progress=not args.quiet, comm=comm)
    print()
    print(write_report(records, args.out, with_plots=not args.no_plots))
    print(f"\nresults: {Path(args.out) / 'results.jsonl'}   report: {Path(args.out) / 'report.md'}")
    return 0


def _init_distributed(device):
    """The communicator of a run under torchrun (WORLD_SIZE > 1), else None."""
    from .distributed import env_world_size, init_from_env

    if env_world_size() <= 1:
        return None
    return init_from_env(device)


def _rank_prefix() -> str:
    """'rank R: ' inside a multi-rank run, so each rank's error line says where it came from."""
    world, rank = os.environ.get("WORLD_SIZE", "1"), os.environ.get("RANK")
    return f"rank {rank}: " if rank is not None and world not in ("", "0", "1") else ""


def _close_distributed() -> None:
    """Leave the process group (if any): peers still waiting on this rank fail at once."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def reproduce(args) -> int:
    from .experiments import PRESETS, expand

    return _run(expand(PRESETS[args.preset], tasks=args.tasks, seeds=args.seeds), args)


def run(args) -> int:
    from .experiments import expand, load_config

    config = load_config(args.config)
    try:
        cells = expand(config, tasks=args.tasks, seeds=args.seeds)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{args.config}: {err}") from None
    return _run(cells, args)


def report(args) -> int:
    from .experiments import load_results, write_report

    records = load_results(args.out)
    if not records:
        print(f"no results in {args.out} (expected {Path(args.out) / 'results.jsonl'})", file=sys.stderr)
        return 1
    print(write_report(records, args.out, with_plots=not args.no_plots))
    return 0


def export(args) -> int:
    from .interop import load_network, save_nir

    net, _ = load_network(args.model)
    out = save_nir(net, args.nir, lossy=args.lossy)
    print(f"wrote {out}")
    return 0


def _common(p, default_out: str) -> None:
    from .tasks import TASKS

    p.add_argument("--tasks", nargs="+", choices=list(TASKS),
                   help="run only these tasks (default: all in the preset / config)")
    p.add_argument("--seeds", type=int, nargs="+", help="random seeds (default: the preset's)")
    p.add_argument("--out", default=default_out, help=f"results folder; a rerun resumes there "
                   f"(default: {default_out})")
    p.add_argument("--device", default=None, help="torch device for the networks, e.g. cuda "
                   "(default: cpu); the convex solves run on the CPU")
    p.add_argument("--data-dir", default=None, help="dataset folder of the event tasks (shd: "
                   "shd_train.h5 / shd_test.h5; nmnist: Train/ and Test/ folders); nothing is downloaded")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-plots", action="store_true", help="tables only, no PNG figures")
    _debug(p)


def _debug(p) -> None:
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")


def _version() -> str:
    from . import __version__

    return __version__


def main(argv=None) -> int:
    from .experiments import PRESETS

    ap = argparse.ArgumentParser(
        prog="spikecvx", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Train spiking neural networks to a certified global optimum (parameter "
                    "reconstruction, arXiv:2605.08022) and reproduce the paper's benchmarks.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = ap.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("reproduce", help="run the paper's benchmarks and print our numbers beside "
                        "the published ones", formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog=EPILOG)
    rp.add_argument("--preset", choices=sorted(PRESETS), default="quick",
                    help="smoke: seconds; quick (default): every task once, about 15 minutes on 2 "
                         "CPU cores; paper: the paper's full protocol (hours)")
    _common(rp, "runs/reproduce")
    rp.set_defaults(func=reproduce)
    rn = sub.add_parser("run", help="run the grid of a TOML config (see spikecvx.experiments.presets)")
    rn.add_argument("config", help="TOML file: one table per task, lists are crossed into a grid")
    _common(rn, "runs/config")
    rn.set_defaults(func=run)
    rr = sub.add_parser("report", help="print (and rewrite) the report of a results folder")
    rr.add_argument("out", help="results folder written by `spikecvx reproduce` or `spikecvx run`")
    rr.add_argument("--no-plots", action="store_true", help="tables only, no PNG figures")
    _debug(rr)
    rr.set_defaults(func=report)
    ex = sub.add_parser("export", help="write a saved network (save_network / SpikingClassifier.save) "
                        "in an exchange format")
    ex.add_argument("model", help="checkpoint file written by spikecvx")
    ex.add_argument("--nir", required=True, help="output NIR file (HDF5)")
    ex.add_argument("--lossy", action="store_true", help="export a network NIR cannot represent "
                    "exactly (subtractive reset, membrane readout) as its nearest NIR network, with a "
                    "warning")
    _debug(ex)
    ex.set_defaults(func=export)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as err:  # ImportError: an optional extra
        if args.debug:
            raise
        message = " ".join(str(err).split())  # one line, whatever the message holds
        print(f"spikecvx: error: {_rank_prefix()}{message}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from .distributed import DistributedError  # only a distributed run can raise it

        if args.debug or not isinstance(err, DistributedError):
            raise
        print(f"spikecvx: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    finally:
        _close_distributed()


if __name__ == "__main__":
    sys.exit(main())
