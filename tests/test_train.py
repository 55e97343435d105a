"""The training engine end to end on a tiny synthetic dataset: determinism, kill + resume, divergence, skipped videos.

Data: 4 synthetic classes at 32x32, 16 frames; groups 1-6 train (24 videos), 7-8 test (8 videos); clips of 4 TSN
segments; model frame_avg_s. One epoch is a fraction of a second.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from toolrun import load_tool

import vidrcnn.engine.train as train_module
from vidrcnn.engine.checkpoint import load_checkpoint, model_from_checkpoint
from vidrcnn.engine.config import load_config
from vidrcnn.engine.logging import read_metrics
from vidrcnn.engine.schedule import lr_at
from vidrcnn.engine.train import BEST, LAST, fit
from vidrcnn.errors import CheckpointError, ConfigError, DatasetError, DivergenceError, OutputError
from vidrcnn.layers import compile_steps

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["MoveLeft", "MoveRight", "RotateCW", "Still"]
TIMING = {"clips_per_s", "seconds", "elapsed_s"}  # the only fields allowed to differ between identical runs


def write_lists(root: Path, lists: Path, test_groups=(7, 8), extra_train: tuple[str, ...] = ()) -> Path:
    """UCF101-style lists for CLASSES over the synthetic videos in ``root`` (CRLF, 1-based labels)."""
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for i, c in enumerate(CLASSES, 1)).encode())
    train, test = [], []
    for label, name in enumerate(CLASSES, 1):
        for group in range(1, 9):
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            (test.append(f"{rel}\r\n") if group in test_groups else train.append(f"{rel} {label}\r\n"))
    train += [f"{rel} 1\r\n" for rel in extra_train]
    (lists / "trainlist01.txt").write_bytes("".join(train).encode())
    (lists / "testlist01.txt").write_bytes("".join(test).encode())
    return lists


@pytest.fixture(scope="session")
def tiny_data(tiny_synthetic, tmp_path_factory) -> tuple[Path, Path]:
    return tiny_synthetic, write_lists(tiny_synthetic, tmp_path_factory.mktemp("lists4"))


def overrides(data: tuple[Path, Path], *extra: str) -> list[str]:
    root, lists = data
    return [f"data.root={root}", f"data.split_dir={lists}", "data.size=32", "data.num_frames=4",
            "data.sampling=segments", "data.num_workers=0", "model.name=frame_avg_s", "train.batch_size=8",
            "train.epochs=3", "train.lr=3e-3", "train.warmup_epochs=1", "train.device=cpu", *extra]


def comparable(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in TIMING} for m in history]


@pytest.fixture(scope="module")
def reference_run(tiny_data, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("reference")
    return out, fit(load_config(None, overrides(tiny_data)), out)


def test_lr_schedule_warmup_then_cosine():
    lrs = [lr_at(s, base_lr=1.0, total_steps=20, warmup_steps=4, min_lr=0.1) for s in range(20)]
    assert lrs[0] == pytest.approx(0.25) and lrs[3] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(lrs[:4]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[3:]))
    assert lrs[-1] == pytest.approx(0.1)
    assert lr_at(25, base_lr=1.0, total_steps=20, warmup_steps=4, min_lr=0.1) == pytest.approx(0.1)


def test_fit_writes_the_run_and_a_self_contained_checkpoint(reference_run, tiny_data):
    out, final = reference_run
    history = read_metrics(out / "metrics.jsonl")
    assert [m["epoch"] for m in history] == [1, 2, 3]
    for m in history:
        assert {"train_loss", "train_top1", "val_loss", "val_top1", "lr", "clips_per_s", "seconds", "skipped"} <= set(m)
        assert m["val_count"] == 8 and m["train_clips"] == 24 and m["skipped"] == 0
    # time to accuracy: the training seconds so far at each epoch, validation excluded
    assert [m["elapsed_s"] for m in history] == pytest.approx(
        [sum(e["seconds"] for e in history[:i + 1]) for i in range(len(history))])
    assert final["val_top1"] == history[-1]["val_top1"] and final["skipped_videos"] == []
    assert (out / "curves.png").stat().st_size > 1000
    assert load_config(out / "config.yaml") == load_config(None, overrides(tiny_data))

    ckpt = load_checkpoint(out / LAST)
    assert ckpt["epoch"] == 3 and ckpt["classes"] == CLASSES and ckpt["num_classes"] == 4
    # The training videos, relative to data.root, for tools/test.py's check that a test set is held out.
    trainlist = (tiny_data[1] / "trainlist01.txt").read_text().split()[::2]
    assert ckpt["train_videos"] == sorted(trainlist) and len(trainlist) == 24
    assert ckpt["model_name"] == "frame_avg_s"
    assert {k: ckpt["preprocess"][k] for k in ("num_frames", "stride", "sampling", "size", "resize")} == {
        "num_frames": 4, "stride": 1, "sampling": "segments", "size": 32, "resize": None}
    # 16-frame videos cut into 4 segments: inference spaces this model's frames 4 apart, as training saw them.
    assert ckpt["preprocess"]["segment_stride"] == 4 and ckpt["preprocess"]["fps"] == 25.0
    assert len(ckpt["preprocess"]["mean"]) == 3 and len(ckpt["preprocess"]["std"]) == 3
    assert {"optimizer", "scheduler", "scaler", "config", "best_top1", "metrics"} <= set(ckpt)
    best = load_checkpoint(out / BEST)
    assert best["best_top1"] == pytest.approx(max(m["val_top1"] for m in history))
    # The checkpoint alone rebuilds a working model.
    model = model_from_checkpoint(ckpt)
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 4, 32, 32)).shape == (2, 4)


def test_same_seed_same_metrics(reference_run, tiny_data, tmp_path):
    again = fit(load_config(None, overrides(tiny_data)), tmp_path / "again")
    ref_out, ref_final = reference_run
    assert comparable(read_metrics(tmp_path / "again" / "metrics.jsonl")) == comparable(
        read_metrics(ref_out / "metrics.jsonl"))
    assert again["val_loss"] == ref_final["val_loss"]
    other = fit(load_config(None, overrides(tiny_data, "seed=1", "train.epochs=1")), tmp_path / "seed1")
    assert other["train_loss"] != read_metrics(ref_out / "metrics.jsonl")[0]["train_loss"]


def test_existing_run_needs_resume(reference_run, tiny_data):
    out, _ = reference_run
    with pytest.raises(CheckpointError, match="--resume"):
        fit(load_config(None, overrides(tiny_data)), out)


def test_a_folder_that_is_not_a_run_is_never_trained_into(tiny_data, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "config.yaml").write_text("my own config\n")
    for resume in (False, True):  # with --resume too: no checkpoint, and a file that is not a run's
        with pytest.raises(OutputError, match="not empty|not a run's"):
            fit(load_config(None, overrides(tiny_data)), notes / ".." / "notes", resume=resume)
    assert [p.name for p in notes.iterdir()] == ["config.yaml"]
    assert (notes / "config.yaml").read_text() == "my own config\n"
    # A run killed while writing its first checkpoint left only its own files: --resume starts it.
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / ".checkpoint_last.pt.x1y2.tmp").write_bytes(b"half")
    (killed / "metrics.jsonl").write_text("")
    fit(load_config(None, overrides(tiny_data, "train.epochs=1")), killed, resume=True)
    assert (killed / "checkpoint_last.pt").is_file()


def test_resume_with_another_config_is_refused_before_anything_is_written(reference_run, tiny_data, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference_run[0], out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for change, listed in (("train.lr=1e-3", "train.lr (0.003 -> 0.001)"), ("optim.name=sgd", "optim.name"),
                           ("data.size=48", "data.size (32 -> 48)")):
        with pytest.raises(ConfigError, match=re.escape(listed)) as info:
            fit(load_config(None, overrides(tiny_data, change)), out, resume=True)
        assert "train.epochs" in str(info.value)  # says what may change
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_resume_may_extend_a_run_and_the_record_says_so(reference_run, tiny_data, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference_run[0], out)
    fit(load_config(None, overrides(tiny_data, "train.epochs=4")), out, resume=True)
    history = read_metrics(out / "metrics.jsonl")
    assert [m["epoch"] for m in history] == [1, 2, 3, 4]
    assert history[3]["resumed_with"] == {"train.epochs": [3, 4]}
    assert all("resumed_with" not in m for m in history[:3])
    assert load_config(out / "config.yaml").train.epochs == 4
    assert history[3]["elapsed_s"] == pytest.approx(history[2]["elapsed_s"] + history[3]["seconds"])  # carried over


def test_sigkill_then_resume_matches_an_uninterrupted_run(reference_run, tiny_data, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the reference run's: the same sums
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "--out", str(out), *overrides(tiny_data)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / LAST).exists():  # the first epoch is saved: kill it somewhere inside the second
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = load_checkpoint(out / LAST)["epoch"]
    assert done_before < 3
    final = fit(load_config(None, overrides(tiny_data)), out, resume=True)
    ref_out, ref_final = reference_run
    assert comparable(read_metrics(out / "metrics.jsonl")) == comparable(read_metrics(ref_out / "metrics.jsonl"))
    assert (final["val_top1"], final["val_loss"], final["best_top1"]) == (
        ref_final["val_top1"], ref_final["val_loss"], ref_final["best_top1"])
    # Resuming a finished run does nothing and returns the same metrics.
    assert fit(load_config(None, overrides(tiny_data)), out, resume=True)["val_loss"] == ref_final["val_loss"]


def test_divergence_stops_with_the_step_and_the_tool_prints_error(tiny_data, tmp_path, capsys):
    cfg = load_config(None, overrides(tiny_data, "train.lr=1e30", "train.clip_grad=0", "train.warmup_epochs=0"))
    with pytest.raises(DivergenceError, match=r"loss is (nan|inf) at epoch 1, step \d+"):
        fit(cfg, tmp_path / "nan")
    from vidrcnn.cli import run_tool

    tool = load_tool("train")
    argv = ["--out", str(tmp_path / "nan_tool"), *overrides(tiny_data, "train.lr=1e30", "train.clip_grad=0",
                                                            "train.warmup_epochs=0")]
    assert run_tool(tool.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged") and "epoch 1, step" in err and "Traceback" not in err


def test_tool_reports_config_errors(capsys, tmp_path):
    from vidrcnn.cli import run_tool

    assert run_tool(load_tool("train").main, ["--out", str(tmp_path), "train.lrr=1"]) == 2
    assert "did you mean 'train.lr'" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "cause"), [("{stem_strides: [0, 2]}", "stem_strides must be 2 integers"),
                                                ("{no_such_option: 1}", "no_such_option")])
def test_tool_reports_model_options_the_builder_rejects(tiny_data, tmp_path, capsys, option, cause):
    from vidrcnn.cli import run_tool

    argv = ["--out", str(tmp_path / "run"), *overrides(tiny_data, f"model.kwargs={option}")]
    assert run_tool(load_tool("train").main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot build model 'frame_avg_s' with ") and cause in err and "Traceback" not in err


def test_unreadable_training_videos_are_skipped_counted_and_summarised(tiny_data, tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(tiny_data[0], root)
    (root / "MoveLeft" / "v_MoveLeft_g09_c01.avi").write_bytes(b"not a video at all" * 10)
    lists = write_lists(root, root / "lists", extra_train=("MoveLeft/v_MoveLeft_g09_c01.avi",))
    cfg = load_config(None, overrides((root, lists), "train.epochs=2", "train.batch_size=5"))  # 25 videos, none dropped
    with caplog.at_level(logging.INFO, logger="vidrcnn"):
        final = fit(cfg, tmp_path / "run")
    bad = str(root / "MoveLeft" / "v_MoveLeft_g09_c01.avi")
    history = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [m["skipped"] for m in history] == [1, 1]
    assert history[0]["skipped_paths"] == [bad] and history[0]["train_clips"] == 25
    assert final["skipped_videos"] == [bad]
    assert any("skipped" in r.getMessage() and bad in r.getMessage() for r in caplog.records)
    yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())


def test_a_validation_set_with_no_readable_video_is_an_error_not_a_result(tiny_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_data[0], root)
    lists = write_lists(root, root / "lists")
    for rel in (lists / "testlist01.txt").read_text().split():
        (root / rel).write_bytes(b"not a video" * 10)
    with pytest.raises(DatasetError, match="all 8 validation \\(test split\\) videos are unreadable"):
        fit(load_config(None, overrides((root, lists), "train.epochs=1")), tmp_path / "run")


def test_training_stops_with_one_error_when_too_many_videos_are_unreadable(tiny_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_data[0], root)
    lists = write_lists(root, root / "lists")
    train = (lists / "trainlist01.txt").read_text().split()[::2]
    for rel in train[:3]:  # 3 of 24: 12.5%, above the default limit of 10%
        (root / rel).write_bytes(b"not a video" * 10)
    with pytest.raises(DatasetError, match=r"3 of the 24 training videos \(12.5%\) are unreadable, more than "
                                           r"data.max_unreadable=0.1 allows"):
        fit(load_config(None, overrides((root, lists), "train.epochs=1")), tmp_path / "run")
    final = fit(load_config(None, overrides((root, lists), "train.epochs=1", "data.max_unreadable=0.2")),
                tmp_path / "run2")
    assert len(final["skipped_videos"]) == 3


# -- recipe options end to end (their pieces are tested in test_recipe.py) -------------------------------------------
EMA = ("train.ema_decay=0.8", "train.epochs=2")


@pytest.fixture(scope="module")
def ema_run(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ema")
    fit(load_config(None, overrides(tiny_data, *EMA)), out)
    return out


def test_ema_is_validated_checkpointed_and_what_test_and_infer_load(ema_run, caplog):
    from vidrcnn.engine.evaluate import prepare_test
    from vidrcnn.inference.predictor import load_predictor

    history = read_metrics(ema_run / "metrics.jsonl")
    assert all(m["val_weights"] == "ema" for m in history)
    assert all(m["ema_bn_clips"] > 0 for m in history)  # its BatchNorm statistics recomputed before each validation
    ckpt = load_checkpoint(ema_run / LAST)
    assert ckpt["weights"] == "ema" and ckpt["ema_updates"] == 6  # 3 steps per epoch, 2 epochs
    assert set(ckpt["ema"]) == set(ckpt["model"])
    differ = [k for k in ckpt["model"] if not torch.equal(ckpt["model"][k], ckpt["ema"][k])]
    assert differ  # the average is not the last weights
    ema_key = next(k for k in differ if k.startswith("fc."))  # left as is by the BatchNorm fold of test and infer
    for model in (model_from_checkpoint(ckpt), prepare_test(ema_run / LAST, device="cpu").model,
                  load_predictor(ema_run / LAST).model):
        assert torch.equal(model.state_dict()[ema_key], ckpt["ema"][ema_key])
    setup = prepare_test(ema_run / LAST, device="cpu", weights="raw")
    assert setup.meta["weights"] == "raw"
    assert torch.equal(setup.model.state_dict()[ema_key], ckpt["model"][ema_key])
    assert prepare_test(ema_run / LAST, device="cpu").meta["weights"] == "ema"


def test_without_the_recomputation_the_ema_keeps_averaged_batchnorm_statistics(ema_run, tiny_data, tmp_path):
    fit(load_config(None, overrides(tiny_data, *EMA, "train.ema_bn_batches=0")), tmp_path / "run")
    averaged, recomputed = load_checkpoint(tmp_path / "run" / LAST), load_checkpoint(ema_run / LAST)
    assert "ema_bn_clips" not in read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    stats = [k for k in recomputed["ema"] if k.endswith("running_mean")]
    assert stats and all(not torch.equal(averaged["ema"][k], recomputed["ema"][k]) for k in stats)
    weights = [k for k in recomputed["ema"] if k.endswith(".weight")]
    assert all(torch.equal(averaged["ema"][k], recomputed["ema"][k]) for k in weights)  # the weights are untouched


def test_ema_resumes_to_the_same_average(ema_run, tiny_data, tmp_path, monkeypatch):
    import vidrcnn.engine.train as train_module

    real = train_module.train_one_epoch

    def dies_in_epoch_2(*args, **kwargs):
        if kwargs["epoch"] == 2:
            raise KeyboardInterrupt  # killed after epoch 1's checkpoint
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit(load_config(None, overrides(tiny_data, *EMA)), tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / LAST)["epoch"] == 1
    monkeypatch.setattr(train_module, "train_one_epoch", real)
    fit(load_config(None, overrides(tiny_data, *EMA)), tmp_path / "run", resume=True)
    resumed, whole = load_checkpoint(tmp_path / "run" / LAST), load_checkpoint(ema_run / LAST)
    assert resumed["ema_updates"] == whole["ema_updates"]
    for key, value in whole["ema"].items():
        assert torch.equal(resumed["ema"][key], value), key
    assert comparable(read_metrics(tmp_path / "run" / "metrics.jsonl")) == comparable(
        read_metrics(ema_run / "metrics.jsonl"))


def test_fit_mixes_every_batch_with_label_smoothing(tiny_data, tmp_path, monkeypatch):
    from vidrcnn.engine.recipe import VideoMix

    targets = []
    real = VideoMix.__call__

    def spy(self, clips, labels):
        out = real(self, clips, labels)
        targets.append(out[1])
        return out

    monkeypatch.setattr(VideoMix, "__call__", spy)
    final = fit(load_config(None, overrides(tiny_data, "train.epochs=1", "train.mixup_alpha=0.8",
                                            "train.cutmix_alpha=1.0", "train.label_smoothing=0.1")), tmp_path / "mix")
    assert len(targets) == 3 and all(t.shape == (8, 4) for t in targets)  # 3 steps, each batch mixed (soft targets)
    assert math.isfinite(final["train_loss"]) and final["train_clips"] == 24


def test_repeats_train_k_clips_of_each_video_per_epoch(tiny_data, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="vidrcnn"):
        final = fit(load_config(None, overrides(tiny_data, "train.epochs=1", "data.repeats=2")), tmp_path / "rep")
    assert final["train_clips"] == 48  # 24 videos, 2 clips each, in the same 3 steps of 8 videos
    assert any("3 steps/epoch" in r.getMessage() for r in caplog.records)


def test_resume_with_nothing_to_resume_is_refused_or_starts_as_asked(tiny_data, tmp_path, capsys):
    from vidrcnn.cli import run_tool

    tool = load_tool("train")
    typo = tmp_path / "runs" / "gru_mm"  # a mistyped --out on a long run
    assert run_tool(tool.main, ["--out", str(typo), "--resume", *overrides(tiny_data, "train.epochs=1")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {typo}: no checkpoint to resume (checkpoint_last.pt is not there): check --out, or pass " \
                  "--resume-if-any to start a new run when there is none\n" and not typo.exists()
    killed = tmp_path / "killed"  # killed before its first checkpoint: the same case
    killed.mkdir()
    (killed / "metrics.jsonl").write_text("")
    assert run_tool(tool.main, ["--out", str(killed), "--resume", *overrides(tiny_data, "train.epochs=1")]) == 2
    assert "no checkpoint to resume" in capsys.readouterr().err
    assert run_tool(tool.main, ["--out", str(killed), "--resume-if-any", *overrides(tiny_data, "train.epochs=1")]) == 0
    assert f"--resume-if-any: no checkpoint_last.pt in {killed}: starting a new run" in capsys.readouterr().out
    assert (killed / LAST).is_file()


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled-step"])
def test_two_epochs_give_the_recorded_metrics(tiny_synthetic, tmp_path, monkeypatch, compiled):
    # Recorded before the training loop was rewritten (tests/fixtures/train_reference.json): the same seed must give
    # the same metrics after any refactor of fit, the cells or the data path (float tolerance: thread counts differ).
    # train.compile_step=true too: compiled (TorchDynamo and AOTAutograd, no code generated, to keep the test short)
    # the cells' steps give the same run.
    reference = json.loads((Path(__file__).parent / "fixtures" / "train_reference.json").read_text())["epochs"]
    root = tiny_synthetic
    cfg = load_config(None, [f"data.root={root}", "data.size=32", "data.num_frames=4", "data.sampling=segments",
                             "data.num_workers=0", "model.name=rcn_gru_s",
                             # the initialisation of the recording (the identity candidate kernel came later)
                             "model.kwargs={channels: [4, 4], state_init: default}",
                             "train.batch_size=8", "train.epochs=2", "train.device=cpu", "seed=0",
                             f"train.compile_step={str(compiled).lower()}"])
    compiled_cells = []
    monkeypatch.setattr(train_module, "compile_steps",
                        lambda m: compiled_cells.append(compile_steps(m, backend="aot_eager")))
    fit(cfg, tmp_path / "run")
    assert compiled_cells == ([2] if compiled else [])
    got = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(got) == len(reference) == 2
    for ours, theirs in zip(got, reference, strict=True):
        for key, value in theirs.items():
            assert ours[key] == pytest.approx(value, rel=1e-4), (ours["epoch"], key)
