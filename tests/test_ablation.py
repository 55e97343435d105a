"""The RCN ablation: variants become config overrides that rebuild the right model; findings follow the numbers."""

from __future__ import annotations

import json

import pytest
from toolrun import load_tool

from vidrcnn.engine.config import load_config
from vidrcnn.errors import VidrcnnError
from vidrcnn.experiments import ablation, variants
from vidrcnn.experiments.study import CONFIGS
from vidrcnn.models import get_model


def test_a_variant_switches_every_option_explicitly_and_merges_with_the_config_file():
    v = variants.Variant("gru+bn", "rcn_gru_s", {"preact_norm": "batch", "chrono": 16})
    cfg = load_config(CONFIGS / "synthetic_rcn_gru_s.yaml", v.all_overrides())
    assert cfg.model.name == "rcn_gru_s"
    off = {**variants.OFF, **variants.ACTIVATION_OFF, **variants.INIT_OFF["gru"]}  # the GRU has tanh to replace
    assert cfg.model.kwargs == {**off, "preact_norm": "batch", "chrono": 16}
    model = get_model(cfg.model.name, num_classes=11, **cfg.model.kwargs)
    assert type(model.layers[0].cell.input_norm).__name__ == "BatchNorm2d"
    assert model.layers[0].cell.activation == "tanh" and model.stem.module[0][0].stride == (2, 2)  # as before
    ref = variants.Variant("gru", "rcn_gru_s")
    assert load_config(CONFIGS / "synthetic_rcn_gru_s.yaml", ref.all_overrides()).model.kwargs == off
    assert "activation" not in variants.Variant("rcl", "rcn_rcl_s").options()  # RCL has its ReLU by definition
    get_model("rcn_rcl_s", num_classes=11, **variants.Variant("rcl", "rcn_rcl_s").options())
    assert ref.describe() == "reference" and "chrono=16" in v.describe()
    assert variants.Variant("c3d", "c3d_s").all_overrides() == []  # the rcn options are not the 3-D CNN's
    labels = [v.label for v in variants.VARIANTS]
    assert len(labels) == len(set(labels))  # labels name the run folders: no two variants share one


@pytest.mark.parametrize("cell", sorted(variants.POOLED_STEM_RELU))
def test_the_spelled_out_defaults_rebuild_the_default_model(cell):
    # The leave-one-out rows compare against the builders' defaults: spelled out, they must build the same network.
    # ... with the defaults of docs/reports/time_to_accuracy.md: the coupled ConvLSTM, the minGRU's strided 3-frame stem.
    later = {"lstm": {"coupled": True}, "mingru": {"stem_frames": 3, "stem_downsample": "stride"}}.get(cell, {})
    full = variants.Variant("d", f"rcn_{cell}_s", {**variants.NORMED_RESIDUAL, **variants.POOLED_STEM_RELU[cell], **later})
    assert repr(get_model(full.model, num_classes=11, **full.options())) == repr(get_model(full.model, num_classes=11))
    one_off = {**full.kwargs, "stem_downsample": {"stride": "pool", "pool": "stride"}[full.kwargs["stem_downsample"]]}
    assert repr(get_model(full.model, num_classes=11, **{**full.options(), **one_off})) != repr(
        get_model(full.model, num_classes=11))


def _r(variant: str, model: str, seed: int, top1: float) -> dict:
    return {"variant": variant, "model": model, "options": variant, "seed": seed, "top1": top1,
            "by_kind": {"local": top1, "global": top1 / 2}, "train_top1": top1, "train_seconds": 10.0,
            "params": 1000, "flops": 1e9}


def test_findings_compare_each_variant_with_its_models_reference():
    rows = ablation.summarize_variants([_r("gru", "rcn_gru_s", 0, 0.40), _r("gru", "rcn_gru_s", 1, 0.44),
                                        _r("gru+bn", "rcn_gru_s", 0, 0.60), _r("gru+bn", "rcn_gru_s", 1, 0.64),
                                        _r("gru+x", "rcn_gru_s", 0, 0.41), _r("gru+x", "rcn_gru_s", 1, 0.45)])
    assert [r["variant"] for r in rows] == ["gru", "gru+bn", "gru+x"]
    assert rows[1]["top1"][0] == pytest.approx(0.62)
    (text,) = ablation.findings(rows)
    assert "`gru+bn` +20.0 points (beyond" in text and "`gru+x` +1.0 points (within" in text
    assert "Best mean: `gru+bn`" in text


