"""The project installs as a wheel (``pip install .``, not ``-e``) into a fresh venv and runs from another folder:
``vidrcnn --help``, ``vidrcnn study --help`` and one epoch of ``vidrcnn train`` on a named config that only the
installed package can supply. Nothing is downloaded: the venv reuses the dependencies this interpreter has."""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_the_package_list_names_every_package():
    block = re.search(r"^packages = \[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.DOTALL | re.MULTILINE)[1]
    listed = set(re.findall(r'"([\w.]+)"', block))
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "vidrcnn").rglob("__init__.py")}
    assert listed == found | {"vidrcnn.configs"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding vidrcnn installed from a wheel built from a copy of the checkout; its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a copy: the build writes build/ and *.egg-info beside the sources
    for name in ("vidrcnn", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # The dependencies: this interpreter's site-packages as a plain path entry. Its .pth files (among them the
    # editable install of this checkout) are not run from there, so `vidrcnn` can only come from the wheel.
    (purelib / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
          "--ignore-installed", str(src)], cwd=tmp)
    return venv / "bin"


def test_the_wheel_installs_and_runs_from_another_folder(installed, tiny_synthetic, tmp_path):
    where = _run([str(installed / "python"), "-c", "import vidrcnn; print(vidrcnn.__file__)"], cwd=tmp_path)
    assert Path(where.stdout.strip()).parent.parent.name == "site-packages"  # the installed copy, not the checkout
    help_text = _run([str(installed / "vidrcnn"), "--help"], cwd=tmp_path).stdout
    for command in ("train", "test", "infer", "export", "profile", "study", "scan", "extract-frames",
                    "make-synthetic", "bench-decode", "demo", "serve"):
        assert f"\n  {command} " in help_text
    read_page = ("from importlib import resources; "
                 "print(resources.files('vidrcnn.inference').joinpath('serve_page.html').read_text())")
    page = _run([str(installed / "python"), "-c", read_page], cwd=tmp_path).stdout
    assert "/v1/stream" in page  # the live page of vidrcnn serve ships in the wheel
    assert "--ablation" in _run([str(installed / "vidrcnn"), "study", "--help"], cwd=tmp_path).stdout
    data = tiny_synthetic
    _run([str(installed / "vidrcnn"), "train", "--config", "synthetic_frame_avg_s", "--out", str(tmp_path / "run"),
          f"data.root={data}", "train.epochs=1", "data.num_workers=0", "data.num_frames=4", "train.device=cpu"],
         cwd=tmp_path)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and (tmp_path / "run" / "checkpoint_last.pt").is_file()
