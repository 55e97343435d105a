"""Clip transforms: uint8 (T, H, W, 3) in, normalised float (C, T, H, W) out."""

from __future__ import annotations

import pickle

import pytest
import torch
from torchvision.models.video import R3D_18_Weights

from vidrcnn.data.transforms import MEAN, STD, build_transform


def ramp_clip(t: int = 4, h: int = 40, w: int = 80) -> torch.Tensor:
    """Identical frames whose red channel rises left to right: shows crops and flips."""
    x = torch.linspace(0, 255, w).round().to(torch.uint8)
    frame = torch.zeros(h, w, 3, dtype=torch.uint8)
    frame[..., 0] = x
    frame[..., 1] = 100
    return frame.expand(t, h, w, 3).clone()


def test_mean_std_are_the_ones_torchvision_video_models_use():
    ref = R3D_18_Weights.KINETICS400_V1.transforms()
    assert list(MEAN) == pytest.approx(ref.mean) and list(STD) == pytest.approx(ref.std)


def test_eval_output_layout_values_and_short_side_resize():
    clip = torch.full((5, 30, 60, 3), 200, dtype=torch.uint8)
    out = build_transform(train=False, size=24, resize=36)(clip)
    assert out.shape == (3, 5, 24, 24) and out.dtype == torch.float32
    expected = (200 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), expected, atol=1e-4)


def test_centre_crop_takes_the_middle_of_the_long_side():
    out = build_transform(train=False, size=40, mean=(0, 0, 0), std=(1, 1, 1))(ramp_clip(h=40, w=80))
    red = out[0, 0, 0]  # first row of frame 0: columns 20..59 of the ramp
    assert red[0].item() == pytest.approx(20 / 79, abs=0.02) and red[-1].item() == pytest.approx(59 / 79, abs=0.02)


def test_train_crop_and_flip_are_shared_by_all_frames_and_flip_is_off_by_default():
    torch.manual_seed(0)
    clip = ramp_clip()
    plain = build_transform(train=True, size=32)
    flipping = build_transform(train=True, size=32, flip=True)
    directions = set()
    for _ in range(30):
        for transform, record in ((plain, False), (flipping, True)):
            out = transform(clip)
            assert torch.equal(out[:, :1].expand_as(out), out)  # one crop/flip for the whole clip
            rising = bool(out[0, 0, 0, -1] > out[0, 0, 0, 0])
            if record:
                directions.add(rising)
            else:
                assert rising  # never flipped: a flip would turn a left-moving action into a right-moving one
    assert directions == {True, False}


def test_train_crops_move_and_eval_is_deterministic():
    torch.manual_seed(0)
    clip = ramp_clip()
    train = build_transform(train=True, size=32)
    assert len({round(train(clip)[0, 0, 0, 0].item(), 4) for _ in range(20)}) > 1
    test = build_transform(train=False, size=32)
    assert torch.equal(test(clip), test(clip))


def test_three_crop_gives_start_centre_end_of_the_long_side():
    out = build_transform(train=False, size=40, three_crop=True)(ramp_clip(h=40, w=80))
    assert out.shape == (3, 3, 4, 40, 40)
    reds = [out[k, 0].mean().item() for k in range(3)]
    assert reds[0] < reds[1] < reds[2]
    tall = build_transform(train=False, size=20, three_crop=True)(torch.zeros(2, 50, 20, 3, dtype=torch.uint8))
    assert tall.shape == (3, 3, 2, 20, 20)


def test_transform_survives_pickling_for_dataloader_workers():
    t = pickle.loads(pickle.dumps(build_transform(train=False, size=16, resize=20)))
    assert t(torch.zeros(2, 30, 40, 3, dtype=torch.uint8)).shape == (3, 2, 16, 16)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"train": True, "size": 32, "three_crop": True},
        {"train": False, "size": 32, "resize": 16},
        {"train": False, "size": 8, "mean": (0.5,)},
    ],
)
def test_invalid_options_raise(kwargs):
    with pytest.raises(ValueError):
        build_transform(**kwargs)


def test_rejects_non_uint8_or_channels_first_input():
    t = build_transform(train=False, size=8)
    with pytest.raises(ValueError, match="uint8"):
        t(torch.zeros(2, 16, 16, 3))
    with pytest.raises(ValueError, match="uint8"):
        t(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
