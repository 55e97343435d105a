"""Checkpoints saved by an earlier vidrcnn still load and give the same logits: tiny models of every recurrent cell,
written at git a0a2e3b (tests/fixtures/saved_checkpoints, with the logits they gave then on a fixed input). A change
to the cells' parameter names or equations fails here, not silently in a user's old run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidrcnn.engine.checkpoint import load_checkpoint, model_from_checkpoint
from vidrcnn.inference.predictor import load_predictor

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "saved_checkpoints"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["models"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_saved_checkpoint_loads_and_gives_its_logits(name):
    model = model_from_checkpoint(load_checkpoint(FIXTURES / f"{name}.pt")).eval()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        logits, (per_frame, _) = model(x), model.stream(x)
    assert torch.allclose(logits, torch.tensor(EXPECTED[name]["logits"]), atol=1e-5)
    assert torch.allclose(per_frame, torch.tensor(EXPECTED[name]["stream"]), atol=1e-5)
    assert load_predictor(FIXTURES / f"{name}.pt").classes == ["a", "b", "c"]
