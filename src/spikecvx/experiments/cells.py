"""One experiment cell per (task, method, seed, parameters): data, training, evaluation.

Each ``run_*`` function takes the cell dict and returns a JSON-serialisable result with a
``headline`` score (the metric the paper reports, in [0, 1]) and everything needed for the
report: chance level, test metrics, chosen hyper-parameters and the certificates of the solves.
"""

from __future__ import annotations

import numpy as np
import torch

from ..tasks import (
    addition,
    addition_metrics,
    dfa_dataset,
    first_last_xor,
    mnist_shift_augment,
    random_dfa,
    rollout,
    sequential_mnist,
)
from ..tasks.addition import carry_classes
from ..train import METHODS as TRAIN_METHODS
from ..train import FitReport, Head, get_method

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
    if report.fine_tune is not None:
        out["fine_tune"] = _slim(report.fine_tune)
    return out


def _train(method: str, Xtr, ytr, Xva, yva, Xft, yft, Xfv, yfv, net_kw, heads, cell, augment=None):
    """Train with ``method``; the hybrids fine-tune on the disjoint split (Xft, yft)/(Xfv, yfv).

    The cell supplies any of the method's options (``METHODS[method].options``); the others keep
    their defaults. ``augment`` transforms the training mini-batches of every SG stage."""
    m = get_method(method)
    options = {k: cell[k] for k in m.options if k in cell}
    return m.fit(Xtr, ytr, Xva, yva, net_kw, heads, seed=cell["seed"], fine_tune_split=(Xft, yft, Xfv, yfv),
                 augment=augment, **options)


def _predict_last(net, X) -> np.ndarray:
    with torch.no_grad():
        return net(torch.as_tensor(X)).cpu().numpy()


def run_xor(cell: dict) -> dict:
    T, s = cell["T"], cell["seed"]
    Xtr, ytr = first_last_xor(cell.get("n_train", 2000), T, seed=1000 * s + 1)
    Xva, yva = first_last_xor(cell.get("n_val", 2000), T, seed=1000 * s + 2)
    Xte, yte = first_last_xor(cell.get("n_test", 4000), T, seed=1000 * s + 3)
    net_kw = dict(cell["net"], readout="membrane", readout_at="last")
    # hybrids fine-tune on the validation split and validate on the training split
    net, rep = _train(cell["method"], Xtr, ytr, Xva, yva, Xva, yva, Xtr, ytr, net_kw,
                      [Head("y", 1, "hinge")], cell)
    acc = float(np.mean(np.where(_predict_last(net, Xte)[:, 0] >= 0, 1, -1) == yte))
    return dict(headline=acc, test_acc=acc, chance=0.5, certificates=_certificates(rep), report=_slim(rep))


def run_addition(cell: dict) -> dict:
    base, s = cell["base"], cell["seed"]
    n_digits = cell.get("n_digits", 5)
    split_a = [addition(cell.get("n_train", 2304), n_digits, base, 10 * s + 1),
               addition(cell.get("n_val", 512), n_digits, base, 10 * s + 2)]
    split_b = [addition(cell.get("n_train", 2304), n_digits, base, 10 * s + 3),
               addition(cell.get("n_val", 512), n_digits, base, 10 * s + 4)]
    lengths = cell.get("test_lengths", [5, 10, 25, 50])
    tests = {n: addition(cell.get("n_test", 1024), n, base, 10 * s + 5 + n) for n in lengths}
    heads = [Head("sum", base, cell.get("loss", "softmax")),
             Head("carry", carry_classes(base), cell.get("loss", "softmax"))]
    net_kw = dict(cell["net"], readout=cell["net"].get("readout", "spike"), readout_at="every")
    (A, Av), (B, Bv) = split_a, split_b
    net, rep = _train(cell["method"], A.X, [A.sum, A.carry], Av.X, [Av.sum, Av.carry],
                      B.X, [B.sum, B.carry], Bv.X, [Bv.sum, Bv.carry], net_kw, heads, cell)

    def step(x, state):
        with torch.no_grad():
            out, state = net.step(torch.as_tensor(x), state)
        out = out.cpu().numpy()
        return out[:, :base], out[:, base:], state

    metrics = {str(n): addition_metrics(*rollout(step, d), d) for n, d in tests.items()}
    with torch.no_grad():  # teacher-forced token accuracy on the ID test set, for diagnosis
        out = net(torch.as_tensor(tests[lengths[0]].X)).cpu().numpy()
    tf_sum = float(np.mean(np.argmax(out[..., :base], -1) == tests[lengths[0]].sum))
    return dict(headline=metrics[str(lengths[0])]["joint"], metrics=metrics, teacher_forced_sum=tf_sum,
                chance=1.0 / base, certificates=_certificates(rep), report=_slim(rep))


