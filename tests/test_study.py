"""The comparison study: aggregation, generated findings, early prediction, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from vidrcnn.errors import VidrcnnError
from vidrcnn.experiments import study, study_report


def _result(model: str, seed: int, top1: float, local: float, order: float, early=None) -> dict:
    return {"model": model, "seed": seed, "top1": top1, "by_kind": {"local": local, "global": order, "static": 1.0},
            "params": 1000, "flops": 2e9, "train_top1": 0.95, "train_seconds": 10.0 + seed, "wall_seconds": 12.0, "early": early,
            "single_frame_ceiling": 6 / 11}


def test_time_to_accuracy_is_the_first_validation_at_the_target_and_its_ratio_to_c3d():
    assert study.seconds_to([[10, 0.5], [20, 0.86], [30, 0.84], [40, 0.9]]) == 20
    assert study.seconds_to([[10, 0.5], [20, 0.8]]) is None
    runs = [{**_result("rcn_gru_s", seed, 0.9, 0.9, 0.9), "curve": [[10, 0.6], [20 + 10 * seed, 0.9]]}
            for seed in (0, 1)]
    runs += [{**_result("c3d_s", seed, 0.9, 0.9, 0.9), "curve": [[5, 0.7], [10, 0.95]]} for seed in (0, 1)]
    runs += [{**_result("rcn_lstm_s", 0, 0.8, 0.8, 0.8), "curve": [[10, 0.5], [20, 0.9]]},
             {**_result("rcn_lstm_s", 1, 0.8, 0.8, 0.8), "curve": [[10, 0.5], [20, 0.8]]},
             {**_result("rcn_rnn_s", 0, 0.5, 0.5, 0.5), "curve": [[10, 0.5]]}]
    rows = {r["model"]: r for r in study.summarize(runs)}
    gru = rows["rcn_gru_s"]["seconds_to_target"]
    assert gru["reached"] == gru["runs"] == 2 and gru["seconds"][0] == pytest.approx(25)
    assert study_report._seconds_cell(rows["rcn_gru_s"]) == "25 ± 7"
    assert study_report._seconds_ratio(rows["rcn_gru_s"], rows["c3d_s"]) == "2.50x"
    assert study_report._seconds_cell(rows["rcn_lstm_s"]) == "20 (1 of 2 seeds)"
    assert study_report._seconds_ratio(rows["rcn_lstm_s"], rows["c3d_s"]) == "—"  # not every seed got there
    assert study_report._seconds_cell(rows["rcn_rnn_s"]) == "not reached"
    assert "seconds_to_target" not in study.summarize([_result("old", 0, 0.5, 0.5, 0.5)])[0]  # no curve recorded


def test_mean_std():
    assert study.mean_std([0.5]) == (0.5, None)
    mean, std = study.mean_std([0.2, 0.4, 0.6])
    assert mean == pytest.approx(0.4) and std == pytest.approx(0.2)


def test_summarize_groups_seeds_per_model_in_order():
    curve = {"all": [0.1, 0.5], "global": [0.0, 0.6]}
    rows = study.summarize([_result("b", 0, 0.5, 0.6, 0.4, curve), _result("a", 0, 0.3, 0.3, 0.3),
                            _result("b", 1, 0.7, 0.8, 0.6, {"all": [0.3, 0.7], "global": [0.2, 0.8]})])
    assert [r["model"] for r in rows] == ["b", "a"]
    b = rows[0]
    assert b["seeds"] == [0, 1]
    assert b["top1"][0] == pytest.approx(0.6) and b["local"][0] == pytest.approx(0.7)
    assert b["train_seconds"][0] == pytest.approx(10.5)
    assert b["early"]["all"] == pytest.approx([0.2, 0.6]) and b["early"]["global"] == pytest.approx([0.1, 0.7])
    assert "early" not in rows[1]  # no early curve: not a causal model


def test_findings_flag_a_control_above_the_single_frame_ceiling():
    ceiling = 6 / 11
    honest = study.summarize([_result("frame_avg_s", s, 0.50 + 0.01 * s, 0.5, 0.5) for s in range(3)])
    text = " ".join(study_report.findings(honest, ceiling, early_at=1))
    assert "no leak found" in text and "54.5%" in text and "points below it" not in text
    under = study.summarize([_result("frame_avg_s", s, 0.30, 0.3, 0.3) for s in range(3)]
                            + [_result("c3d_s", s, 0.90, 0.9, 0.9) for s in range(3)])
    text = " ".join(study_report.findings(under, ceiling, early_at=1))
    assert "no leak found" in text and "24.5 points below it" in text and "frame order: `c3d_s` 90.0" in text
    leaky = study.summarize([_result("frame_avg_s", s, 0.80, 0.8, 0.8) for s in range(3)])
    assert "leak the label" in " ".join(study_report.findings(leaky, ceiling, early_at=1))


def test_findings_say_which_models_are_still_learning():
    fitted = [_result("c3d_s", s, 0.9, 0.9, 0.9) for s in range(2)]
    assert not any(p.startswith("**Budget") for p in study_report.findings(study.summarize(fitted), 6 / 11, early_at=1))
    slow = [{**_result("rcn_gru_s", s, 0.4, 0.4, 0.4), "train_top1": 0.45} for s in range(2)]
    budget = [p for p in study_report.findings(study.summarize(fitted + slow), 6 / 11, early_at=1) if p.startswith("**Budget")]
    assert len(budget) == 1 and "`rcn_gru_s` 45.0 ± 0.0" in budget[0] and "c3d_s" not in budget[0]


def test_findings_only_call_a_model_better_when_the_gap_exceeds_the_spread():
    rows = study.summarize([_result("frame_avg_s", s, 0.5, 0.5, 0.5 + 0.01 * s) for s in range(3)]
                           + [_result("rcn_gru_s", s, 0.9, 0.9, 0.9) for s in range(3)]
                           + [_result("c3d_s", s, 0.5, 0.5, 0.5 + 0.1 * s) for s in range(3)])
    order = next(p for p in study_report.findings(rows, 6 / 11, early_at=1) if p.startswith("**Long-range order"))
    assert order.index("`rcn_gru_s`") < order.index("`c3d_s`")  # ranked best first
    assert "control by more than the seed spread of both: `rcn_gru_s`." in order  # c3d_s is within its spread


class _LateModel(nn.Module):
    """A causal stand-in that predicts the right label (stored in the clip's pixels) only from frame 3 on."""

    is_causal = True

    def stream(self, x, state=None):
        b, _, t = x.shape[:3]
        logits = torch.zeros(b, t, 4)
        labels = x[:, 0, 0, 0, 0].long()
        logits[:, 2:, :] = nn.functional.one_hot(labels, 4).float()[:, None]
        logits[:, :2, 3] = 1.0  # before frame 3: always class 3
        return logits, state


def test_early_accuracy_per_frame_and_per_kind():
    labels = torch.tensor([0, 1, 3, 2])
    video = labels.float().view(4, 1, 1, 1, 1).expand(4, 3, 5, 2, 2).clone()
    batch = {"video": video, "label": labels, "ok": torch.tensor([True, True, True, False])}
    curves = study.early_accuracy(_LateModel(), [batch], kinds=["local", "local", "global", "static"])
    assert curves["all"] == pytest.approx([0.25, 0.25, 0.75, 0.75, 0.75])
    assert curves["local"] == pytest.approx([0.0, 0.0, 1.0, 1.0, 1.0])
    assert curves["static"] == pytest.approx([1.0] * 5)  # label 3: what the model says before frame 3, too
    assert curves["global"] == pytest.approx([0.0] * 5)  # its only video is unreadable: counted wrong


def test_tiny_study_end_to_end_and_resume(tiny_synthetic, tmp_path):
    data = tiny_synthetic
    out, doc = tmp_path / "runs", tmp_path / "docs" / "results.md"
    overrides = ["train.epochs=1", "data.num_workers=0"]
    results = study.run_study(data, out, models=["rcn_rnn_s", "frame_avg_s"], seeds=[0], overrides=overrides)
    assert [r["model"] for r in results] == ["rcn_rnn_s", "frame_avg_s"]
    rnn, frame = results
    assert rnn["num_videos"] == 77 and set(rnn["by_kind"]) == {"local", "global", "static"}
    assert len(rnn["early"]["all"]) == 16 and frame["early"] is None
    # The streaming prediction after the whole clip is the model's clip prediction (last-step head).
    assert rnn["early"]["all"][-1] == pytest.approx(rnn["top1"])
    assert 0.0 <= rnn["train_top1"] <= 1.0
    assert len(rnn["curve"]) == 1 and rnn["curve"][0][0] == pytest.approx(rnn["train_seconds"])  # validated each epoch
    assert rnn["params"] > 0 and rnn["flops"] > 0 and rnn["single_frame_ceiling"] == pytest.approx(6 / 11)

    stamp = (out / "rcn_rnn_s" / "seed0" / "checkpoint_last.pt").stat().st_mtime_ns
    again = study.run_study(data, out, models=["rcn_rnn_s"], seeds=[0], overrides=overrides)
    assert again[0] == json.loads(json.dumps(rnn))  # read back from result.json, not retrained
    assert (out / "rcn_rnn_s" / "seed0" / "checkpoint_last.pt").stat().st_mtime_ns == stamp
    with pytest.raises(VidrcnnError, match="result.json was produced with overrides"):  # never a stale result
        study.run_study(data, out, models=["rcn_rnn_s"], seeds=[0], overrides=["train.epochs=2", "data.num_workers=0"])

    study_report.write_report(results, doc, command="python tools/study.py ...")
    text = doc.read_text(encoding="utf-8")
    assert "| `rcn_rnn_s` |" in text and "(ceiling 54.5)" in text and "## Findings" in text
    assert (doc.parent / "img" / "results_early.png").stat().st_size > 0
    assert (doc.parent / "img" / "results_confusion.png").stat().st_size > 0
    assert "](img/results_early.png)" in text and "](img/results_confusion.png)" in text
    assert "| s to 85% val | ÷ c3d_s |" in text and "## Time to accuracy" in text
    assert (doc.parent / "img" / "results_time_to_accuracy.png").stat().st_size > 0
