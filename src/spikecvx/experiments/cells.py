"""One experiment cell per (task, method, seed, parameters): data, training, evaluation.

``run_cell`` takes the cell dict, gets the data, heads and evaluation from the task's
``TaskSpec`` (``spikecvx.tasks.TASKS``) and returns a JSON-serialisable result with a
``headline`` score (the metric the paper reports, in [0, 1]) and everything needed for the
report: chance level, test metrics, chosen hyper-parameters and the certificates of the solves.
"""

from __future__ import annotations

from ..tasks import TASKS
from ..train import Head, fine_tune, fit_cvx, fit_sg, fit_sg_cvx
from .options import check_cell

# The five stages of the addition protocol are the methods sg (SG pretrain), sg-cvx, sg-sg (SG
# fine-tune from SG), cvx and cvx-sg. Each cell retrains its SG / CVX start with the same seed, so
# the stages share identical starting networks without passing state between cells.
METHODS = ("cvx", "sg", "sg-cvx", "cvx-sg", "sg-sg")


def _certificates(report: dict) -> dict:
    """Per-head certificate summary of a CVX / SG-CVX report (empty for SG)."""
    heads = report.get("heads") or {}
    return {name: dict(h["certificate"], val_acc=h["val_acc"]) for name, h in heads.items()}


def _slim(report: dict) -> dict:
    keep = ("method", "chosen", "grid", "val_score", "dictionary", "neurons_kept", "lr", "val_loss",
            "time_total", "time_dictionary")
    out = {k: report[k] for k in keep if k in report}
    if "heads" in report:
        out["paths"] = {name: h["path"] for name, h in report["heads"].items()}
    return out


def _train(method: str, Xtr, ytr, Xva, yva, Xft, yft, Xfv, yfv, net_kw, heads, cell, augment=None):
    """Train with ``method``; the hybrids fine-tune on the disjoint split (Xft, yft)/(Xfv, yfv).

    ``augment`` transforms the training mini-batches of every SG stage (see ``train_sg``)."""
    seed = cell["seed"]
    cvx_kw = dict(n_regs=cell.get("n_regs", 8), min_ratio=cell.get("min_ratio", 1e-3),
                  grid=cell.get("grid"), witness_scale=cell.get("witness_scale", 1.0),
                  tol=cell.get("tol", 1e-6))
    sg_kw = dict(epochs=cell.get("epochs", 100), lrs=tuple(cell.get("lrs", (1e-3, 3e-3, 1e-2))),
                 batch_size=cell.get("batch_size"), weight_decay=cell.get("weight_decay", 0.0),
                 augment=augment)
    if method == "cvx":
        return fit_cvx(Xtr, ytr, Xva, yva, net_kw, heads=heads, seed=seed, **cvx_kw)
    if method == "sg":
        return fit_sg(Xtr, ytr, Xva, yva, net_kw, heads=heads, seed=seed, **sg_kw)
    if method == "sg-cvx":
        cvx_kw.pop("grid")
        return fit_sg_cvx(Xtr, ytr, Xva, yva, net_kw, heads=heads, seed=seed, sg_kwargs=sg_kw, **cvx_kw)
    if method == "cvx-sg":
        net, rep = fit_cvx(Xtr, ytr, Xva, yva, net_kw, heads=heads, seed=seed, **cvx_kw)
        sg_kw["lrs"] = tuple(cell.get("ft_lrs", (1e-4, 1e-3)))
        tuned, ft = fine_tune(net, Xft, yft, Xfv, yfv, heads=heads, seed=seed, **sg_kw)
        return tuned, dict(rep, method="cvx-sg", fine_tune=_slim(ft))
    if method == "sg-sg":
        net, rep = fit_sg(Xtr, ytr, Xva, yva, net_kw, heads=heads, seed=seed, **sg_kw)
        sg_kw["lrs"] = tuple(cell.get("ft_lrs", (1e-4, 1e-3)))
        tuned, ft = fine_tune(net, Xft, yft, Xfv, yfv, heads=heads, seed=seed, **sg_kw)
        return tuned, dict(rep, method="sg-sg", fine_tune=_slim(ft))
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def run_cell(cell: dict, device: str | None = None) -> dict:
    """Train and evaluate one cell; ``device`` places the networks (not part of the cell's key)."""
    check_cell(cell, METHODS)
    if device is not None:
        cell = dict(cell, net=dict(cell["net"], device=device))
    spec = TASKS[cell["task"]]
    data = spec.splits(cell)
    net_kw = dict(cell["net"], readout=cell["net"].get("readout", spec.readout), readout_at=spec.readout_at)
    heads = [Head(*h) for h in spec.heads(cell)]
    (Xtr, ytr), (Xva, yva), (Xft, yft), (Xfv, yfv) = data.train, data.val, data.tune, data.tune_val
    net, rep = _train(cell["method"], Xtr, ytr, Xva, yva, Xft, yft, Xfv, yfv, net_kw, heads, cell,
                      spec.augment(cell))
    return dict(spec.evaluate(net, data, cell), chance=spec.chance(cell), certificates=_certificates(rep),
                report=_slim(rep))
