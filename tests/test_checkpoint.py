"""Network checkpoints: exact round trips, and a ValueError naming the file for every bad file."""

import io
import os

import pytest
import torch

from spikecvx import ParallelSNN
from spikecvx.interop import load_network, save_network


def _net(**kw):
    args = dict(d_in=3, n_out=2, layers=3, branches=2, width=8, last_width=6, seed=0, readout_bias=0.25)
    return ParallelSNN(**(args | kw))


def _blob(path):
    return torch.load(path, weights_only=True)


def _write(path, blob):
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_is_exact(tmp_path, dtype):
    net = _net(dtype=dtype, readout_at="every")
    with torch.no_grad():
        net.readout_weight.normal_()
    back, meta = load_network(save_network(net, tmp_path / "net.pt", metadata={"note": "x"}))
    assert meta == {"note": "x"} and back.config() == net.config() and back.dtype == dtype
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))
    x = torch.randn(4, 5, 3)
    assert torch.equal(back(x), net(x))
    assert load_network(tmp_path / "net.pt", device="cpu")[0].device.type == "cpu"
    with pytest.raises(ValueError, match="device 'nowhere'"):
        load_network(tmp_path / "net.pt", device="nowhere")


def _tampered(blob):
    """(description, change to a good checkpoint's dictionary, text the error must contain)."""
    def drop(key):
        return lambda b: {k: v for k, v in b.items() if k != key}

    def config(**kw):
        return lambda b: b | {"config": b["config"] | kw}

    def state(name, value):
        return lambda b: b | {"state": b["state"] | {name: value}}

    return [
        ("no version", drop("version"), "version"),
        ("string version", lambda b: b | {"version": "1"}, "version"),
        ("zero version", lambda b: b | {"version": 0}, "version"),
        ("newer version", lambda b: b | {"version": 99}, "newer"),
        ("no format", drop("format"), "not a spikecvx network checkpoint"),
        ("other format", lambda b: b | {"format": "other"}, "not a spikecvx network checkpoint"),
        ("not a dictionary", lambda b: [1, 2, 3], "not a spikecvx network checkpoint"),
        ("no config", drop("config"), "config"),
        ("no state", drop("state"), "state"),
        ("unknown config key", config(colour="red"), "colour"),
        ("missing config key", lambda b: b | {"config": {k: v for k, v in b["config"].items()
                                                         if k != "beta"}}, "beta"),
        ("config not a dict", lambda b: b | {"config": [1]}, "config"),
        ("wrong type", config(layers="3"), "layers"),
        ("negative width", config(width=-8), "width"),
        ("nan readout bias", config(readout_bias=float("nan")), "readout_bias"),
        ("unknown reset", config(reset="never"), "reset"),
        ("bad dtype", lambda b: b | {"dtype": "int8"}, "dtype"),
        ("config changed under the weights", config(last_width=8), "must have shape"),
        ("state of the wrong shape", state("readout_weight", torch.zeros(5, 2)), "readout_weight"),
        ("state not a tensor", state("readout_weight", [0.0]), "readout_weight"),
        ("missing state tensor", lambda b: b | {"state": {}}, "state"),
        ("extra state tensor", state("extra", torch.zeros(1)), "extra"),
        ("nan weight", state("hidden.0", torch.full((3, 8), float("nan"))), "hidden.0"),
        ("integer weight", state("hidden.0", torch.zeros(3, 8, dtype=torch.int64)), "hidden.0"),
        ("metadata not a dict", lambda b: b | {"metadata": 3}, "metadata"),
    ]


def test_tampered_checkpoints_name_the_file(tmp_path):
    good = save_network(_net(), tmp_path / "good.pt")
    load_network(good)
    for i, (what, change, text) in enumerate(_tampered(_blob(good))):
        path = _write(tmp_path / f"bad{i}.pt", change(_blob(good)))
        with pytest.raises(ValueError) as err:
            load_network(path)
        msg = str(err.value)
        assert str(path) in msg and text in msg, (what, msg)
        assert "weights_only" not in msg


def test_unreadable_files_name_the_file(tmp_path):
    good = save_network(_net(), tmp_path / "good.pt").read_bytes()
    cases = {
        "empty.pt": b"",
        "truncated.pt": good[: len(good) // 2],
        "head.pt": good[:40],
        "random.pt": os.urandom(4096),
        "text.pt": b"not a checkpoint\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError) as err:
            load_network(path)
        msg = str(err.value)
        assert str(path) in msg and "weights_only" not in msg, (name, msg)
    # a pickle of an arbitrary object is refused without running it (weights_only loading)
    path = tmp_path / "object.pt"
    torch.save({"format": "spikecvx.ParallelSNN", "obj": io.BytesIO()}, path)
    with pytest.raises(ValueError, match="not a readable spikecvx network checkpoint"):
        load_network(path)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_network(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path)  # a directory is not a checkpoint file


def test_files_without_the_recurrent_key_load_as_feed_forward(tmp_path):
    net = _net()
    blob = _blob(save_network(net, tmp_path / "net.pt"))
    assert "recurrent" not in blob["config"]  # feed-forward files are written without the key
    loaded, _ = load_network(tmp_path / "net.pt")
    assert not loaded.recurrent
    x = torch.rand(4, 5, 3)
    assert torch.equal(loaded(x), net(x))
