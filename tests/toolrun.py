"""Load a script of tools/ by path, to call its main() in-process (no subprocess start-up). Tools are scripts, not a
package; each call executes the file anew, so a test gets a module of its own."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_then_test(root: Path, out: Path, *data: str) -> dict:
    """``tools/train.py`` for one epoch of the frame control on the dataset at ``root`` (with ``data`` overrides),
    then ``tools/test.py`` on its last checkpoint; returns the test JSON. Each tool must exit 0."""
    import json

    from vidrcnn.cli import run_tool

    args = [f"data.root={root}", *data, "data.size=32", "data.num_frames=4", "data.sampling=segments",
            "data.num_workers=0", "model.name=frame_avg_s", "train.batch_size=8", "train.epochs=1", "train.device=cpu"]
    assert run_tool(load_tool("train").main, ["--out", str(out), *args]) == 0
    assert run_tool(load_tool("test").main, ["--checkpoint", str(out / "checkpoint_last.pt"), "--json",
                                             str(out / "test.json"), "--quiet"]) == 0
    return json.loads((out / "test.json").read_text())
