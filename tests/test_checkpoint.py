"""Checkpoints: atomic writes, safe loading (no code from a pickle ever runs), rebuilding the model."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import vidrcnn.engine.checkpoint as ckpt_mod
from vidrcnn.engine.checkpoint import DEFAULTS_VERSION, load_checkpoint, model_from_checkpoint, save_checkpoint
from vidrcnn.errors import CheckpointError
from vidrcnn.models import get_model
from vidrcnn.models.backbones import STEM_FRAMES


def _state(model_name="frame_avg_s", num_classes=3, kwargs=None):
    torch.manual_seed(0)
    kwargs = kwargs or {}
    model = get_model(model_name, num_classes=num_classes, **kwargs)
    return model, {
        "model": model.state_dict(), "optimizer": {}, "scheduler": {"step": 3}, "scaler": {}, "epoch": 2,
        "config": {"model": {"name": model_name, "kwargs": kwargs}}, "model_name": model_name,
        "num_classes": num_classes, "classes": ["a", "b", "c"][:num_classes],
        "preprocess": {"num_frames": 4, "stride": 1, "sampling": "dense", "size": 32, "resize": None,
                       "mean": [0.4, 0.4, 0.4], "std": [0.2, 0.2, 0.2]},
        "best_top1": 0.5, "metrics": {"val_top1": 0.5}, "rng": {"torch": torch.get_rng_state()},
    }


def test_round_trip_rebuilds_the_model_with_its_kwargs(tmp_path):
    model, state = _state(kwargs={"dropout": 0.3})
    path = save_checkpoint(tmp_path / "run" / "ckpt.pt", state)
    loaded = load_checkpoint(path)
    assert loaded["classes"] == ["a", "b", "c"] and loaded["preprocess"]["size"] == 32
    rebuilt = model_from_checkpoint(loaded)
    assert not rebuilt.training
    assert type(rebuilt) is type(model)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model.eval()(x))
    assert sorted(os.listdir(tmp_path / "run")) == ["ckpt.pt"]  # no temporary file left behind


def test_ddp_prefix_is_stripped(tmp_path):
    model, state = _state()
    state["model"] = {f"module.{k}": v for k, v in state["model"].items()}
    rebuilt = model_from_checkpoint(state)
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values()))


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    _, state = _state()
    save_checkpoint(path, state)
    before = path.read_bytes()

    def dying_save(obj, f):  # writes half a file, then the process "dies"
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {**state, "epoch": 3})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]


class _Payload:
    """Unpickling this calls os.system (or exec) to create a marker file: a checkpoint that runs code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_carrying_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "evil.pt"
    _, state = _state()
    state["metrics"] = _Payload(marker)
    if writer == "torch.save":
        torch.save(state, evil)
    else:
        with open(evil, "wb") as f:
            pickle.dump(state, f, protocol=2)
    # Sanity: the payload is live, i.e. a plain unpickle of the inner object would run it.
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(evil)
    assert str(evil) in str(err.value) and "refused" in str(err.value)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(marker)))  # proves the same payload does write the marker when unpickled
    assert marker.exists()


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00\x01 definitely not a checkpoint")
    with pytest.raises(CheckpointError, match=f"{junk}: corrupt or not a checkpoint") as info:
        load_checkpoint(junk)
    assert "documentation" not in str(info.value) and "weights_only" not in str(info.value)  # the cause, not advice
    text = tmp_path / "notes.pt"
    text.write_text("these are notes, not weights\n")
    with pytest.raises(CheckpointError, match=r"corrupt or not a checkpoint \(\w"):
        load_checkpoint(text)
    _, state = _state()
    truncated = tmp_path / "truncated.pt"
    save_checkpoint(truncated, state)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated)
    tensor_only = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tensor_only)


def test_incompatible_checkpoints_are_checkpoint_errors():
    _, state = _state()
    with pytest.raises(CheckpointError, match="missing model_name"):
        model_from_checkpoint({k: v for k, v in state.items() if k != "model_name"})
    with pytest.raises(CheckpointError, match="unknown model"):
        model_from_checkpoint({**state, "model_name": "no_such_model"})
    with pytest.raises(CheckpointError, match="weights do not fit"):
        model_from_checkpoint({**state, "num_classes": 5})


