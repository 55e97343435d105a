"""Training-recipe options, piece by piece: Mixup/CutMix of video batches (one mixing per clip), soft-target loss,
the EMA and which weights a checkpoint gives, repeated augmentation (K clips from one decode), their config keys.

The end-to-end runs (fit with each option, EMA resume, test/infer on an EMA checkpoint) are in test_train.py.
"""

from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from videos import frame_number, numbered_frames

import vidrcnn.data.datasets as datasets_module
from vidrcnn.data.datasets import VideoClipDataset, collate_repeats
from vidrcnn.engine.checkpoint import checkpoint_weights, model_from_checkpoint
from vidrcnn.engine.config import load_config
from vidrcnn.engine.evaluate import _check_test_overrides
from vidrcnn.engine.recipe import VideoMix, build_ema, build_mixer, ema_state, load_ema_state, recompute_ema_bn
from vidrcnn.engine.schedule import Schedule
from vidrcnn.engine.state import TrainState
from vidrcnn.engine.train import train_one_epoch
from vidrcnn.engine.train_step import clip_loss
from vidrcnn.errors import CheckpointError, ConfigError
from vidrcnn.io import open_video
from vidrcnn.io.writer import write_video
from vidrcnn.models import get_model

pytestmark = pytest.mark.usefixtures("one_thread")


def clips(b=4, t=5, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, t, 12, 16, generator=g), torch.arange(b)


# -- Mixup / CutMix --------------------------------------------------------------------------------------------------
def test_cutmix_pastes_the_same_box_into_every_frame_of_a_clip():
    x, y = clips()
    torch.manual_seed(3)
    mixed, targets = VideoMix(num_classes=4, cutmix_alpha=1.0)(x, y)
    assert targets.shape == (4, 4) and torch.allclose(targets.sum(1), torch.ones(4))
    assert not torch.equal(targets, F.one_hot(y, 4).float())  # the targets changed
    inside = mixed == x.roll(1, 0)  # (B, C, T, H, W): where the neighbour's pixels were pasted
    box = (mixed != x).any(1).any(1)  # (B, H, W)
    assert box.any()
    for b in range(4):
        for t in range(x.shape[2]):  # the same box on every frame (and channel), from the previous clip
            assert torch.equal((mixed[b, :, t] != x[b, :, t]).any(0), box[b])
            assert inside[b, :, t][:, box[b]].all()
        assert torch.equal(mixed[b][..., ~box[b]], x[b][..., ~box[b]])
        # the soft target is the clip's share of the area: its own label keeps 1 - box area
        assert targets[b, b] == pytest.approx(1 - box[b].float().mean().item())
        assert targets[b, (b - 1) % 4] == pytest.approx(box[b].float().mean().item())


def test_mixup_blends_every_frame_of_a_clip_with_one_lambda():
    x, y = clips()
    torch.manual_seed(0)
    mixed, targets = VideoMix(num_classes=4, mixup_alpha=0.4)(x, y)
    lam = targets[0, 0].item()
    assert 0 < lam < 1 and targets[0, 3].item() == pytest.approx(1 - lam)
    for b in range(4):
        for t in range(x.shape[2]):
            assert torch.allclose(mixed[b, :, t], lam * x[b, :, t] + (1 - lam) * x[b - 1, :, t], atol=1e-6)


def test_mix_prob_and_off_switches():
    x, y = clips()
    assert build_mixer(num_classes=4, mixup_alpha=0.0, cutmix_alpha=0.0, prob=1.0) is None
    assert build_mixer(num_classes=4, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.0) is None
    mixer = build_mixer(num_classes=4, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.5)
    torch.manual_seed(0)
    outcomes = [mixer(x, y) for _ in range(40)]
    mixed = [t.dim() == 2 for _, t in outcomes]
    assert 5 < sum(mixed) < 35  # about half the batches are mixed
    assert all(torch.equal(m, x) and torch.equal(t, y) for (m, t), was in zip(outcomes, mixed) if not was)


