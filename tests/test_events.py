"""Event data to frames, and the SHD / N-MNIST readers, on synthetic events only."""

import numpy as np
import pytest

from spikecvx.tasks.events import (
    NMNIST_SENSOR,
    batch_events_to_frames,
    events_to_frames,
    load_nmnist,
    load_shd,
    read_nmnist_bin,
)

DT2 = [("t", np.int64), ("x", np.int64), ("y", np.int64), ("p", np.int64)]
DT1 = [("t", np.int64), ("x", np.int64), ("p", np.int64)]


def _random_events(rng, n, sensor, two_d=True, t_max=10_000):
    ev = np.zeros(n, dtype=DT2 if two_d else DT1)
    ev["t"] = np.sort(rng.integers(0, t_max, n))
    ev["x"] = rng.integers(0, sensor[0], n)
    if two_d:
        ev["y"] = rng.integers(0, sensor[1], n)
    ev["p"] = rng.integers(0, sensor[2], n)
    return ev


def _tonic_reference(ev, sensor, n_bins):
    """tonic's ToFrame(n_time_bins) written out: slice by searchsorted on time, count per (p, y, x)."""
    W, H, P = sensor
    t = ev["t"]
    window = (t[-1] - t[0]) // n_bins
    starts = np.arange(n_bins) * window + t[0]
    lo, hi = np.searchsorted(t, starts), np.searchsorted(t, starts + window)
    frames = np.zeros((n_bins, P, H, W), dtype=np.int64)
    for i in range(n_bins):
        s = ev[lo[i]:hi[i]]
        y = s["y"] if "y" in ev.dtype.names else np.zeros(len(s), dtype=int)
        p = s["p"] if P > 1 else np.zeros(len(s), dtype=int)
        np.add.at(frames, (i, p, y, s["x"]), 1)
    return (frames.reshape(n_bins, -1) > 0).astype(np.uint8)


@pytest.mark.parametrize("sensor, two_d", [((5, 4, 2), True), ((7, 1, 1), False), ((6, 1, 2), False)])
@pytest.mark.parametrize("n_bins", [1, 3, 7])
def test_frames_match_tonic_rule(sensor, two_d, n_bins):
    rng = np.random.default_rng(n_bins)
    ev = _random_events(rng, 300, sensor, two_d, t_max=997)
    frames = events_to_frames(ev, sensor, n_bins)
    assert frames.shape == (n_bins, int(np.prod(sensor))) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, _tonic_reference(ev, sensor, n_bins))


def test_frames_by_hand():
    ev = np.zeros(5, dtype=DT2)
    ev["t"] = [0, 4, 5, 9, 10]  # duration 10, 2 bins of 5: [0, 5) and [5, 10); t = 10 is in no bin
    ev["x"] = [1, 1, 0, 2, 2]
    ev["y"] = [0, 0, 1, 1, 1]
    ev["p"] = [0, 0, 1, 0, 1]
    f = events_to_frames(ev, (3, 2, 2), 2)
    expected = np.zeros((2, 12), dtype=np.uint8)
    expected[0, 1] = 1  # two events on (p0, y0, x1): the count clips to 1
    expected[1, 6 + 3 + 0] = 1  # p1, y1, x0
    expected[1, 3 + 2] = 1  # p0, y1, x2
    np.testing.assert_array_equal(f, expected)
    g = events_to_frames(ev, (3, 2, 2), 2, t_start=0, t_end=12)  # fixed window: bins [0, 6), [6, 12)
    assert g[1, 6 + 3 + 2] == 1 and g[0, 6 + 3 + 0] == 1 and g.sum() == 4


def test_batch_and_empty():
    rng = np.random.default_rng(0)
    recs = [_random_events(rng, 50, (4, 4, 2)) for _ in range(3)]
    X = batch_events_to_frames(recs, (4, 4, 2), 5)
    assert X.shape == (3, 5, 32)
    for x, ev in zip(X, recs):
        np.testing.assert_array_equal(x, events_to_frames(ev, (4, 4, 2), 5))
    assert not events_to_frames(np.zeros(0, dtype=DT2), (4, 4, 2), 5).any()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(events=[(1, 2, 3)]), TypeError, "events"),
    (dict(events=np.zeros(3, dtype=[("t", int), ("x", int)])), ValueError, "'p'"),
    (dict(sensor_size=(4, 4)), ValueError, "sensor_size"),
    (dict(n_time_bins=0), ValueError, "n_time_bins"),
    (dict(x_value=9), ValueError, "'x' must lie in"),
    (dict(t_start=5, t_end=5), ValueError, "t_end"),
])
def test_bad_input(kwargs, exc, match):
    ev = np.zeros(3, dtype=DT2)
    ev["t"] = [0, 50, 100]
    if "x_value" in kwargs:
        ev["x"][1] = kwargs.pop("x_value")
    args = dict(events=ev, sensor_size=(4, 4, 2), n_time_bins=2) | kwargs
    with pytest.raises(exc, match=match):
        events_to_frames(**args)


