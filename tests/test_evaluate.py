"""Evaluation: multi-view video-level metrics, unreadable videos counted wrong, tools/test.py end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from toolrun import load_tool
from torch import nn

from vidrcnn.data.transforms import MEAN, STD
from vidrcnn.engine.checkpoint import save_checkpoint
from vidrcnn.engine.evaluate import ScoreTally, accuracy_by_group, evaluate, evaluate_checkpoint, format_table
from vidrcnn.engine.plots import plot_confusion
from vidrcnn.errors import ConfigError, DatasetError
from vidrcnn.io import write_video
from vidrcnn.models import get_model


def probs(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_video_score_is_the_mean_of_view_softmaxes():
    tally = ScoreTally(3, ["a", "b", "c"], topk=2)
    # Video 0 (label 0): views vote b, a, a -> the mean picks a; one of three views is wrong.
    # Video 1 (label 1): one confident wrong view outweighs two weak right ones -> the mean picks c.
    views = torch.stack([
        probs([0.4, 0.6, 0.0], [0.7, 0.3, 0.0], [0.6, 0.4, 0.0]),
        probs([0.0, 0.9, 0.1], [0.0, 0.4, 0.6], [0.0, 0.0, 1.0]),
    ])
    tally.update(views, [0, 1], paths=["v0", "v1"])
    r = tally.result()
    assert r["top1"] == 0.5
    assert r["clip_top1"] == pytest.approx(3 / 6)
    assert r["top5"] == 1.0  # top-2 here: b is second for video 1
    assert r["confusion"] == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert r["per_class"]["a"] == {"top1": 1.0, "num_videos": 1, "correct": 1, "unreadable": 0}
    assert r["per_class"]["c"]["top1"] is None  # no test video: left out of the class mean
    assert r["mean_class_acc"] == 0.5
    assert r["nll"] == pytest.approx(-(math.log(17 / 30) + math.log(13 / 30)) / 2)
    assert [v["pred"] for v in r["videos"]] == [0, 2]


def test_unreadable_videos_count_as_wrong_and_are_listed():
    tally = ScoreTally(2, ["a", "b"])
    # The unreadable video's zero input happens to score its true class: it must still count as wrong.
    tally.update(probs([0.9, 0.1], [0.2, 0.8], [0.9, 0.1])[:, None], [0, 1, 0], ok=[True, True, False],
                 paths=["ok0", "ok1", "broken.avi"])
    r = tally.result()
    assert r["num_videos"] == 3 and r["num_skipped"] == 1 and r["skipped"] == ["broken.avi"]
    assert r["top1"] == pytest.approx(2 / 3)
    assert r["top5"] == pytest.approx(2 / 3)
    assert r["clip_top1"] == pytest.approx(2 / 3)
    assert r["per_class"]["a"] == {"top1": 0.5, "num_videos": 2, "correct": 1, "unreadable": 1}
    assert r["mean_class_acc"] == pytest.approx((0.5 + 1.0) / 2)
    assert r["confusion"] == [[1, 0, 1], [0, 1, 0]]  # rows sum to the test videos of the class
    assert r["confusion_columns"] == ["a", "b", "unreadable"]
    assert "1 unreadable" in format_table(r)


def test_accuracy_by_group_weights_by_videos():
    per_class = {"a": {"correct": 1, "num_videos": 4}, "b": {"correct": 3, "num_videos": 4},
                 "c": {"correct": 2, "num_videos": 2}}
    assert accuracy_by_group(per_class, {"a": "local", "b": "local", "c": "static"}) == {"local": 0.5, "static": 1.0}


class ChannelModel(nn.Module):
    """Logits = the mean of each input channel: the test controls the prediction through the input."""

    def forward(self, x):
        return x.mean(dim=(2, 3, 4)) * 10


def test_evaluate_folds_views_into_the_batch():
    # Two videos x 4 views (e.g. 2 clips x 2 crops) of 3 channels; channel c high means class c.
    video = torch.zeros(2, 4, 3, 2, 4, 4)
    video[0, :, 1] = 1.0  # video 0: every view says class 1
    video[1, :3, 2] = 1.0  # video 1: three views say 2, one says 0 strongly
    video[1, 3, 0] = 3.0
    batches = [
        {"video": video, "label": torch.tensor([1, 2]), "ok": torch.tensor([True, True]), "path": ["x", "y"]},
        {"video": torch.zeros(1, 3, 2, 4, 4), "label": torch.tensor([0]), "ok": torch.tensor([False]),
         "path": ["bad.avi"]},
    ]
    r = evaluate(ChannelModel(), batches, num_classes=3, classes=["a", "b", "c"], views_per_forward=3)
    assert r["num_videos"] == 3 and r["num_views"] == 9
    assert r["skipped"] == ["bad.avi"]
    assert r["per_class"]["b"]["top1"] == 1.0
    assert r["per_class"]["c"]["top1"] == 1.0  # softmax averaging: 3 confident views beat 1 very confident one
    assert r["top1"] == pytest.approx(2 / 3)
    assert r["clip_top1"] == pytest.approx(7 / 9)


def test_evaluate_rejects_logits_of_the_wrong_width():
    batch = {"video": torch.zeros(1, 3, 2, 4, 4), "label": torch.tensor([0])}
    with pytest.raises(ValueError, match="logits"):
        evaluate(ChannelModel(), [batch], num_classes=5)


def test_confusion_png(tmp_path):
    out = tmp_path / "confusion.png"
    plot_confusion([[3, 1, 0], [0, 2, 1]], ["a", "b"], out, columns=["a", "b", "unreadable"], title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="shape"):
        plot_confusion([[1, 0]], ["a", "b"], tmp_path / "x.png")


def test_result_is_json_serialisable():
    tally = ScoreTally(2)
    tally.update(probs([0.3, 0.7])[:, None], [1], paths=["v"])
    assert json.loads(json.dumps(tally.result()))["top1"] == 1.0


# -- a checkpoint on a tiny dataset, through evaluate_checkpoint and tools/test.py ----------------------------------

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["Archery", "Biking", "Diving"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path, Path]:
    """UCF101-style folders (group 1-7 test, 8 train) with one unreadable test video, and a checkpoint whose
    classifier always says Biking."""
    root = tmp_path_factory.mktemp("eval_data")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name).mkdir()
        for group in (1, 8):
            frames = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
            write_video(root / name / f"v_{name}_g{group:02d}_c01.avi", frames, codec="mpeg4")
    broken = root / "Biking" / "v_Biking_g02_c01.avi"
    broken.write_bytes(b"RIFF" + bytes(500))
    torch.manual_seed(0)
    model = get_model("frame_avg_s", num_classes=3)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor([0.0, 8.0, 0.0]))
    ckpt = root / "run" / "checkpoint_best.pt"
    save_checkpoint(ckpt, {
        "model": model.state_dict(), "optimizer": None, "scheduler": None, "scaler": None, "epoch": 2,
        "config": {"data": {"root": str(root), "num_workers": 0, "num_frames": 4, "size": 32},
                   "model": {"name": "frame_avg_s"}},
        "model_name": "frame_avg_s", "num_classes": 3, "classes": CLASSES, "best_top1": 0.0, "metrics": {},
        "preprocess": {"num_frames": 4, "stride": 2, "sampling": "dense", "size": 32, "resize": None,
                       "mean": list(MEAN), "std": list(STD), "fps": 25.0},
    })
    return root, ckpt, broken


def test_evaluate_checkpoint_counts_the_unreadable_video(dataset):
    _, ckpt, broken = dataset
    r = evaluate_checkpoint(ckpt, ["eval.num_clips=3", "eval.batch_size=2"], device="cpu")
    assert r["num_videos"] == 4 and r["num_views"] == 12
    assert r["skipped"] == [str(broken)]
    assert r["top1"] == 0.25  # Biking's readable video; the broken Biking video counts wrong
    assert r["mean_class_acc"] == pytest.approx(0.5 / 3)
    assert r["per_class"]["Biking"] == {"top1": 0.5, "num_videos": 2, "correct": 1, "unreadable": 1}
    assert r["protocol"]["num_clips"] == 3 and r["protocol"]["stride"] == 2 and r["epoch"] == 2


def test_evaluate_checkpoint_refuses_a_dataset_with_other_classes(dataset, tmp_path):
    _, ckpt, _ = dataset
    for name in ("Archery", "Bowling"):
        (tmp_path / name).mkdir()
        write_video(tmp_path / name / f"v_{name}_g01_c01.avi", np.zeros((4, 32, 32, 3), np.uint8), codec="mpeg4")
        write_video(tmp_path / name / f"v_{name}_g09_c01.avi", np.zeros((4, 32, 32, 3), np.uint8), codec="mpeg4")
    with pytest.raises(DatasetError, match="classes differ"):
        evaluate_checkpoint(ckpt, [f"data.root={tmp_path}"])
    with pytest.raises(ConfigError, match="did you mean 'eval.num_clips'"):
        evaluate_checkpoint(ckpt, ["eval.num_clip=3"])
    with pytest.raises(ConfigError, match="eval.cuda_graph: replays CUDA graphs, and this test runs on the cpu"):
        evaluate_checkpoint(ckpt, ["eval.cuda_graph=true"], device="cpu")


def test_test_tool_writes_json_and_confusion_png(dataset, tmp_path):
    _, ckpt, broken = dataset
    out = tmp_path / "metrics.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "test.py"), "--checkpoint", str(ckpt), "--json", str(out),
         "eval.num_clips=2", "eval.three_crop=true"],
        check=False, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert {"top1", "top5", "mean_class_acc", "clip_top1", "num_videos", "skipped", "per_class", "confusion"} <= set(r)
    assert r["num_views"] == 4 * 2 * 3 and r["skipped"] == [str(broken)]
    assert r["confusion"] == [[0, 1, 0, 0], [0, 1, 0, 1], [0, 1, 0, 0]]
    assert (tmp_path / "metrics.confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "top-1 (video)" in proc.stdout and "25.00%" in proc.stdout
    assert str(broken) in proc.stderr and "Traceback" not in proc.stderr


def test_test_tool_checks_its_outputs_before_evaluating_and_replaces_only_its_own(dataset, tmp_path, capsys,
                                                                                   monkeypatch):
    from vidrcnn.cli import run_tool
    from vidrcnn.engine import evaluate as evaluate_module

    _, ckpt, _ = dataset
    tool = load_tool("test")
    evaluated = []
    real = evaluate_module.evaluate_checkpoint
    monkeypatch.setattr(evaluate_module, "evaluate_checkpoint", lambda *a, **k: evaluated.append(1) or real(*a, **k))
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}')
    missing = tmp_path / "no_such_folder" / "m.json"
    for args, cause in (([f"--json={mine}"], "already exists; pass --overwrite"),
                        ([f"--json={missing}"], "does not exist"),
                        ([f"--json={tmp_path / 'm.json'}", f"--confusion={ckpt}"], "is an input")):
        assert run_tool(tool.main, ["--checkpoint", str(ckpt), "--quiet", *args]) == 2
        assert cause in capsys.readouterr().err
    assert evaluated == [] and mine.read_text() == '{"my": "notes"}'
    # Its own results are replaced on a rerun without --overwrite; a foreign file only with it.
    out = tmp_path / "m.json"
    for extra in ([], [], [f"--confusion={tmp_path / 'user.png'}", "--overwrite"]):
        if extra:
            (tmp_path / "user.png").write_bytes(b"\x89PNG not a real picture")
        assert run_tool(tool.main, ["--checkpoint", str(ckpt), "--quiet", f"--json={out}", *extra]) == 0
    assert len(evaluated) == 3 and json.loads(out.read_text())["top1"] == pytest.approx(0.25)
    assert (tmp_path / "user.png").stat().st_size > 1000


def test_a_test_set_holding_training_videos_is_refused(dataset, tmp_path):
    from vidrcnn.engine.checkpoint import load_checkpoint

    _, ckpt, _ = dataset
    state = load_checkpoint(ckpt)
    held_out = tmp_path / "held_out.pt"
    save_checkpoint(held_out, {**state, "train_videos": [f"{c}/v_{c}_g08_c01.avi" for c in CLASSES]})
    r = evaluate_checkpoint(held_out, ["eval.num_clips=1"], device="cpu")
    assert r["protocol"]["checked_against_training_videos"] is True
    leaked = tmp_path / "leaked.pt"  # as if trained on a split whose training set holds this split's test videos
    save_checkpoint(leaked, {**state, "train_videos": ["Biking/v_Biking_g01_c01.avi", "Diving/v_Diving_g08_c01.avi"]})
    with pytest.raises(DatasetError, match=r"1 of the 4 test videos \(e.g. Biking/v_Biking_g01_c01.avi\) are among"):
        evaluate_checkpoint(leaked, ["eval.num_clips=1"], device="cpu")
    assert evaluate_checkpoint(ckpt, ["eval.num_clips=1"], device="cpu")["protocol"][
        "checked_against_training_videos"] is False  # an old checkpoint: not checked, and the result says so


def test_overrides_that_cannot_apply_to_a_trained_checkpoint_are_refused(dataset):
    _, ckpt, _ = dataset
    for override in ("model.name=c3d_s", "model.kwargs.dropout=0.5", "train.lr=0.1", "seed=3", "data.flip=true"):
        with pytest.raises(ConfigError, match="cannot apply when testing a trained checkpoint"):
            evaluate_checkpoint(ckpt, [override], device="cpu")


def test_a_missing_gpu_is_one_config_error_before_any_work(dataset):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the refusal is what a machine without one must show
    _, ckpt, _ = dataset
    with pytest.raises(ConfigError, match="cuda requested but torch sees no GPU"):
        evaluate_checkpoint(ckpt, [], device="cuda")


def test_a_test_set_with_no_readable_video_is_an_error_not_a_result(dataset, tmp_path):
    import shutil

    root, ckpt, _ = dataset
    copy = tmp_path / "data"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("run"))
    for video in copy.rglob("*_g0[1-7]_*.avi"):
        video.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(DatasetError, match="unreadable, as are all 4 test videos"):
        evaluate_checkpoint(ckpt, [f"data.root={copy}", "eval.num_clips=1"], device="cpu")


def test_a_test_video_that_decodes_only_in_part_is_scored_and_listed_with_its_note(dataset, tmp_path, capsys):
    from vidrcnn.cli import run_tool

    _, ckpt, _ = dataset
    root = tmp_path / "data"
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for group in (1, 8):
            write_video(root / name / f"v_{name}_g{group:02d}_c01.avi", np.zeros((10, 32, 32, 3), np.uint8),
                        codec="mpeg4")
    full = tmp_path / "full.mkv"
    write_video(full, np.zeros((240, 32, 32, 3), np.uint8), fps=25)
    cut = root / "Diving" / "v_Diving_g03_c01.mkv"  # a test video cut in half: it decodes, but not all of it
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "test.json"
    assert run_tool(load_tool("test").main, ["--checkpoint", str(ckpt), f"--json={out}", f"data.root={root}"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["num_videos"] == 4 and result["num_skipped"] == 0  # scored, not dropped
    assert list(result["notes"]) == [str(cut)] and result["notes"][str(cut)][0].startswith(
        "the file may be truncated: it promises 9.60 s of video")
    assert "notes            1 videos (scored, but see below)" in printed
    assert f"note: {cut}: the file may be truncated" in printed