def test_soft_targets_in_the_loss_with_label_smoothing_and_per_step_logits():
    logits = torch.randn(3, 4)
    y = torch.tensor([0, 2, 3])
    # a one-hot soft target is the label itself, label smoothing included
    assert torch.allclose(clip_loss(logits, F.one_hot(y, 4).float(), 0.1), clip_loss(logits, y, 0.1))
    soft = torch.tensor([[0.7, 0.3, 0, 0], [0, 0, 0.6, 0.4], [0.5, 0, 0, 0.5]])
    smoothed = soft * 0.9 + 0.1 / 4
    expected = -(smoothed * logits.log_softmax(1)).sum(1).mean()
    assert torch.allclose(clip_loss(logits, soft, 0.1), expected)
    # (B, T, K): every step takes its clip's soft target
    steps = torch.randn(3, 5, 4)
    per_step = torch.stack([clip_loss(steps[:, s], soft) for s in range(5)]).mean()
    assert torch.allclose(clip_loss(steps, soft), per_step)


class StepModel(nn.Module):
    """(B, C, T, H, W) -> per-step logits (B, T, K) in training, as head="steps" models do."""

    def __init__(self, k=4):
        super().__init__()
        self.fc = nn.Linear(3, k)
        self.bn = nn.BatchNorm1d(k)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        out = self.fc(x.mean((3, 4)).transpose(1, 2))  # (B, T, K)
        out = self.bn(out.transpose(1, 2)).transpose(1, 2)
        return out if self.training else out[:, -1]


def run_epoch(model, batches, **kw):
    state = TrainState(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                       schedule=Schedule(0.1, steps_per_epoch=len(batches), epochs=1, min_lr=0.1),  # lr 0.1 throughout
                       device=torch.device("cpu"), autocast=contextlib.nullcontext(),
                       scaler=torch.amp.GradScaler("cpu", enabled=False), **kw)
    return train_one_epoch(state, batches, epoch=1)


def test_the_training_loop_mixes_batches_of_a_per_step_model():
    x, y = clips(b=6, t=4)
    batches = [{"video": x, "label": y % 4, "skipped": []}] * 3
    model = StepModel()
    torch.manual_seed(0)
    mixer = VideoMix(num_classes=4, mixup_alpha=1.0)
    stats = run_epoch(model, batches, mixer=mixer)
    assert stats["clips"] == 18 and all(not torch.equal(seen, x) for seen in model.seen)  # the model saw mixed clips
    assert np.isfinite(stats["loss_sum"])


def test_train_top1_counts_the_dominant_label():
    x, _ = clips(b=2, t=2)

    class Fixed(nn.Module):  # predicts class 1 for every clip, with one parameter to step
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.tensor([[0.0, 5.0, 0, 0]]).repeat(x.shape[0], 1) + self.w

    def mix(clips, labels):  # clip 0 is mostly class 1, clip 1 mostly class 0
        return clips, torch.tensor([[0.3, 0.7, 0, 0], [0.6, 0.4, 0, 0]])

    stats = run_epoch(Fixed(), [{"video": x, "label": torch.tensor([0, 1]), "skipped": []}], mixer=mix)
    assert stats["correct"] == 1  # right on clip 0 by its dominant label 1, wrong on clip 1 (dominant 0)


# -- EMA -------------------------------------------------------------------------------------------------------------
def test_ema_averages_weights_and_batchnorm_buffers_and_restores_exactly():
    torch.manual_seed(0)
    model = StepModel()
    ema = build_ema(model, 0.5)
    assert build_ema(model, None) is None and build_ema(model, 0.0) is None
    x, y = clips(b=6, t=4)
    run_epoch(model, [{"video": x, "label": y % 4, "skipped": []}] * 3, ema=ema)
    assert int(ema.n_averaged) == 3
    raw, avg = model.state_dict(), ema.module.state_dict()
    assert not torch.equal(raw["fc.weight"], avg["fc.weight"])
    assert not torch.equal(raw["bn.running_mean"], avg["bn.running_mean"])  # buffers averaged, not copied
    state = ema_state(ema)
    assert state["weights"] == "ema" and set(state["ema"]) == set(raw) and state["ema_updates"] == 3
    restored = build_ema(StepModel(), 0.5)
    load_ema_state(restored, state)
    assert int(restored.n_averaged) == 3
    assert all(torch.equal(a, b) for a, b in zip(restored.module.state_dict().values(), avg.values()))
    assert ema_state(None) == {"weights": "raw"}
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_ema_state(restored, {"model": raw})


