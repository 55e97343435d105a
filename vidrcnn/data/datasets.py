"""The map-style clip dataset and its collate functions; the samples come from :func:`vidrcnn.data.splits.build_split`.

``VideoClipDataset`` opens no decoder and probes nothing at construction: each ``__getitem__`` opens the video,
samples indices from the count that decoder reports, decodes them, closes the video. That makes it DataLoader-safe
with any number of workers (nothing unpicklable is held) and keeps a 13,000-video dataset free to construct.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from vidrcnn.data.formats.common import Sample
from vidrcnn.data.sampling import dense_clip, segment_clip, segment_clips, uniform_clips
from vidrcnn.errors import DatasetError, VideoDecodeError
from vidrcnn.io import VideoInfo, open_video, probe_video

__all__ = ["VideoClipDataset", "collate", "collate_repeats"]

log = logging.getLogger(__name__)

SAMPLINGS = ("dense", "segments")
ON_ERROR = ("skip", "raise")


class VideoClipDataset(Dataset):
    """Clips of ``num_frames`` frames from ``samples`` (``(path, label)`` pairs), transformed by ``transform``.

    ``sampling="dense"``: ``num_frames`` frames ``stride`` apart, at a random start (train) or centred (eval);
    ``"segments"``: TSN, one frame from each of ``num_frames`` equal segments of the whole video (``stride`` unused).
    With ``train=False`` and ``num_clips=K > 1`` each item holds K clips (evenly spaced dense clips, or K offsets
    within the segments), stacked as ``(K, C, T, H, W)``; a transform that returns several crops (three-crop) adds
    to that first dimension (``(K * crops, C, T, H, W)``).

    Repeated augmentation (``train=True``, ``repeats=K > 1``, MMAction2's RepeatAugDataset): each item samples K
    clip positions, decodes the union of their frames in one call, and transforms each clip on its own (its own crop
    and flip), stacked as ``(K, C, T, H, W)``; :func:`collate_repeats` folds them into the batch. The video is
    opened and decoded once for the K clips.

    Items are dicts: ``video`` float ``(C, T, H, W)`` (or stacked as above), ``label`` int, ``index`` int (the sample
    actually returned), ``path`` str, ``ok`` bool, ``skipped`` list[str] (unreadable paths passed over for this item).

    Unreadable videos (any :class:`VideoDecodeError`):

    - train: logged once per process with its path, then another sample is drawn (deterministically from the item
      index and the epoch (:meth:`set_epoch`), up to ``max_retries`` times) and the bad path is reported in ``skipped``, so the engine can count and
      summarise; a path found bad is not opened again by this process. ``on_error="raise"`` re-raises instead.
    - eval: the item has ``ok=False`` and an all-zero video, so it counts as a wrong answer instead of silently
      vanishing from the test set. ``on_error="raise"`` re-raises.

    Wrong frame counts: indices are sampled from the opened decoder's ``num_frames``. If that decoder then fails on
    the sampled indices (a container that claims more frames than it holds), the dataset decodes the video once
    sequentially to count the frames it really has, remembers that count for the path (per process), samples again
    within it and decodes those; only a video with no decodable frame at all is treated as unreadable.

    ``probe_cache`` (a :class:`vidrcnn.io.ProbeCache`) is used only by :meth:`video_info` (e.g. to report clip
    lengths); ``__getitem__`` never probes, the decoder it opens knows the count.
    """

    def __init__(
        self,
        samples: Sequence[Sample | tuple[str, int]],
        *,
        num_frames: int,
        stride: int = 1,
        sampling: str = "dense",
        train: bool,
        transform: Callable[[torch.Tensor], torch.Tensor],
        num_clips: int = 1,
        on_error: str = "skip",
        backend: str = "auto",
        probe_cache: Any = None,
        max_retries: int = 10,
        repeats: int = 1,
    ):
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        if num_frames < 1 or stride < 1 or num_clips < 1:
            raise ValueError(f"need num_frames, stride, num_clips >= 1, got {num_frames}, {stride}, {num_clips}")
        if train and num_clips != 1:
            raise ValueError("num_clips > 1 is for testing (train=False); a train item is one random clip")
        if repeats < 1 or (repeats > 1 and not train):
            raise ValueError(f"repeats must be >= 1, and > 1 only with train=True (repeated augmentation), got {repeats}")
        self.samples = [Sample(os.fspath(p), int(label)) for p, label in samples]
        self.num_frames, self.stride, self.sampling = num_frames, stride, sampling
        self.train, self.transform, self.num_clips = train, transform, num_clips
        self.on_error, self.backend, self.probe_cache = on_error, backend, probe_cache
        self.max_retries, self.repeats = max_retries, repeats
        # Per-process memory (each DataLoader worker has its own copy): warned/bad paths, corrected frame counts.
        self._bad: set[str] = set()
        self._warned: set[str] = set()
        self._true_counts: dict[str, int] = {}
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Seed the substitutes for unreadable training videos from ``epoch`` (call before each epoch's loader)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]

    def video_info(self, i: int) -> VideoInfo:
        """Metadata of sample ``i`` through ``probe_cache`` (or a direct probe without one); raises VideoDecodeError."""
        path = self.samples[i].path
        return self.probe_cache.get(path) if self.probe_cache is not None else probe_video(path)

    # -- sampling and decoding -------------------------------------------------------------------------------------
    def clip_indices(self, num_frames: int, rng: random.Random | None) -> list[list[int]]:
        """The clips (lists of frame indices) an item takes from a video of ``num_frames`` frames."""
        if self.train:  # one random clip, or `repeats` of them drawn independently
            if self.sampling == "dense":
                return [dense_clip(num_frames, self.num_frames, self.stride, rng) for _ in range(self.repeats)]
            return [segment_clip(num_frames, self.num_frames, rng) for _ in range(self.repeats)]
        if self.sampling == "dense":
            if self.num_clips == 1:
                return [dense_clip(num_frames, self.num_frames, self.stride, None)]
            return uniform_clips(num_frames, self.num_frames, self.stride, self.num_clips)
        if self.num_clips == 1:
            return [segment_clip(num_frames, self.num_frames, None)]
        return segment_clips(num_frames, self.num_frames, self.num_clips)

    def _decode(self, path: str, rng: random.Random | None) -> tuple[torch.Tensor, tuple[str, ...]]:
        """The frames of the sample's clips, and the decoder's notes on the file (e.g. that it may be truncated)."""
        with open_video(path, self.backend) as video:
            return self._frames(video, path, rng), tuple(getattr(video, "notes", ()))

    def _frames(self, video, path: str, rng: random.Random | None) -> torch.Tensor:
        count = min(video.num_frames, self._true_counts.get(path, video.num_frames))
        if count < 1:
            raise VideoDecodeError(path, "the video has no frames")
        flat = [j for clip in self.clip_indices(count, rng) for j in clip]
        try:
            return _get_union(video, flat)
        except VideoDecodeError:
            true_count = _count_decodable(video)
            if not 0 < true_count < count:
                raise  # not a count problem: the video itself is broken
        log.info("%s: container reports %d frames, %d decode; sampling within those", path, count, true_count)
        self._true_counts[path] = true_count
        flat = [j for clip in self.clip_indices(true_count, rng) for j in clip]
        return _get_union(video, flat)

    def _assemble(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: uint8 (K*T, H, W, 3) -> float (C, T, H, W), or stacked (N, C, T, H, W) for several clips/crops.
        k, t = len(frames) // self.num_frames, self.num_frames
        outs = [self.transform(frames[c * t:(c + 1) * t]) for c in range(k)]
        if k == 1:
            return outs[0]
        return torch.cat(outs) if outs[0].ndim == 5 else torch.stack(outs)

    def _zero_video(self) -> torch.Tensor:
        # The shape a readable video would have had, without decoding anything: run the transform on black frames.
        side = int(getattr(self.transform, "resize", 0) or getattr(self.transform, "size", 0) or 256)
        black = torch.zeros((self.num_clips * self.num_frames, side, side, 3), dtype=torch.uint8)
        return torch.zeros_like(self._assemble(black))

    def _warn_once(self, path: str, exc: VideoDecodeError) -> None:
        if path not in self._warned:
            self._warned.add(path)
            action = "skipping it" if self.train else "scoring it as wrong"
            log.warning("unreadable video %s (%s); %s", path, getattr(exc, "cause", exc), action)

    def _item(self, i: int, video: torch.Tensor, ok: bool, skipped: list[str], notes: tuple[str, ...] = ()) -> dict:
        path, label = self.samples[i]
        return {"video": video, "label": label, "index": i, "path": path, "ok": ok, "skipped": skipped,
                "notes": list(notes)}

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self.samples):
            raise IndexError(f"sample index {i} out of range for {len(self.samples)} samples")
        if not self.train:
            path = self.samples[i].path
            try:
                frames, notes = self._decode(path, None)
                return self._item(i, self._assemble(frames), True, [], notes)
            except VideoDecodeError as exc:
                if self.on_error == "raise":
                    raise
                self._warn_once(path, exc)
                return self._item(i, self._zero_video(), False, [])
        # Train: one clip position drawn from torch's generator (seeded per DataLoader worker); replacements for an
        # unreadable video are drawn from a generator seeded by (epoch, i): they do not depend on the worker, and a
        # sample whose substitutes were unreadable in one epoch draws other ones in the next.
        rng = random.Random(int(torch.randint(0, 2**62, ()).item()))
        substitute = random.Random(self.epoch * 1_000_003 + i)
        skipped: list[str] = []
        j = i
        for _ in range(self.max_retries + 1):
            path = self.samples[j].path
            if path not in self._bad:
                try:
                    frames, notes = self._decode(path, rng)
                    return self._item(j, self._assemble(frames), True, skipped, notes)
                except VideoDecodeError as exc:
                    if self.on_error == "raise":
                        raise
                    self._bad.add(path)
                    self._warn_once(path, exc)
            skipped.append(path)
            j = substitute.randrange(len(self.samples))
        raise DatasetError(
            self.samples[i].path,
            f"{len(skipped)} unreadable videos in a row while drawing a substitute for sample {i} "
            f"(skipped: {', '.join(skipped[:3])}...); is the dataset readable at all?",
        )


def _get_union(video, flat: list[int]) -> torch.Tensor:
    """Frames ``flat`` (several clips' indices, concatenated) from one decoder call on their sorted union.

    Clips overlap (repeated training clips, multi-clip tests of a short video): each frame is decoded once, whatever
    the backend does with duplicate indices, and copied to every clip that uses it.
    """
    wanted = sorted(set(flat))
    frames = video.get_frames(wanted)
    if frames.shape[0] != len(wanted):
        raise VideoDecodeError(video.path, f"decoder returned {frames.shape[0]} frames for {len(wanted)} indices")
    if wanted == flat:
        return frames
    at = {j: n for n, j in enumerate(wanted)}
    return frames[[at[j] for j in flat]]


def _count_decodable(video) -> int:
    """Frames a decoder really delivers, decoding sequentially at a tiny size; stops at the first decode error."""
    count = 0
    try:
        for chunk in video.iter_frames(chunk_size=64, size=(8, 8)):
            count += int(chunk.shape[0])
    except VideoDecodeError:
        pass
    return count


def collate(batch: list[dict]) -> dict:
    """Stack items of :class:`VideoClipDataset` into a batch: ``video`` ``(B, C, T, H, W)`` (or ``(B, N, ...)``),
    ``label``/``index`` LongTensor, ``ok`` BoolTensor, ``path`` list, ``skipped`` one flat list for the batch.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    return {
        "video": torch.stack([b["video"] for b in batch]),
        "label": torch.tensor([b["label"] for b in batch], dtype=torch.long),
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
        "path": [b["path"] for b in batch],
        "ok": torch.tensor([bool(b["ok"]) for b in batch], dtype=torch.bool),
        "skipped": [p for b in batch for p in b["skipped"]],
        "notes": [list(b.get("notes", ())) for b in batch],  # per video: what its decoder noted
    }


def collate_repeats(batch: list[dict]) -> dict:
    """Collate items of a ``repeats=K`` training dataset (``video`` ``(K, C, T, H, W)``) into a batch of B x K clips.

    The clips are laid out clip-major, ``(k b)``: the batch is the first clip of every video, then the second, and
    so on, with ``label``, ``index``, ``ok`` and ``path`` repeated to match. Mixup and CutMix pair each clip with its
    neighbour in the batch; in this order that neighbour is a clip of another video (when the batch holds two or
    more), never another view of the same one.
    """
    k = batch[0]["video"].shape[0] if batch else 0
    # One copy, straight into the (k b) order; stacking (b k) and then rearranging would copy the batch twice.
    out = collate([{**b, "video": b["video"][j]} for j in range(k) for b in batch])
    out["skipped"] = [p for b in batch for p in b["skipped"]]  # once per item, not once per clip
    return out