def test_the_table_gives_each_variants_seconds_to_the_target_against_the_3d_cnns():
    def timed(variant, model, seed, curve):
        return {**_r(variant, model, seed, 0.9), "curve": curve}

    rows = ablation.summarize_variants([
        timed("c3d", "c3d_s", 0, [[10, 0.5], [20, 0.86]]), timed("c3d", "c3d_s", 1, [[10, 0.9], [20, 0.9]]),
        timed("gru", "rcn_gru_s", 0, [[30, 0.85]]), timed("gru", "rcn_gru_s", 1, [[20, 0.7], [40, 0.9]]),
        timed("lstm", "rcn_lstm_s", 0, [[30, 0.8]]), timed("lstm", "rcn_lstm_s", 1, [[30, 0.9]])])
    table = ablation.variant_table(rows)
    assert table[0].endswith("| train s | s to 85% val | ÷ c3d_s |")
    assert table[2].endswith("| 15 ± 7 | 1.00x |")  # the 3-D CNN: 20 and 10 s
    assert table[3].endswith("| 35 ± 7 | 2.33x |")  # 30 and 40 s over 15
    assert table[4].endswith("| 30 (1 of 2 seeds) | — |")  # no ratio unless every seed reached it
    # Runs without a curve (older versions) keep the table as it was.
    assert ablation.variant_table(ablation.summarize_variants([_r("c3d", "c3d_s", 0, 0.9)]))[0].endswith("| train s |")


def test_tiny_ablation_end_to_end(tiny_synthetic, tmp_path):
    data = tiny_synthetic
    quick = ("train.epochs=1", "data.num_workers=0")
    runs = [variants.Variant("rnn", "rcn_rnn_s", {}, quick),
            variants.Variant("rnn+bn", "rcn_rnn_s", {"preact_norm": "batch"}, quick)]
    results = ablation.run_ablation({32: data}, tmp_path / "runs", variants=runs, seeds=[0])
    assert [r["variant"] for r in results[32]] == ["rnn", "rnn+bn"]
    assert (tmp_path / "runs" / "size32" / "rnn+bn" / "seed0" / "result.json").is_file()
    assert ablation.collect(tmp_path / "runs", runs)[32] == json.loads(json.dumps(results[32]))  # from disk
    doc = tmp_path / "ablation.md"
    ablation.write_report(results, doc, command="python tools/study.py --ablation ...")
    text = doc.read_text(encoding="utf-8")
    changed = [variants.Variant("rnn", "rcn_rnn_s", {"chrono": 16}, quick)]  # same folder, other options
    with pytest.raises(VidrcnnError, match="produced with overrides"):
        ablation.collect(tmp_path / "runs", changed)
    assert "## 32x32 pixels" in text and "| `rnn+bn` | preact_norm=batch; train.epochs=1" in text and "**`rcn_rnn_s`**" in text
    assert "| variant | seeds | FlashHorizontal | FlashVertical | Move | Rotate | Still | Zoom |" in text


def test_pair_accuracy_pools_a_class_with_its_time_reversal():
    classes = ["MoveLeft", "MoveRight", "Still"]
    confusion = [[3, 1, 0], [2, 2, 0], [0, 0, 4]]  # rows: true class
    assert ablation.pair_accuracy({"classes": classes, "confusion": confusion}) == {"Move": 5 / 8, "Still": 1.0}


def test_the_ablation_tool_refuses_bad_arguments_before_any_work(capsys):
    tool = load_tool("study")
    for argv, message in ((["--ablation", "--variants", "gru,nope"], "unknown variant(s): nope"),
                          (["--ablation", "--sizes", "31"], "--sizes must be even"),
                          (["--ablation", "train.epochs=1"], "no config overrides")):
        with pytest.raises(SystemExit) as exc:
            tool.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_single_seed_is_never_called_beyond_the_spread():
    rows = ablation.summarize_variants([_r("c3d", "c3d_s", 0, 0.90), _r("c3d+lr", "c3d_s", 0, 0.95)])
    (text,) = ablation.findings(rows)
    assert "+5.0 points (one seed: no spread" in text and "beyond" not in text


def test_the_study_tool_refuses_a_report_path_that_is_not_a_report_before_any_run(tmp_path, capsys):
    from vidrcnn.cli import run_tool

    tool = load_tool("study")
    mine = tmp_path / "README.md"
    mine.write_text("# my own notes\n")
    for argv in (["--doc", str(mine), "--out", str(tmp_path / "runs")],
                 ["--ablation", "--doc", str(mine), "--out", str(tmp_path / "runs")]):
        assert run_tool(tool.main, argv) == 2
        assert f"error: {mine}: already exists; pass --overwrite" in capsys.readouterr().err
    assert mine.read_text() == "# my own notes\n" and not (tmp_path / "runs").exists()