def test_an_rcn_checkpoint_from_before_the_new_defaults_still_loads():
    torch.manual_seed(0)
    old = get_model("rcn_gru_s", num_classes=4, preact_norm=None, residual=False, stem_frames=1,  # before
                    activation="tanh", stem_downsample="stride").eval()
    ckpt = {"model": old.state_dict(), "model_name": "rcn_gru_s", "num_classes": 4, "config": {"model": {"kwargs": {}}}}
    rebuilt = model_from_checkpoint(ckpt)
    x = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), old(x))
    new = get_model("rcn_gru_s", num_classes=4).eval()  # today's default has input BatchNorm
    today = {**ckpt, "model": new.state_dict(), "defaults_version": DEFAULTS_VERSION}
    assert type(model_from_checkpoint(today).layers[0].cell.input_norm).__name__ == "BatchNorm2d"


def test_an_rcn_checkpoint_with_the_per_frame_stem_of_before_still_loads():
    torch.manual_seed(0)
    before = get_model("rcn_lstm_s", num_classes=4, stem_frames=1, stem_downsample="stride",  # 2026-12-01
                       activation="tanh", coupled=False).eval()
    ckpt = {"model": before.state_dict(), "model_name": "rcn_lstm_s", "num_classes": 4,
            "config": {"model": {"kwargs": {}}}}
    x = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model_from_checkpoint(ckpt)(x), before(x))
    today = get_model("rcn_lstm_s", num_classes=4).eval()  # the small stem's first layer sees several frames
    current = {"defaults_version": DEFAULTS_VERSION}
    assert model_from_checkpoint({**ckpt, "model": today.state_dict(), **current}).stem.frames == STEM_FRAMES
    before = get_model("cnn_lstm_s", num_classes=4, stem_frames=1, stem_downsample="stride").eval()  # the same
    ckpt = {**ckpt, "model": before.state_dict(), "model_name": "cnn_lstm_s"}
    with torch.no_grad():
        torch.testing.assert_close(model_from_checkpoint(ckpt)(x), before(x))
    today = get_model("cnn_lstm_s", num_classes=4).eval()
    assert model_from_checkpoint({**ckpt, "model": today.state_dict(), **current}).stem.frames == STEM_FRAMES


def test_a_checkpoint_from_before_a_changed_default_rebuilds_with_the_value_it_was_trained_with():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 16, 16)
    old_stem = {"stem_frames": 3, "stem_downsample": "stride"}  # the defaults of the morning of 2026-12-02
    for name, before in (("rcn_gru_s", {"activation": "tanh", **old_stem}), ("rcn_lstm_s", {"activation": "tanh", "coupled": False, **old_stem}),
                         ("rcn_rcl_s", old_stem), ("cnn_lstm_s", old_stem)):
        old = get_model(name, num_classes=4, **before).eval()  # same weight names and shapes as today's
        ckpt = {"model": old.state_dict(), "model_name": name, "num_classes": 4, "config": {"model": {"kwargs": {}}}}
        with torch.no_grad():
            torch.testing.assert_close(model_from_checkpoint(ckpt)(x), old(x))  # no version: the old defaults
            # today's but for the kernel length (and, for the ConvLSTM, its four gates of then)
            same_shapes = get_model(name, num_classes=4, stem_frames=3, **{k: before[k] for k in ("coupled",)
                                                                           if k in before}).eval()
            same_shapes.load_state_dict(old.state_dict())
            assert not torch.allclose(same_shapes(x), old(x))  # the weights fit, so the rebuild had to know
            today = get_model(name, num_classes=4).eval()
            current = {**ckpt, "model": today.state_dict(), "defaults_version": DEFAULTS_VERSION}
            torch.testing.assert_close(model_from_checkpoint(current)(x), today(x))


@pytest.mark.parametrize(("name", "before"), [("rcn_lstm_s", {"coupled": False}),
                                              ("rcn_mingru_s", {"stem_frames": 5, "stem_downsample": "pool"})])
def test_a_checkpoint_from_before_the_time_to_accuracy_defaults_rebuilds_as_trained(name, before):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 16, 16)
    old = get_model(name, num_classes=4, **before).eval()  # the defaults of 2026-12-04 (DEFAULTS_VERSION 1)
    ckpt = {"model": old.state_dict(), "model_name": name, "num_classes": 4, "config": {"model": {"kwargs": {}}},
            "defaults_version": 1}
    with torch.no_grad():
        torch.testing.assert_close(model_from_checkpoint(ckpt)(x), old(x))
    today = get_model(name, num_classes=4).eval()
    assert repr(today) != repr(old)
    current = {**ckpt, "model": today.state_dict(), "defaults_version": DEFAULTS_VERSION}
    with torch.no_grad():
        torch.testing.assert_close(model_from_checkpoint(current)(x), today(x))