def test_too_short_recording_refused():
    ev = np.zeros(2, dtype=DT1)
    ev["t"] = [0, 3]
    with pytest.raises(ValueError, match="n_time_bins=5"):
        events_to_frames(ev, (2, 1, 1), 5)


# ---------------------------------------------------------------------------- N-MNIST
def _encode_nmnist(events, wrap_before=()):
    """The 5-byte N-MNIST records of ``events`` (timestamps < 2**23), with wrap markers inserted."""
    out = bytearray()
    for i, (t, x, y, p) in enumerate(zip(events["t"], events["x"], events["y"], events["p"])):
        if i in wrap_before:
            out += bytes([0, 240, 0, 0, 0])
        out += bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 255, t & 255])
    return bytes(out)


def test_read_nmnist_bin(tmp_path):
    ev = np.zeros(4, dtype=DT2)
    ev["t"], ev["x"] = [5, 70_000, 8_000_000, 100], [0, 33, 17, 2]
    ev["y"], ev["p"] = [0, 1, 33, 30], [1, 0, 1, 0]
    path = tmp_path / "a.bin"
    path.write_bytes(_encode_nmnist(ev, wrap_before=(3,)))
    back = read_nmnist_bin(path)
    expected = ev.copy()
    expected["t"][3] += 2 ** 13  # after one wrap marker
    for f in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(back[f], expected[f])
    (tmp_path / "bad.bin").write_bytes(b"1234")
    with pytest.raises(ValueError, match="multiple of 5"):
        read_nmnist_bin(tmp_path / "bad.bin")


def test_load_nmnist(tmp_path):
    rng = np.random.default_rng(3)
    recs = {}
    for d in range(10):
        (tmp_path / "Test" / str(d)).mkdir(parents=True)
        for k in range(2):
            ev = _random_events(rng, 40, NMNIST_SENSOR, t_max=300_000)
            (tmp_path / "Test" / str(d) / f"{k:05d}.bin").write_bytes(_encode_nmnist(ev))
            recs[(d, k)] = ev
    X, y = load_nmnist(tmp_path, "test", 6)
    assert X.shape == (20, 6, 2312) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 2))
    np.testing.assert_array_equal(X[5], _tonic_reference(recs[(2, 1)], NMNIST_SENSOR, 6))
    X1, y1 = load_nmnist(tmp_path, "test", 6, limit=1)
    np.testing.assert_array_equal(X1, X[::2])
    with pytest.raises(FileNotFoundError, match="Train.zip"):
        load_nmnist(tmp_path, "train", 6)
    with pytest.raises(FileNotFoundError, match="garrickorchard"):
        load_nmnist(tmp_path / "nothing", "test", 6)
    with pytest.raises(ValueError, match="split"):
        load_nmnist(tmp_path, "val", 6)


# ---------------------------------------------------------------------------- SHD
def test_load_shd(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    n = 4
    times = [np.sort(rng.uniform(0, 0.8, 60)) for _ in range(n)]
    units = [rng.integers(0, 700, 60).astype(np.uint16) for _ in range(n)]
    labels = rng.integers(0, 20, n).astype(np.uint16)
    with h5py.File(tmp_path / "shd_train.h5", "w") as f:
        sp = f.create_group("spikes")
        for name, rows, dt in (("times", times, np.float64), ("units", units, np.uint16)):
            ds = sp.create_dataset(name, (n,), dtype=h5py.vlen_dtype(dt))
            for i, row in enumerate(rows):
                ds[i] = row
        f.create_dataset("labels", data=labels)
    X, y = load_shd(tmp_path, "train", 10)
    assert X.shape == (n, 10, 700) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, labels)
    for i in range(n):
        ev = np.zeros(60, dtype=DT1)
        ev["t"] = (times[i] * 1e6).astype(np.int64)
        ev["x"] = units[i]
        np.testing.assert_array_equal(X[i], _tonic_reference(ev, (700, 1, 1), 10))
    Xw, _ = load_shd(tmp_path, "train", 8, limit=2, t_start=0, t_end=800_000)
    assert Xw.shape == (2, 8, 700)
    assert Xw[0].sum() == len({(int(t * 1e6) // 100_000, u) for t, u in zip(times[0], units[0])})
    with pytest.raises(FileNotFoundError, match="shd_test.h5"):
        load_shd(tmp_path, "test", 10)


def test_load_shd_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="zenkelab"):
        load_shd(tmp_path / "absent", "train", 10)
