"""Video-level scoring and the timeline of one video: ``predict_video`` runs the steps over a whole video.

Video-level scores are the mean of the steps' softmax probabilities: the rule ``tools/test.py`` applies to the K
clips of a test video (softmax averaged over clips), applied to every clip of the video. A causal model was trained
and tested on the prediction after ``num_frames`` frames (its last step, ``head="last"``), so its video-level score
is the mean of its per-frame predictions from the ``num_frames``-th frame fed on (each has at least a training
clip's context), not the final state alone: a long video is judged on all of it, not on its last seconds. A
video shorter than that uses its last step.

Timeline: a step owns the frames from its first new frame up to the next step's (the last step up to the video's
end); a segment is a run of consecutive steps with the same top-1 label, scored by their mean top-1 probability.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from vidrcnn.errors import VideoDecodeError
from vidrcnn.inference.predictor import Predictor
from vidrcnn.inference.steps import stream_steps, window_steps
from vidrcnn.io import open_video


@dataclass
class VideoPrediction:
    """What inference found in one video. ``starts``/``labels``/``scores`` describe the steps (module doc)."""

    video: str
    classes: list[str]
    fps: float
    num_frames: int  # frames decoded
    probs: torch.Tensor  # (K,) video-level: mean of the steps' softmax
    starts: torch.Tensor  # (S,) long: first video frame each step owns
    labels: torch.Tensor  # (S,) long: top-1 class of each step
    scores: torch.Tensor  # (S,) float: its probability
    mode: str  # "stream" or "window"
    frame_stride: int
    notes: list[str] = field(default_factory=list)  # what the caller should know (a truncated file, a short video)
    times: torch.Tensor | None = None  # (num_frames,) each frame's own time in seconds; None: index / fps

    @property
    def duration(self) -> float:
        """Seconds: the last frame's time plus the interval before it (``num_frames / fps`` at a constant rate)."""
        if self.times is None or self.num_frames < 2 or float(self.times[-1]) <= 0:
            return self.num_frames / self.fps
        return float(2 * self.times[-1] - self.times[-2])

    def time_of(self, frame: int) -> float:
        """Seconds from the start to video frame ``frame`` (``num_frames``: the end)."""
        if frame >= self.num_frames:
            return self.duration
        return float(self.times[frame]) if self.times is not None else frame / self.fps

    def topk(self, k: int = 5) -> list[dict[str, Any]]:
        return top_labels(self.probs, self.classes, k)

    def step_at(self, frames: torch.Tensor) -> torch.Tensor:
        """The step owning each video frame index in ``frames``."""
        return (torch.searchsorted(self.starts, frames, right=True) - 1).clamp(min=0)

    def segments(self) -> list[dict[str, Any]]:
        """Runs of steps with the same top-1 label: ``start_s``, ``end_s``, ``label``, ``score`` (mean top-1 prob)."""
        if self.labels.numel() == 0:
            return []
        change = torch.nonzero(self.labels[1:] != self.labels[:-1]).flatten() + 1
        bounds = [0, *change.tolist(), self.labels.numel()]
        ends = torch.cat([self.starts[1:], torch.tensor([self.num_frames])])
        out = []
        for a, b in itertools.pairwise(bounds):
            out.append({
                "start_s": round(self.time_of(int(self.starts[a])), 4),
                "end_s": round(self.time_of(min(int(ends[b - 1]), self.num_frames)), 4),
                "label": self.classes[int(self.labels[a])],
                "score": round(float(self.scores[a:b].mean()), 6),
            })
        return out

    def to_dict(self, k: int = 5) -> dict[str, Any]:
        """The JSON ``tools/infer.py --json`` prints."""
        return {
            "video": self.video,
            "topk": self.topk(k),
            "segments": self.segments(),
            "duration_s": round(self.duration, 4),
            "num_frames": self.num_frames,
            "fps": self.fps,
            "mode": self.mode,
            "frame_stride": self.frame_stride,
            "notes": list(self.notes),
        }


class _Counted:
    """Wraps the decoder's chunk iterator to count the frames (and show progress on a terminal)."""

    def __init__(self, chunks: Iterable[torch.Tensor], total: int | None, progress: bool):
        self.chunks, self.total, self.progress, self.frames = chunks, total, progress, 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total, unit="frame", file=sys.stderr, disable=None, leave=False)
        try:
            for chunk in self.chunks:
                self.frames += chunk.shape[0]
                if bar is not None:
                    bar.update(chunk.shape[0])
                yield chunk
        finally:
            if bar is not None:
                bar.close()


