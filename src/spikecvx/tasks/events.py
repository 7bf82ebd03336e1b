"""Event-camera and spiking-audio data as binary frames: (N, T, d) inputs for spikecvx networks.

Events are numpy structured arrays with fields ``t``, ``x``, ``p`` and, for 2-D sensors, ``y``
(the layout tonic uses). ``sensor_size`` is tonic's (W, H, P): width, height (1 for 1-D
sensors), polarities. A frame counts the events of one time bin per channel, clips the count to 1
and flattens the channels in tonic's frame order (P, H, W): channel = p * H * W + y * W + x.

Time bins follow tonic's ``ToFrame(n_time_bins=T)``: with t0 and t1 the earliest and latest
event times (the first and last of a time-sorted recording), every bin is w = (t1 - t0) // T
long (floor division) and bin i holds the events with t0 + i * w <= t < t0 + (i + 1) * w, so
events in the remainder after T whole bins fall in no bin.
Giving ``t_start`` / ``t_end`` instead fixes the window [t_start, t_end) split into T equal bins,
the same for every recording.

The loaders read a dataset folder the user downloaded; nothing is downloaded here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._validation import check_choice, check_int, check_real

SHD_SENSOR = (700, 1, 1)
NMNIST_SENSOR = (34, 34, 2)
SPLITS = ("train", "test")

SHD_HELP = ("SHD (Spiking Heidelberg Digits): download shd_train.h5.gz and shd_test.h5.gz from "
            "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/ and gunzip them into the "
            "data folder, so that it holds shd_train.h5 and shd_test.h5")
NMNIST_HELP = ("N-MNIST: download Train.zip and Test.zip from "
               "https://www.garrickorchard.com/datasets/n-mnist and unzip them into the data folder, "
               "so that it holds Train/<digit>/*.bin and "
               "Test/<digit>/*.bin for the digits 0-9")


def _check_sensor(sensor_size) -> tuple[int, int, int]:
    if not isinstance(sensor_size, (tuple, list)) or len(sensor_size) != 3:
        raise ValueError(f"sensor_size must be (width, height, polarities), got {sensor_size!r}")
    w, h, p = (check_int("sensor_size", s) for s in sensor_size)
    return w, h, p


def _check_events(events) -> None:
    names = getattr(getattr(events, "dtype", None), "names", None)
    if not isinstance(events, np.ndarray) or names is None or events.ndim != 1:
        raise TypeError("events must be a 1-D numpy structured array with fields t, x, p (and y for 2-D "
                        f"sensors), got {type(events).__name__}")
    missing = [f for f in ("t", "x", "p") if f not in names]
    if missing:
        raise ValueError(f"events lacks the fields {missing}; expected t, x, p (and y for 2-D sensors)")
    for f in ("t", "x", "y", "p"):
        if f in names and events.dtype[f].kind not in ("biuf"):
            raise TypeError(f"events field {f!r} must hold real numbers, got dtype {events.dtype[f]}")
    if events.dtype["t"].kind == "f" and events.size and not np.isfinite(events["t"]).all():
        raise ValueError("events field 't' contains NaN or inf values")


def _channels(events, sensor: tuple[int, int, int]) -> np.ndarray:
    """Flat channel index p * H * W + y * W + x of every event; ValueError for out-of-range ones."""
    W, H, P = sensor
    x = events["x"].astype(np.int64)
    has_y = "y" in events.dtype.names
    if not has_y and H != 1:
        raise ValueError(f"events have no 'y' field, so sensor_size must have height 1, got {sensor}")
    y = events["y"].astype(np.int64) if has_y else np.zeros_like(x)
    p = np.zeros_like(x) if P == 1 else events["p"].astype(np.int64)  # one polarity: all events in it
    for name, v, n in (("x", x, W), ("y", y, H), ("p", p, P)):
        if v.size and (v.min() < 0 or v.max() >= n):
            raise ValueError(f"events field {name!r} must lie in [0, {n}) for sensor_size {sensor}, "
                             f"got values in [{v.min()}, {v.max()}]")
    return (p * H + y) * W + x


def _bins(t: np.ndarray, n_bins: int, t_start, t_end) -> np.ndarray:
    """Time-bin index of every event; -1 for events in no bin."""
    if t_start is None and t_end is None:
        t0, t1 = t.min(), t.max()
        window = (t1 - t0) // n_bins
        if window <= 0:
            raise ValueError(f"the events span {t1 - t0} time units, fewer than n_time_bins={n_bins}: "
                             "tonic's rule would give empty bins; pass t_start/t_end or fewer bins")
        idx = ((t - t0) // window).astype(np.int64)
    else:
        t0 = check_real("t_start", t_start) if t_start is not None else float(t.min())
        t1 = check_real("t_end", t_end) if t_end is not None else float(t.max())
        if not t1 > t0:
            raise ValueError(f"t_end ({t1}) must be greater than t_start ({t0})")
        idx = np.floor((t.astype(np.float64) - t0) * n_bins / (t1 - t0)).astype(np.int64)
    idx[(idx < 0) | (idx >= n_bins)] = -1
    return idx


def events_to_frames(events: np.ndarray, sensor_size, n_time_bins: int, *, t_start=None,
                     t_end=None) -> np.ndarray:
    """Binary frames (n_time_bins, W * H * P) uint8 of one recording (binning: module docstring)."""
    _check_events(events)
    sensor = _check_sensor(sensor_size)
    n_bins = check_int("n_time_bins", n_time_bins)
    frames = np.zeros((n_bins, int(np.prod(sensor))), dtype=np.uint8)
    if events.size == 0:
        return frames
    chan = _channels(events, sensor)
    idx = _bins(events["t"], n_bins, t_start, t_end)
    keep = idx >= 0
    frames[idx[keep], chan[keep]] = 1
    return frames


def batch_events_to_frames(recordings, sensor_size, n_time_bins: int, *, t_start=None,
                           t_end=None) -> np.ndarray:
    """``events_to_frames`` of every recording, stacked: (N, n_time_bins, W * H * P) uint8."""
    recordings = list(recordings)
    if not recordings:
        raise ValueError("recordings must hold at least one event array")
    return np.stack([events_to_frames(ev, sensor_size, n_time_bins, t_start=t_start, t_end=t_end)
                     for ev in recordings])


# ---------------------------------------------------------------------------- SHD
def _check_dir(data_dir, help_text: str) -> Path:
    path = Path(data_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"data_dir {str(path)!r} is not a folder. {help_text}")
    return path


def _limit(limit) -> int | None:
    return None if limit is None else check_int("limit", limit)


def load_shd(data_dir, split: str, n_time_bins: int, *, limit: int | None = None, t_start=None,
             t_end=None) -> tuple[np.ndarray, np.ndarray]:
    """SHD from ``data_dir/shd_{split}.h5`` as (X (N, T, 700) uint8, y (N,) int64).

    Spike times (seconds in the file) become integer microseconds as in tonic; channels are the
    700 cochlea units. ``limit`` keeps the first recordings only. Needs h5py.
    """
    check_choice("split", split, SPLITS)
    n_bins = check_int("n_time_bins", n_time_bins)
    limit = _limit(limit)
    path = _check_dir(data_dir, SHD_HELP) / f"shd_{split}.h5"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} not found. {SHD_HELP}")
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading SHD needs h5py: pip install 'spikecvx[events]'") from exc
    dtype = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])
    with h5py.File(path, "r") as f:
        for key in ("spikes/times", "spikes/units", "labels"):
            if key not in f:
                raise ValueError(f"{str(path)!r} lacks the dataset {key!r}; is it an SHD file? {SHD_HELP}")
        times, units, labels = f["spikes/times"], f["spikes/units"], f["labels"]
        n = len(labels) if limit is None else min(limit, len(labels))
        X = np.zeros((n, n_bins, int(np.prod(SHD_SENSOR))), dtype=np.uint8)
        for i in range(n):
            ev = np.zeros(len(times[i]), dtype=dtype)
            ev["t"] = (np.asarray(times[i], dtype=np.float64) * 1e6).astype(np.int64)
            ev["x"] = units[i]
            X[i] = events_to_frames(ev, SHD_SENSOR, n_bins, t_start=t_start, t_end=t_end)
        y = np.asarray(labels[:n], dtype=np.int64)
    return X, y


# ---------------------------------------------------------------------------- N-MNIST
def read_nmnist_bin(path) -> np.ndarray:
    """Events of one N-MNIST .bin file: 5 bytes per event, big-endian bit fields
    x (8 bits), y (8), polarity (1), timestamp in microseconds (23). An event with y = 240 marks a
    timestamp wrap: 2**13 is added to every later timestamp (the dataset authors' reader does the
    same) and the marker itself is no event.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise ValueError(f"{str(path)!r} is {raw.size} bytes, not a multiple of 5: not an N-MNIST .bin file")
    rec = raw.reshape(-1, 5).astype(np.int64)
    x, y = rec[:, 0], rec[:, 1]
    p = rec[:, 2] >> 7
    t = ((rec[:, 2] & 127) << 16) | (rec[:, 3] << 8) | rec[:, 4]
    wrap = y == 240
    t = t + np.cumsum(wrap) * 2 ** 13
    keep = ~wrap
    ev = np.zeros(int(keep.sum()), dtype=[("t", np.int64), ("x", np.int64), ("y", np.int64), ("p", np.int64)])
    ev["t"], ev["x"], ev["y"], ev["p"] = t[keep], x[keep], y[keep], p[keep]
    return ev