def test_the_ema_gets_batchnorm_statistics_of_its_own_weights():
    torch.manual_seed(0)
    model = StepModel()
    ema = build_ema(model, 0.5)
    x, y = clips(b=6, t=4)
    run_epoch(model, [{"video": x, "label": y % 4, "skipped": []}] * 3, ema=ema)
    weights = {k: v.clone() for k, v in ema.module.state_dict().items() if not k.startswith("bn.running")}
    averaged = ema.module.bn.running_mean.clone()
    a, b = clips(b=6, t=4, seed=1), clips(b=6, t=4, seed=2)
    ok = torch.ones(6, dtype=torch.bool)
    batches = [{"video": a[0], "ok": ok}, {"video": b[0], "ok": ok}, {"video": a[0], "ok": ~ok},  # unreadable: none
               {"video": clips(b=6, t=4, seed=3)[0], "ok": ok}]  # past num_batches
    assert recompute_ema_bn(ema, iter(batches), num_batches=3) == 12
    fc = ema.module.fc
    feats = torch.stack([fc(v.mean((3, 4)).transpose(1, 2)).reshape(-1, 4) for v in (a[0], b[0])]).detach()
    # The EMA's own activations, each batch weighing the same (update_bn's cumulative average of batch statistics).
    assert torch.allclose(ema.module.bn.running_mean, feats.mean((0, 1)), atol=1e-6)
    assert torch.allclose(ema.module.bn.running_var, feats.var(1).mean(0), atol=1e-6)
    assert not torch.allclose(ema.module.bn.running_mean, averaged, atol=1e-3)
    assert all(torch.equal(v, weights[k]) for k, v in ema.module.state_dict().items() if k in weights)
    assert ema.module.bn.momentum == 0.1  # restored after the recomputation
    assert recompute_ema_bn(ema, iter([]), num_batches=3) == 0


def test_a_checkpoint_gives_its_ema_by_default_and_old_checkpoints_their_raw_weights():
    torch.manual_seed(0)
    raw, avg = get_model("frame_avg_s", num_classes=3), get_model("frame_avg_s", num_classes=3)
    ckpt = {"model": raw.state_dict(), "model_name": "frame_avg_s", "num_classes": 3, "config": {}}
    with_ema = {**ckpt, "ema": avg.state_dict(), "ema_updates": 7, "weights": "ema"}
    key = next(iter(raw.state_dict()))

    def loaded(c, **kw):
        return model_from_checkpoint(c, **kw).state_dict()[key]

    assert torch.equal(loaded(with_ema), avg.state_dict()[key]) and checkpoint_weights(with_ema)[0] == "ema"
    assert torch.equal(loaded(with_ema, weights="raw"), raw.state_dict()[key])
    assert torch.equal(loaded(ckpt), raw.state_dict()[key]) and checkpoint_weights(ckpt)[0] == "raw"  # no EMA: raw
    with pytest.raises(CheckpointError, match="no EMA weights"):
        model_from_checkpoint(ckpt, weights="ema")


# -- repeated augmentation ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("repeats") / "numbered.avi"
    write_video(path, numbered_frames(60, 48, 64), fps=25, codec="mpeg4", bit_rate=2_000_000)
    return str(path)


def as_frames(frames: torch.Tensor) -> torch.Tensor:
    """A train transform that keeps the pixels: uint8 (T, H, W, 3) -> float (C, T, H, W)."""
    return frames.permute(3, 0, 1, 2).float()


def frame_ids(clip: torch.Tensor) -> list[int]:
    return [frame_number(clip[:, t].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()) for t in
            range(clip.shape[1])]


