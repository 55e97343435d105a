"""The `vidrcnn` command: its help lists every subcommand, each subcommand is a tool's main under its own name, and
tools/ are thin wrappers over those mains (no tool imports another)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from vidrcnn import cli

TOOLS = Path(__file__).resolve().parents[1] / "tools"
SCRIPT = {"scan": "scan_videos"}  # the subcommands whose tools/ script has another name


def test_help_lists_every_command_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name, (_, line) in cli.COMMANDS.items():
        assert f"  {name} " in out and line in out


@pytest.mark.parametrize("argv", [[], ["trian"], ["--frobnicate"]])
def test_no_or_an_unknown_command_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2 and "usage: vidrcnn" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_command_is_its_tools_main(name, capsys):
    module = importlib.import_module(f"vidrcnn.commands.{cli.COMMANDS[name][0]}")
    assert "prog" in inspect.signature(module.main).parameters
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: vidrcnn {name} ")
    script = TOOLS / f"{SCRIPT.get(name, name.replace('-', '_'))}.py"
    assert f"vidrcnn.commands.{cli.COMMANDS[name][0]}" in script.read_text(encoding="utf-8")


def test_tools_are_thin_wrappers_that_never_import_each_other():
    scripts = sorted(TOOLS.glob("*.py"))
    assert {p.stem for p in scripts} == {SCRIPT.get(n, n.replace("-", "_")) for n in cli.COMMANDS}
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 45, path
        imported = [n.module for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom) and n.module]
        assert not any(m.startswith("tools") for m in imported), path


def test_the_demo_says_its_labels_mean_nothing_on_a_real_video(tmp_path, monkeypatch, capsys):
    """The demo's steps as a user runs them (each `vidrcnn` command recorded, not run), and the note after the real
    video's labels: the synthetic classes cannot describe real footage."""
    from vidrcnn.commands import demo

    steps = []

    def run(step, args):
        steps.append(args[0])
        if args[0] == "test":  # what `vidrcnn test --json` would write
            Path(args[args.index("--json") + 1]).write_text('{"top1": 0.9}')

    data = tmp_path / "synthetic"
    (data / "ucfTrainTestlist").mkdir(parents=True)
    (data / "classes.json").write_text("[]")
    (data / "ucfTrainTestlist" / "testlist01.txt").write_text("ZoomIn/v_ZoomIn_g01_c01.avi\n")
    (tmp_path / "rcn_gru_s").mkdir()
    monkeypatch.setattr(demo, "_run", run)
    monkeypatch.setattr(demo, "_real_video", lambda: tmp_path / "bikes.mp4")
    assert demo.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert steps == ["train", "test", "infer", "infer"]
    assert demo.REAL_VIDEO_NOTE in out and "mean nothing" in out
    assert "test top-1 90.0%" in out
