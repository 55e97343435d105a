"""The training-recipe report (vidrcnn/experiments/recipe_report.py, ``tools/study.py --recipe``): its variants switch on what they
say on the builders' own defaults, a tiny report runs end to end, and the tool refuses bad arguments first."""

from __future__ import annotations

import json
import shutil

import pytest
from toolrun import load_tool

from vidrcnn.cli import run_tool
from vidrcnn.engine.config import load_config
from vidrcnn.errors import VidrcnnError
from vidrcnn.experiments import ablation, recipe_report, variants
from vidrcnn.experiments.study import CONFIGS


def test_each_variant_adds_its_options_to_the_plain_recipe_of_its_model():
    labels = [v.label for v in recipe_report.VARIANTS]
    assert labels == [f"{m}{o}" for m in ("gru", "c3d") for o in ("", "+mixup", "+cutmix", "+ema", "+repeats", "+all")]
    for v in recipe_report.VARIANTS:
        cfg = load_config(CONFIGS / f"synthetic_{v.model}.yaml", ["data.root=/nowhere", *v.size_overrides(64)])
        assert cfg.model.kwargs == {} and cfg.data.size == 64  # the builder's defaults: the recipe is measured
        option = v.label.partition("+")[2]
        on = {"mixup": cfg.train.mixup_alpha > 0, "cutmix": cfg.train.cutmix_alpha > 0,
              "ema": bool(cfg.train.ema_decay), "repeats": cfg.data.repeats > 1}
        assert on == {k: option in (k, "all") for k in on}, v.label


def test_tiny_recipe_report_end_to_end(tiny_synthetic, tmp_path):
    # ablate() finds the dataset of each size at OUT/synthetic<size>
    (tmp_path / "synthetic32").symlink_to(tiny_synthetic, target_is_directory=True)
    quick = ("train.epochs=1", "data.num_workers=0")
    runs = [variants.Variant("c3d", "c3d_s", {}, quick, sizes=(32,), builder_defaults=True),
            variants.Variant("c3d+all", "c3d_s", {}, (*quick, *recipe_report.OPTIONS["all"]), sizes=(32,),
                             builder_defaults=True)]
    doc = ablation.ablate(tmp_path, tmp_path / "recipe.md", sizes=[32], variants=runs, seeds=[0],
                          command="python tools/study.py --recipe ...", pool=runs,
                          report=recipe_report.write_report)
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Training recipe") and "## 32x32 pixels" in text
    assert "| `c3d` | builder defaults; train.epochs=1" in text
    assert "| `c3d+all` | builder defaults; train.epochs=1 data.num_workers=0 train.mixup_alpha=0.2" in text
    assert "**`c3d_s`** (reference `c3d`" in text and "`c3d+all` " in text  # the option against the plain row
    assert "The 2 runs took" in text and "threads." in text  # where they ran, as each run recorded it

    # The ledger beside the report outlives the output folder: from it alone the report regenerates, training nothing.
    ledger = tmp_path / "recipe.runs.jsonl"
    assert [json.loads(line)["variant"] for line in ledger.read_text(encoding="utf-8").splitlines()] == ["c3d", "c3d+all"]
    shutil.rmtree(tmp_path / "size32")
    for train in (True, False):  # asked to train, it finds the runs in the ledger; or asked for the report only
        again = ablation.ablate(tmp_path, doc, sizes=[32], variants=runs, seeds=[0], train=train,
                                command="python tools/study.py --recipe ...", pool=runs,
                                report=recipe_report.write_report)
        assert not (tmp_path / "size32").exists() and again.read_text(encoding="utf-8") == text

    # A damaged ledger is refused by file and line, before any training.
    ledger.write_text(ledger.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    with pytest.raises(VidrcnnError, match=r"recipe\.runs\.jsonl:3: not a JSON line"):
        ablation.ablate(tmp_path, doc, sizes=[32], variants=runs, seeds=[0, 1], command="...", pool=runs,
                        report=recipe_report.write_report)
    assert not (tmp_path / "size32").exists()


def test_the_recipe_tool_refuses_bad_arguments_before_any_work(capsys):
    tool = load_tool("study")
    for argv, message in ((["--recipe", "--variants", "gru,nope"], "unknown variant(s): nope"),
                          (["--recipe", "--ablation"], "two reports"),
                          (["--recipe", "train.epochs=1"], "--recipe takes no config overrides"),
                          (["--report-only"], "--report-only is for --ablation and --recipe")):
        with pytest.raises(SystemExit) as exc:
            tool.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_report_of_no_runs_is_refused_by_name(tmp_path, capsys):
    code = run_tool(load_tool("study").main, ["--recipe", "--report-only", "--out", str(tmp_path / "none"),
                                              "--doc", str(tmp_path / "recipe.md")])
    assert code != 0 and "no finished run in" in capsys.readouterr().err and not (tmp_path / "recipe.md").exists()
