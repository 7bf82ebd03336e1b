"""One experiment cell per (task, method, seed, parameters): data, training, evaluation.

``run_cell`` takes the cell dict, gets the data, heads and evaluation from the task's
``TaskSpec`` (``spikecvx.tasks.TASKS``) and returns a JSON-serialisable result with a
``headline`` score (the metric the paper reports, in [0, 1]) and everything needed for the
report: chance level, test metrics, chosen hyper-parameters and the certificates of the solves.
"""

from __future__ import annotations

from ..tasks import TASKS
from ..train import METHODS as TRAIN_METHODS
from ..train import FitReport, Head, get_method
from .options import check_cell

# The five stages of the addition protocol are the methods sg (SG pretrain), sg-cvx, sg-sg (SG
# fine-tune from SG), cvx and cvx-sg. Each cell retrains its SG / CVX start with the same seed, so
# the stages share identical starting networks without passing state between cells.
METHODS = tuple(TRAIN_METHODS)


def _certificates(report: FitReport) -> dict:
    """Per-head certificate summary of a CVX / SG-CVX report (empty for SG)."""
    return {name: dict(h.certificate.to_dict(), val_acc=h.val_acc) for name, h in report.heads.items()}


def _slim(report: FitReport) -> dict:
    """The report as stored in results.jsonl: choices, scores, sizes, timings and paths."""
    out = {"method": report.method}
    if report.convex:
        out.update(chosen=report.chosen, grid=report.grid, val_score=report.val_score,
                   dictionary=report.dictionary.to_dict(), neurons_kept=report.neurons_kept)
    if report.sg is not None:
        out.update(lr=report.sg.lr, val_loss=report.sg.val_loss)
    out["time_total"] = report.time_total
    if report.time_dictionary is not None:
        out["time_dictionary"] = report.time_dictionary
    if report.convex:
        out["paths"] = {name: [p.to_dict() for p in h.path] for name, h in report.heads.items()}
    if report.searches:  # witness search: its rounds and the final statement, per head
        out["search"] = {name: s.to_dict() for name, s in report.searches.items()}
    if report.sg_stage is not None:
        out["sg_stage"] = _slim(report.sg_stage)
    if report.fine_tune is not None:
        out["fine_tune"] = _slim(report.fine_tune)
    return out


def _train(method: str, Xtr, ytr, Xva, yva, Xft, yft, Xfv, yfv, net_kw, heads, cell, augment=None,
           distributed=None):
    """Train with ``method``; the hybrids fine-tune on the disjoint split (Xft, yft)/(Xfv, yfv).

    The cell supplies any of the method's options (``METHODS[method].options``); the others keep
    their defaults. ``augment`` transforms the training mini-batches of every SG stage."""
    m = get_method(method)
    options = {k: cell[k] for k in m.options if k in cell}
    extra = {} if distributed is None else {"distributed": distributed}
    return m.fit(Xtr, ytr, Xva, yva, net_kw, heads, seed=cell["seed"], fine_tune_split=(Xft, yft, Xfv, yfv),
                 augment=augment, **options, **extra)


def _shard(X, y, comm):
    """This rank's contiguous share of the rows of (X, y) (y: one array, or one per head)."""
    from ..distributed import shard_range

    a, b = shard_range(len(X), comm.rank, comm.world_size)
    ys = [v[a:b] for v in y] if isinstance(y, (list, tuple)) else y[a:b]
    return X[a:b], ys


def run_cell(cell: dict, device: str | None = None, data_dir: str | None = None, distributed=None) -> dict:
    """Train and evaluate one cell.

    ``device`` places the networks; ``data_dir`` is the dataset folder of tasks that read one
    (used when the cell names none). Neither is part of the cell's key in a results file.
    ``distributed`` (a ``spikecvx.distributed.Communicator``): the training rows (and those of
    the fine-tuning split) are cut into one contiguous shard per rank and the method trains
    distributed; validation and test rows are every rank's, so every rank returns the same result.
    """
    check_cell(cell, METHODS)
    if device is not None:
        cell = dict(cell, net=dict(cell["net"], device=device))
    spec = TASKS[cell["task"]]
    if data_dir is not None and "data_dir" in spec.cell_keys and not cell.get("data_dir"):
        cell = dict(cell, data_dir=str(data_dir))
    data = spec.splits(cell)
    net_kw = dict(cell["net"], readout=cell["net"].get("readout", spec.readout), readout_at=spec.readout_at)
    heads = [Head(*h) for h in spec.heads(cell)]
    (Xtr, ytr), (Xva, yva), (Xft, yft), (Xfv, yfv) = data.train, data.val, data.tune, data.tune_val
    if distributed is not None:
        (Xtr, ytr), (Xft, yft) = _shard(Xtr, ytr, distributed), _shard(Xft, yft, distributed)
    net, rep = _train(cell["method"], Xtr, ytr, Xva, yva, Xft, yft, Xfv, yfv, net_kw, heads, cell,
                      spec.augment(cell), distributed)
    # only a certified method's returned readout is the convex solution its certificates describe
    certificates = _certificates(rep) if get_method(cell["method"]).certified else {}
    return dict(spec.evaluate(net, data, cell), chance=spec.chance(cell), certificates=certificates,
                report=_slim(rep))