def test_repeats_give_k_distinct_clips_from_one_decode(numbered_video, monkeypatch):
    calls: list[list[int]] = []

    class Counting:
        """The real decoder, counting opens and get_frames calls."""

        opens = 0

        def __init__(self, path, backend="auto"):
            Counting.opens += 1
            self._real = open_video(path, backend)
            self.path, self.num_frames = self._real.path, self._real.num_frames

        def get_frames(self, indices, size=None):
            calls.append(list(indices))
            return self._real.get_frames(indices, size)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._real.close()

    monkeypatch.setattr(datasets_module, "open_video", Counting)
    ds = VideoClipDataset([(numbered_video, 1)], num_frames=4, stride=2, train=True, transform=as_frames, repeats=4)
    torch.manual_seed(0)
    item = ds[0]
    assert item["video"].shape == (4, 3, 4, 48, 64)
    assert Counting.opens == 1 and len(calls) == 1  # one open, one decode for the four clips
    ids = [frame_ids(c) for c in item["video"]]
    assert len({tuple(i) for i in ids}) == 4  # four distinct clips
    for i in ids:
        assert [b - a for a, b in itertools.pairwise(i)] == [2, 2, 2]
    assert calls[0] == sorted({j for i in ids for j in i})  # the decoder was asked for the union, each frame once
    # the engine's collate folds the clips into the batch, clip-major: (k b)
    batch = collate_repeats([item, {**item, "label": 0, "index": 5}])
    assert batch["video"].shape == (8, 3, 4, 48, 64) and batch["label"].tolist() == [1, 0] * 4
    assert torch.equal(batch["video"][2], item["video"][1]) and batch["index"].tolist() == [0, 5] * 4
    assert batch["skipped"] == []


def test_each_repeated_clip_gets_its_own_augmentation(numbered_video):
    from vidrcnn.data.transforms import build_transform

    ds = VideoClipDataset([(numbered_video, 0)], num_frames=2, sampling="segments", train=True, repeats=3,
                          transform=build_transform(train=True, size=24, resize=48))
    torch.manual_seed(1)
    video = ds[0]["video"]
    assert video.shape == (3, 3, 2, 24, 24)
    assert not torch.equal(video[0], video[1]) and not torch.equal(video[1], video[2])
    with pytest.raises(ValueError, match="repeats"):
        VideoClipDataset([], num_frames=2, train=False, transform=as_frames, repeats=2)


# -- config -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("override", "words"), [
    ("train.mix_prob=1.5", "train.mix_prob=1.5 (command line): train.mix_prob: must be <= 1.0, got 1.5"),
    ("train.mix_prob=-0.1", "train.mix_prob=-0.1 (command line): train.mix_prob: must be >= 0.0"),
    ("train.mixup_alpha=-1", "train.mixup_alpha=-1 (command line): train.mixup_alpha: must be >= 0.0"),
    ("train.cutmix_alpha=lots", "train.cutmix_alpha=lots (command line): train.cutmix_alpha: expected float"),
    ("train.ema_decay=1", "train.ema_decay=1 (command line): train.ema_decay: must be < 1.0, got 1.0"),
    ("train.ema_decay=-0.5", "train.ema_decay=-0.5 (command line): train.ema_decay: must be >= 0.0"),
    ("data.repeats=0", "data.repeats=0 (command line): data.repeats: must be >= 1, got 0"),
    ("data.repeats=2.5", "data.repeats=2.5 (command line): data.repeats: expected int"),
])
def test_recipe_keys_are_checked(override, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_recipe_key_defaults_and_values():
    cfg = load_config(None, [])
    assert (cfg.train.mixup_alpha, cfg.train.cutmix_alpha, cfg.train.mix_prob, cfg.train.ema_decay,
            cfg.train.ema_bn_batches, cfg.data.repeats) == (0.0, 0.0, 1.0, None, 16, 1)
    cfg = load_config(None, ["train.mixup_alpha=0.8", "train.cutmix_alpha=1", "train.mix_prob=0.5",
                             "train.ema_decay=0.999", "data.repeats=4", "train.ema_decay=null"])
    assert (cfg.train.mixup_alpha, cfg.train.cutmix_alpha, cfg.train.mix_prob, cfg.train.ema_decay,
            cfg.data.repeats) == (0.8, 1.0, 0.5, None, 4)
    with pytest.raises(ConfigError, match="data.repeats"):  # a test has no repeated augmentation
        _check_test_overrides(["data.repeats=2"], "ckpt.pt")