def top_labels(probs: torch.Tensor, classes: list[str], k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` best of ``probs`` ``(K,)`` as ``{"label", "score"}``, best first (the JSON ``tools/infer.py`` prints)."""
    values, indices = probs.topk(min(k, probs.numel()))
    return [{"label": classes[i], "score": round(float(v), 6)} for v, i in zip(values, indices.tolist())]


class StepMean:
    """Running mean of step probabilities after the first ``warmup`` steps (the last step if there are no more)."""

    def __init__(self, num_classes: int, warmup: int = 0):
        self.total = torch.zeros(num_classes, dtype=torch.float64)
        self.count = 0
        self.seen = 0
        self.warmup = warmup
        self.last: torch.Tensor | None = None

    def add(self, probs: torch.Tensor) -> None:
        """``probs`` ``(s, K)``: the next ``s`` steps."""
        used = probs[max(0, self.warmup - self.seen) :]
        self.total += used.double().sum(0)
        self.count += used.shape[0]
        self.seen += probs.shape[0]
        if probs.shape[0]:
            self.last = probs[-1]

    def mean(self) -> torch.Tensor:
        if self.count:
            return (self.total / self.count).float()
        return self.last.float() if self.last is not None else self.total.float()


def predict_video(
    predictor: Predictor, path: str | os.PathLike, *, chunk_size: int = 32, window_step: int | None = None,
    batch_size: int = 8, backend: str = "auto", progress: bool = False, step_mode: str | None = None,
) -> VideoPrediction:
    """Run ``predictor`` over the whole video at ``path`` (decoded ``chunk_size`` frames at a time); ``step_mode``
    steps a causal model (:mod:`.stream_runner`: None is a CUDA graph per frame on CUDA, whole chunks elsewhere)."""
    path = os.fspath(path)
    with open_video(path, backend) as decoder:
        notes = list(getattr(decoder, "notes", ()))  # e.g. a file that promises more than it holds
        times = decoder.frame_times() if hasattr(decoder, "frame_times") else None
        fps = float(decoder.fps) if decoder.fps and decoder.fps > 0 else 25.0
        stride = predictor.frame_stride(fps)
        chunks = _Counted(decoder.iter_frames(chunk_size), decoder.num_frames, progress)
        common = {"transform": predictor.transform, "stride": stride, "device": predictor.device}
        if predictor.is_causal:
            steps = stream_steps(predictor.model, chunks, step_mode=step_mode, **common)
        else:
            steps = window_steps(predictor.model, chunks, num_frames=predictor.num_frames, window_step=window_step,
                                 batch_size=batch_size, **common)
        # A causal model learnt to classify after num_frames frames: its first num_frames - 1 steps (less context
        # than any training clip) stay out of the video-level mean, unless the video has no later step.
        warmup = predictor.num_frames - 1 if predictor.is_causal else 0
        video_probs = StepMean(len(predictor.classes), warmup)
        starts, labels, scores = [], [], []
        for step_starts, probs in steps:
            video_probs.add(probs)
            top = probs.max(1)
            starts.append(step_starts)
            labels.append(top.indices)
            scores.append(top.values)
    if chunks.frames == 0 or not starts:
        raise VideoDecodeError(path, "no video frames could be decoded")
    seen = -(-chunks.frames // stride)  # frames the model saw, at its spacing
    if seen < predictor.num_frames:
        spacing = f" ({seen} at the model's spacing of {stride})" if stride > 1 else ""
        notes.append(f"{chunks.frames} frames{spacing}, shorter than the model's {predictor.num_frames}-frame clip; "
                     + ("its prediction has less context than any training clip" if predictor.is_causal else
                        "the last frame is repeated to fill the clip"))
    return VideoPrediction(
        video=path, classes=predictor.classes, fps=fps, num_frames=chunks.frames, probs=video_probs.mean(),
        starts=torch.cat(starts).long(), labels=torch.cat(labels), scores=torch.cat(scores),
        mode="stream" if predictor.is_causal else "window", frame_stride=stride, notes=notes,
        times=torch.tensor(times[: chunks.frames], dtype=torch.float64)
        if times is not None and len(times) >= chunks.frames else None,
    )


def format_topk(prediction: VideoPrediction, k: int = 5, max_segments: int = 30) -> str:
    """Human-readable top-K and the timeline (its first ``max_segments`` segments; the JSON has them all)."""
    lines = [f"{prediction.video}: {prediction.num_frames} frames, {prediction.duration:.1f} s ({prediction.mode})"]
    lines += [f"note: {note}" for note in prediction.notes]
    lines += [f"  {entry['score']:.3f}  {entry['label']}" for entry in prediction.topk(k)]
    segments = prediction.segments()
    if len(segments) > 1:
        lines.append(f"timeline ({len(segments)} segments):")
        lines += [f"  {s['start_s']:8.2f}-{s['end_s']:8.2f} s  {s['label']} ({s['score']:.2f})"
                  for s in segments[:max_segments]]
        if len(segments) > max_segments:
            lines.append(f"  ... {len(segments) - max_segments} more (--json lists all)")
    return "\n".join(lines)
