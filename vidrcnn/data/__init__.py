"""Clip sampling, transforms, datasets (UCF101 folders, official splits, annotation lists) and synthetic data.

>>> split = build_split("data/UCF-101", split_dir="data/ucfTrainTestlist", split=1)     # doctest: +SKIP
>>> ds = VideoClipDataset(split.train, num_frames=16, stride=2, train=True,
...                       transform=build_transform(train=True, size=112, resize=128))   # doctest: +SKIP
>>> loader = DataLoader(ds, batch_size=8, num_workers=4, collate_fn=collate)             # doctest: +SKIP
"""

from vidrcnn.data.datasets import VideoClipDataset, collate
from vidrcnn.data.formats.common import Sample, Split
from vidrcnn.data.formats.lists import read_list_file
from vidrcnn.data.sampling import dense_clip, segment_clip, segment_clips, uniform_clips
from vidrcnn.data.splits import build_split
from vidrcnn.data.synthetic import make_synthetic
from vidrcnn.data.synthetic_classes import single_frame_ceiling
from vidrcnn.data.transforms import MEAN, STD, VideoTransform, build_transform

__all__ = [
    "MEAN",
    "STD",
    "Sample",
    "Split",
    "VideoClipDataset",
    "VideoTransform",
    "build_split",
    "build_transform",
    "collate",
    "dense_clip",
    "make_synthetic",
    "read_list_file",
    "segment_clip",
    "segment_clips",
    "single_frame_ceiling",
    "uniform_clips",
]
