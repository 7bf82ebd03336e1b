"""Event datasets as benchmark tasks: Spiking Heidelberg Digits (SHD) and N-MNIST.

Both read a folder the user downloaded (cell key ``data_dir``, or ``--data-dir`` on the command
line); nothing is downloaded. Recordings become ``T`` binary frames (``events_to_frames``), the
label is read at the last step. The datasets ship a training and a test split only, so the
validation split is held out from the training recordings with a seeded permutation.
"""

from __future__ import annotations

import numpy as np

from .events import load_nmnist, load_shd
from .registry import Splits, TaskSpec, check_grid_int, predict_last, register

# n_train / n_test = 0 keep every recording; ``limit`` caps the recordings read per file
# (SHD) or per digit (N-MNIST), 0 for all, to try a task on part of the data.
KEYS = dict(data_dir="", n_train=0, n_val=1000, n_test=0, limit=0, loss="softmax")
SEED_OFFSETS = dict(val=7)  # permutation that holds out the validation recordings: seed 100 * s + 7


def _split(spec: TaskSpec, load, cell: dict) -> Splits:
    limit = spec.option(cell, "limit") or None
    data_dir = spec.option(cell, "data_dir")
    X, y = load(data_dir, "train", cell["T"], limit=limit)
    Xte, yte = load(data_dir, "test", cell["T"], limit=limit)
    n_val = spec.option(cell, "n_val")
    if n_val >= len(y):
        raise ValueError(f"n_val={n_val} leaves no training recordings ({len(y)} in the training split)")
    order = np.random.default_rng(100 * cell["seed"] + SEED_OFFSETS["val"]).permutation(len(y))
    val, train = order[:n_val], order[n_val:]
    if spec.option(cell, "n_train"):
        train = train[: spec.option(cell, "n_train")]
    if spec.option(cell, "n_test"):
        Xte, yte = Xte[: spec.option(cell, "n_test")], yte[: spec.option(cell, "n_test")]
    train_xy, val_xy = (X[train], y[train]), (X[val], y[val])
    # hybrids fine-tune on the validation split and validate on the training split
    return Splits(train=train_xy, val=val_xy, tune=val_xy, tune_val=train_xy, test=(Xte, yte))


def _evaluate(net, splits: Splits, cell: dict) -> dict:
    Xte, yte = splits.test
    acc = float(np.mean(np.argmax(predict_last(net, Xte), axis=1) == yte))
    return dict(headline=acc, test_acc=acc)


def _spec(name: str, title: str, classes: int, load, published: dict) -> TaskSpec:
    spec = None

    def heads(cell):
        return [("label", classes, spec.option(cell, "loss"))]

    spec = register(TaskSpec(
        name=name, title=title, metric="test accuracy %", grid_key="T",
        check_grid=check_grid_int("T", 1), cell_keys=KEYS, splits=lambda cell: _split(spec, load, cell),
        heads=heads, evaluate=_evaluate, chance=lambda cell: 1.0 / classes, published=published))
    return spec


SHD = _spec("shd", "Spiking Heidelberg Digits", 20, load_shd, published={
    "*": "DCLS delays 95.07; recurrent adaptive LIF about 91; dataset paper's recurrent SNN 83.2; "
           "feed-forward LIF about 75-80"})
NMNIST = _spec("nmnist", "N-MNIST", 10, load_nmnist, published={
    "*": "PLIF 99.6; ANN on binned frames 99.2"})