def run_mnist(cell: dict) -> dict:
    s = cell["seed"]
    data = sequential_mnist(cell["T"], cell.get("n_train", 6000), cell.get("n_val", 2000),
                            cell.get("n_test", 2000), seed=s)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = data["train"], data["val"], data["test"]
    net_kw = dict(cell["net"], readout=cell["net"].get("readout", "membrane"), readout_at="last")
    heads = [Head("digit", 10, cell.get("loss", "softmax"))]
    shift = cell.get("shift", 0)  # SG stages: random shifts of up to `shift` pixels
    augment = mnist_shift_augment(cell["T"], shift) if shift else None
    net, rep = _train(cell["method"], Xtr, ytr, Xva, yva, Xva, yva, Xtr, ytr, net_kw, heads, cell, augment)
    acc = float(np.mean(np.argmax(_predict_last(net, Xte), axis=1) == yte))
    return dict(headline=acc, test_acc=acc, chance=0.1, certificates=_certificates(rep), report=_slim(rep))


def run_dfa(cell: dict) -> dict:
    s = cell["seed"]
    L = cell.get("length", 9)
    for attempt in range(100):  # skip automata that (almost) never accept or never reject
        dfa = random_dfa(5, cell["symbols"], seed=100 + s + 1000 * attempt)
        rate = dfa.accepts(np.random.default_rng(s).integers(0, cell["symbols"], (2000, L))).mean()
        if 0.1 <= rate <= 0.9:
            break
    Xtr, ytr = dfa_dataset(dfa, cell.get("n_train", 5000), L, seed=10 * s + 1)
    Xva, yva = dfa_dataset(dfa, cell.get("n_val", 1000), L, seed=10 * s + 2)
    net_kw = dict(cell["net"], readout="membrane", readout_at="last")
    net, rep = _train(cell["method"], Xtr, ytr, Xva, yva, Xva, yva, Xtr, ytr, net_kw,
                      [Head("accept", 1, "hinge")], cell)
    accs = {}
    for mult in cell.get("ood", [1, 2, 5, 10]):
        Xte, yte = dfa_dataset(dfa, cell.get("n_test", 1000), L * mult, seed=10 * s + 3 + mult,
                               balanced=False)
        accs[str(mult)] = float(np.mean(np.where(_predict_last(net, Xte)[:, 0] >= 0, 1, -1) == yte))
    return dict(headline=accs["1"], test_acc=accs, chance=0.5, certificates=_certificates(rep),
                report=_slim(rep))


RUNNERS = {"xor": run_xor, "addition": run_addition, "mnist": run_mnist, "dfa": run_dfa}


def run_cell(cell: dict, device: str | None = None) -> dict:
    """Dispatch a cell to its task's runner; ``device`` places the networks (not part of the key)."""
    if cell.get("task") not in RUNNERS:
        raise ValueError(f"cell task must be one of {sorted(RUNNERS)}, got {cell.get('task')!r}")
    if cell.get("method") not in METHODS:
        raise ValueError(f"cell method must be one of {METHODS}, got {cell.get('method')!r}")
    if device is not None:
        cell = dict(cell, net=dict(cell["net"], device=device))
    return RUNNERS[cell["task"]](cell)