def load_nmnist(data_dir, split: str, n_time_bins: int, *, limit: int | None = None, t_start=None,
                t_end=None) -> tuple[np.ndarray, np.ndarray]:
    """N-MNIST from ``data_dir/{Train,Test}/<digit>/*.bin`` as (X (N, T, 2312) uint8, y (N,) int64).

    Recordings are read digit by digit, files in name order; ``limit`` keeps the first ones of
    each digit. Channels are (polarity, y, x) of the 34 x 34 sensor.
    """
    check_choice("split", split, SPLITS)
    n_bins = check_int("n_time_bins", n_time_bins)
    limit = _limit(limit)
    root = _check_dir(data_dir, NMNIST_HELP) / split.capitalize()
    folders = [root / str(d) for d in range(10)]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise FileNotFoundError(f"N-MNIST folders not found: {missing}. {NMNIST_HELP}")
    X, y = [], []
    for digit, folder in enumerate(folders):
        files = sorted(folder.glob("*.bin"))
        if not files:
            raise FileNotFoundError(f"no .bin files in {str(folder)!r}. {NMNIST_HELP}")
        for path in files[:limit]:
            X.append(events_to_frames(read_nmnist_bin(path), NMNIST_SENSOR, n_bins,
                                      t_start=t_start, t_end=t_end))
            y.append(digit)
    return np.stack(X), np.asarray(y, dtype=np.int64)
