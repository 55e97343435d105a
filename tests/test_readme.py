"""Every shell command of the README runs, in its order, on tiny data: the README cannot drift from the code.

Each command is run as written, in a fresh folder, with at most the arguments of ``ON_TINY_DATA`` appended (a
small synthetic dataset, one epoch, few timed calls). Tools run in-process through their ``main`` (no start-up of
a subprocess each); a pipe runs through the shell, and the server in its own process until it has answered.
A README command this file does not know fails the test, so a new or changed command must be looked at here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from toolrun import load_tool
from videos import mpegts_command

from vidrcnn.cli import run_tool

REPO = Path(__file__).resolve().parents[1]
TINY_SYNTHETIC = ["--groups", "8", "--clips-per-group", "1", "--frames", "16"]
# What each README command gets appended on tiny data, keyed by the command's first words.
ON_TINY_DATA = {
    "make demo": None,  # run as `vidrcnn demo` on a tiny dataset made beforehand, for one epoch: see _demo
    "python tools/make_synthetic.py": TINY_SYNTHETIC,
    "python tools/scan_videos.py": [],
    "python tools/train.py": ["train.epochs=1", "data.num_workers=0"],
    "python tools/test.py": [],
    "python tools/infer.py": [],
    "ffmpeg": [],
    "python tools/export.py": [],
    "python tools/profile.py": ["--lengths", "4,8", "--iters", "1", "--warmup", "0", "--threads", "1"],
    "vidrcnn serve": None,  # see _serve
}
NOT_RUN = {"make test": "it runs this test suite"}


def readme_commands() -> list[str]:
    """The commands of the README's ``bash`` blocks, in order, without their comments."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.DOTALL)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _key(command: str) -> str:
    known = [k for k in [*ON_TINY_DATA, *NOT_RUN] if command == k or command.startswith(k + " ")]
    assert known, f"README command not run by tests/test_readme.py: {command!r} (add it to ON_TINY_DATA)"
    return max(known, key=len)


def _tool(argv: list[str], extra: list[str]) -> None:
    assert argv[0] == "python" and argv[1].startswith("tools/"), argv
    name = Path(argv[1]).stem
    assert run_tool(load_tool(name).main, [*argv[2:], *extra]) == 0, f"README command failed: {shlex.join(argv)}"


def _pipe(command: str) -> None:
    left, right = (part.strip() for part in command.split("|"))
    if shutil.which("ffmpeg") is None and left.startswith("ffmpeg"):
        left = shlex.join(mpegts_command(1.6))  # 40 frames, as fast as they encode
    right = right.replace("python tools/", f"{shlex.quote(sys.executable)} {REPO}/tools/", 1)
    run = subprocess.run(f"{left} | {right}", shell=True, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and "error" not in run.stderr, run.stderr[-2000:]
    assert run.stdout.strip(), "the live stream printed nothing"


def _serve(argv: list[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "vidrcnn.cli", *argv[1:], "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/v1/health", timeout=1) as answer:
                    assert json.loads(answer.read())["status"] == "ok"
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.1)
        else:
            pytest.fail("vidrcnn serve did not answer in 30 s")
        with urllib.request.urlopen(url, timeout=5) as page:
            assert b"<html" in page.read().lower()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _demo(tmp_path: Path, monkeypatch) -> None:
    from vidrcnn import cli
    from vidrcnn.commands import demo

    def step(name: str, args: list[str]) -> None:  # each step's `vidrcnn` command, in this process
        assert cli.main(args) == 0, f"demo step {name} failed: vidrcnn {shlex.join(args)}"

    out = tmp_path / "demo"
    assert run_tool(load_tool("make_synthetic").main, [str(out / "synthetic"), *TINY_SYNTHETIC]) == 0
    monkeypatch.setattr(demo, "_run", step)
    assert run_tool(load_tool("demo").main, ["--out", str(out), "--epochs", "1"]) == 0
    assert (out / "rcn_gru_s" / "test.json").is_file()


def test_every_readme_command_is_known_here():
    commands = readme_commands()
    assert len(commands) >= 10
    for command in commands:
        _key(command)


def test_the_readme_has_at_most_150_lines():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


def test_every_readme_command_runs_on_tiny_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    (tmp_path / "configs").symlink_to(REPO / "configs")  # the README's paths are relative to a checkout
    threads = torch.get_num_threads()
    for command in readme_commands():
        key = _key(command)
        if key in NOT_RUN:
            continue
        if key == "make demo":
            _demo(tmp_path, monkeypatch)
        elif "|" in command:
            _pipe(command)
        elif key == "vidrcnn serve":
            _serve(shlex.split(command))
        else:
            _tool(shlex.split(command), ON_TINY_DATA[key])
    capsys.readouterr()
    assert torch.get_num_threads() == threads  # no tool leaves its caller's thread count changed
    assert (tmp_path / "zoom.mp4").stat().st_size > 0 and (tmp_path / "runs" / "gru" / "model.onnx").is_file()
    assert json.loads((tmp_path / "runs" / "gru" / "test.json").read_text())["top1"] >= 0
