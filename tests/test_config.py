"""Configs: defaults, YAML files with _base_, typed key=value overrides, the shipped configs, docs/guide/config.md in sync."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from vidrcnn.data.splits import build_split
from vidrcnn.engine.config import (
    Config,
    config_from_dict,
    config_to_dict,
    load_config,
    render_markdown,
    save_config,
    valid_keys,
)
from vidrcnn.errors import ConfigError
from vidrcnn.models import list_models

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def test_required_keys_exist_under_their_names():
    required = {"data.root", "data.split_dir", "data.split", "data.num_frames", "data.sampling", "data.stride",
                "data.size", "data.num_workers", "model.name", "train.epochs", "train.batch_size", "train.lr", "seed"}
    assert required <= set(valid_keys())


def test_defaults_without_a_file():
    assert load_config() == Config()


def test_overrides_are_typed():
    cfg = load_config(None, ["train.lr=3e-4", "data.num_frames=8", "data.resize=null", "data.flip=true",
                             "model.kwargs.dropout=0.25", "data.sampling=segments", "train.warmup_epochs=2", "seed=7"])
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.data.num_frames == 8 and cfg.data.resize is None and cfg.data.flip is True
    assert cfg.model.kwargs == {"dropout": 0.25}
    assert cfg.data.sampling == "segments" and cfg.seed == 7
    assert isinstance(cfg.train.warmup_epochs, float)  # an int widens to a float field


@pytest.mark.parametrize("override, words", [
    ("data.num_frames=abc", ["data.num_frames", "int"]),
    ("data.num_frames=2.5", ["data.num_frames", "int"]),
    ("data.flip=1", ["data.flip", "bool"]),
    ("train.lr=fast", ["train.lr", "float"]),
    ("data.sampling=random", ["data.sampling", "dense", "segments"]),
    ("data.split=4", ["data.split"]),
    ("train.epochs=0", ["train.epochs", ">= 1"]),
    ("train.lr", ["key=value"]),
    ("train.lr=nan", ["train.lr", "a finite number"]),
    ("train.lr=inf", ["train.lr", "a finite number"]),
    ("train.lr=0", ["train.lr", "must be > 0.0"]),
    ("train.lr=-1e-3", ["train.lr", "must be > 0.0"]),
    ("train.label_smoothing=2", ["train.label_smoothing", "must be < 1.0"]),
    ("train.label_smoothing=1", ["train.label_smoothing", "must be < 1.0"]),
    ("train.label_smoothing=-0.1", ["train.label_smoothing", "must be >= 0.0"]),
])
def test_bad_override_values_are_errors(override, words):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.parametrize("key, nearest", [("train.lrr", "train.lr"), ("data.num_frame", "data.num_frames"),
                                          ("data.sampler", "data.sampling"), ("sed", "seed"),
                                          ("training.epochs", "train.epochs")])
def test_unknown_override_names_the_nearest_key(key, nearest):
    with pytest.raises(ConfigError, match=f"unknown key '{key}'; did you mean '{nearest}'"):
        load_config(None, [f"{key}=1"])


def test_file_errors_name_the_file(tmp_path):
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=f"{bad_key}: unknown key 'train.epoch'; did you mean 'train.epochs'"):
        load_config(bad_key)
    bad_type = tmp_path / "bad_type.yaml"
    bad_type.write_text("data:\n  size: big\n")
    with pytest.raises(ConfigError, match=f"{bad_type}: data.size: expected int"):
        load_config(bad_type)
    bad_yaml = tmp_path / "bad_yaml.yaml"
    bad_yaml.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{bad_yaml}: invalid YAML"):
        load_config(bad_yaml)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("# caf\xe9\nseed: 1\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=f"{latin1}: not UTF-8 text \\(byte 5"):
        load_config(latin1)
    # An override error names the override, not the config file it was applied to (issue 30, item 9).
    good = tmp_path / "good.yaml"
    good.write_text("seed: 1\n")
    with pytest.raises(ConfigError, match=r"^nope=1 \(command line\): unknown key"):
        load_config(good, ["nope=1"])


def test_base_include_and_kwargs_merge(tmp_path):
    (tmp_path / "base.yaml").write_text("data:\n  size: 48\n  num_frames: 12\nmodel:\n  kwargs: {dropout: 0.1}\n")
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("_base_: ../base.yaml\ndata:\n  size: 32\nmodel:\n  name: c3d_s\n  kwargs: {other: 2}\n")
    cfg = load_config(child, ["data.num_frames=4"])
    assert (cfg.data.size, cfg.data.num_frames, cfg.model.name) == (32, 4, "c3d_s")
    assert cfg.model.kwargs == {"dropout": 0.1, "other": 2}
    # "1e-3" without a dot is a string to PyYAML; a float field still reads it.
    (tmp_path / "lr.yaml").write_text("train:\n  lr: 1e-3\n")
    assert load_config(tmp_path / "lr.yaml").train.lr == pytest.approx(1e-3)


def test_base_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_config(tmp_path / "a.yaml")


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="data.resize"):
        load_config(None, ["data.size=64", "data.resize=32"])
    with pytest.raises(ConfigError, match="optim.betas"):
        load_config(None, ["optim.betas=[0.9]"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["model.kwargs.dropout=0.5", "data.resize=80", "train.lr=0.01"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_shipped_configs_load_and_name_registered_models():
    files = sorted(CONFIGS.glob("*.yaml"))
    names = {f.stem for f in files}
    for model in ("rcn_rnn_s", "rcn_rcl_s", "rcn_gru_s", "rcn_lstm_s", "cnn_lstm_s", "c3d_s", "frame_avg_s"):
        assert f"synthetic_{model}" in names
    for model in ("rcn_rnn_m", "rcn_rcl_m", "rcn_gru_m", "rcn_lstm_m", "cnn_lstm_m", "c3d_m", "frame_avg_m",
                  "r2plus1d_18"):
        assert f"ucf101_{model}" in names
    registered = set(list_models())
    synthetic, ucf = [], []
    for f in files:
        cfg = load_config(f)
        assert cfg.model.name in registered, f
        if f.stem.startswith("synthetic_"):
            assert cfg.model.name == f.stem.removeprefix("synthetic_")
            synthetic.append(cfg)
        if f.stem.startswith("ucf101_"):
            assert cfg.model.name == f.stem.removeprefix("ucf101_")
            assert (cfg.data.root, cfg.data.split_dir, cfg.data.split) == ("data/UCF101", "data/ucfTrainTestlist", 1)
            assert (cfg.data.num_frames, cfg.data.size) == (16, 112)
            ucf.append(cfg)
    # Synthetic models compare on equal terms: same data, optimisation and budget.
    assert len({(str(c.data), str(c.train), str(c.optim), c.seed) for c in synthetic}) == 1


def test_docs_config_md_is_in_sync():
    doc = REPO / "docs" / "guide" / "config.md"
    assert doc.read_text(encoding="utf-8") == render_markdown(), (
        "docs/guide/config.md is stale: run `python -m vidrcnn.engine.config docs/guide/config.md`")
    for key in valid_keys():
        assert f"`{key}`" in render_markdown()


def test_base_dict_comes_before_file_and_overrides(tmp_path):
    stored = config_to_dict(load_config(None, ["model.name=c3d_s", "model.kwargs.dropout=0.1", "data.size=48"]))
    (tmp_path / "f.yaml").write_text("data:\n  size: 40\n")
    cfg = load_config(tmp_path / "f.yaml", ["eval.num_clips=3", "model.kwargs.extra=1"], base=stored)
    assert (cfg.model.name, cfg.data.size, cfg.eval.num_clips) == ("c3d_s", 40, 3)
    assert cfg.model.kwargs == {"dropout": 0.1, "extra": 1}
    with pytest.raises(ConfigError, match="unknown key 'data.sise'"):
        load_config(None, base={"data": {"sise": 3}})


def test_a_device_that_is_not_there_is_refused_before_any_work():
    from vidrcnn.engine.distributed import resolve_device

    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="--device: unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():  # the refusal a machine without a GPU must give, for every tool
        with pytest.raises(ConfigError, match="train.device: cuda requested but torch sees no GPU"):
            resolve_device("cuda", "train.device")
    with pytest.raises(ConfigError, match="cuda:99 requested"):
        resolve_device("cuda:99")


def test_a_train_test_pair_of_lists_is_taken_from_yaml_and_from_the_command_line(tmp_path):
    root = tmp_path / "data"
    for name in ("walk/a.avi", "walk/b.avi", "run/c.avi", "run/d.avi"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    (root / "train.txt").write_text("walk/a.avi 0\nrun/c.avi 1\n")
    (root / "val.txt").write_text("walk/b.avi 0\nrun/d.avi 1\n")
    yaml_file = tmp_path / "pair.yaml"
    yaml_file.write_text(f"data:\n  root: {root}\n  list_file: [{root / 'train.txt'}, {root / 'val.txt'}]\n")
    from_yaml = load_config(yaml_file)
    from_cli = load_config(None, [f"data.root={root}", f"data.list_file=[{root / 'train.txt'},{root / 'val.txt'}]"])
    assert from_yaml.data.list_file == from_cli.data.list_file == [str(root / "train.txt"), str(root / "val.txt")]
    split = build_split(root, list_file=from_cli.data.list_file)
    assert [os.path.basename(s.path) for s in split.test] == ["b.avi", "d.avi"] and split.classes == ["walk", "run"]
    with pytest.raises(ConfigError, match=r"data.list_file: one list, or a \[train, test\] pair of two lists"):
        load_config(None, ["data.list_file=[a.txt,b.txt,c.txt]"])


def test_an_override_error_names_the_override_not_the_config_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("train:\n  epochs: 2\n")
    for override, words in (("train.lr=fast", "train.lr=fast (command line): train.lr: expected float"),
                            ("train.lrr=1", "train.lrr=1 (command line): unknown key 'train.lrr'")):
        with pytest.raises(ConfigError) as error:
            load_config(config, [override])
        assert str(error.value).startswith(words) and str(config) not in str(error.value)
