"""Inference on one video of any length: video-level top-K and a timeline of predictions, in bounded memory.

Frames are decoded in chunks (``decoder.iter_frames(chunk_size)``) and consumed as they come: at any time at most
one decoded chunk and one window of model-ready frames are held, however long the video. What grows with the video
is only the timeline (a start frame, a label and a score per step, 20 bytes) and the list of segments.

Frame spacing. A model was trained on frames ``stride`` apart (``preprocess["stride"]`` in the checkpoint). When the
checkpoint also records the training videos' frame rate (``preprocess["fps"]``), the stride is rescaled to this
video's rate so that a clip spans the same time; otherwise it is used as is (UCF101 and the synthetic set are 25 fps).
For ``sampling="segments"`` (TSN) models the training spacing depended on each training video's length; the
checkpoint records the typical one (``preprocess["segment_stride"]``: the median training video length over
``num_frames``) and that is used, rescaled the same way (older checkpoints without it fall back to ``stride``).

Causal models (``model.is_causal``) run in streaming mode: every ``stride``-th frame goes to
``model.stream(frames, state)`` and the state is carried from chunk to chunk, so the cost per frame does not grow
with the video's length. Each frame fed is one *step*: the prediction after everything seen up to that frame.

Other models run sliding windows of ``num_frames`` frames (``stride`` apart), started every ``window_step`` frames
(default ``num_frames``: back to back, each frame seen once). A video shorter than one window is padded by
repeating its last frame (as ``dense_clip`` pads); frames after the last full window get one more window aligned to
the video's end. Each window is one step.

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vidrcnn.engine.checkpoint import load_checkpoint, model_from_checkpoint
from vidrcnn.engine.distributed import resolve_device
from vidrcnn.errors import CheckpointError, VideoDecodeError
from vidrcnn.io import VideoWriter, open_video
from vidrcnn.outputs import atomic_output, check_output_file

Transform = Callable[[torch.Tensor], torch.Tensor]  # uint8 (T, H, W, 3) -> float (C, T, H, W)
REQUIRED_KEYS = ("model", "model_name", "num_classes", "classes", "preprocess")
_H264 = ("libx264", {"preset": "veryfast"})
OUTPUT_CODECS = {".mp4": _H264, ".mkv": _H264, ".mov": _H264, ".avi": ("mpeg4", {})}  # by output suffix


@dataclass
class Predictor:
    """A model with what it needs to read raw frames: class names, eval transform, clip length and spacing."""

    model: nn.Module
    classes: list[str]
    transform: Transform
    num_frames: int
    stride: int = 1
    train_fps: float | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    name: str = ""  # the registered model name
    preprocess: dict[str, Any] = field(default_factory=dict)  # as the checkpoint recorded it

    @property
    def is_causal(self) -> bool:
        return bool(getattr(self.model, "is_causal", False))

    def frame_stride(self, video_fps: float) -> int:
        """Frames of this video between two frames the model sees (the training stride, rescaled by frame rate)."""
        if self.train_fps and video_fps > 0:
            return max(1, round(self.stride * video_fps / self.train_fps))
        return max(1, self.stride)


def model_stride(preprocess: dict[str, Any]) -> int:
    """Frames between two frames the model saw in training: ``stride``, or ``segment_stride`` for a segments model."""
    if preprocess.get("sampling") == "segments" and preprocess.get("segment_stride"):
        return int(preprocess["segment_stride"])
    return int(preprocess.get("stride") or 1)


def load_predictor(checkpoint: str | os.PathLike, *, device: str | torch.device = "cpu",
                   weights: str | None = None) -> Predictor:
    """Load a training checkpoint for inference; every problem with it is a ``CheckpointError`` naming the file.

    ``device="auto"`` picks CUDA when available. ``weights``: ``"ema"`` or ``"raw"``; None takes the checkpoint's
    default (its EMA of the weights when it was trained with one).
    """
    path = os.fspath(checkpoint)
    ckpt = load_checkpoint(path)
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"not a vidrcnn training checkpoint (missing {', '.join(missing)})")
    device = resolve_device(device)
    # Imported only now: it pulls in torchvision (seconds), which a missing or corrupt file need not wait for.
    from vidrcnn.data.transforms import build_transform

    try:
        model = model_from_checkpoint(ckpt, weights=weights)
        pre = ckpt["preprocess"]
        transform = build_transform(
            train=False, size=int(pre["size"]), resize=pre.get("resize"),
            **{k: pre[k] for k in ("mean", "std") if pre.get(k) is not None},
        )
        predictor = Predictor(
            model=model.to(device).eval(), classes=[str(c) for c in ckpt["classes"]], transform=transform,
            num_frames=int(pre["num_frames"]), stride=model_stride(pre),
            train_fps=float(pre["fps"]) if pre.get("fps") else None, device=torch.device(device),
            name=str(ckpt["model_name"]), preprocess=dict(pre),
        )
    except CheckpointError as exc:
        if exc.path is None:  # model_from_checkpoint sees only the dict: name the file here
            raise CheckpointError(path, exc.cause) from None
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(path, f"incompatible checkpoint ({type(exc).__name__}: {exc})") from None
    if len(predictor.classes) != int(ckpt["num_classes"]):
        raise CheckpointError(path, f"{len(predictor.classes)} class names for {ckpt['num_classes']} classes")
    if predictor.is_causal and not hasattr(model, "stream"):
        raise CheckpointError(path, f"model {ckpt['model_name']!r} is causal but has no stream()")
    return predictor


def _subsample(chunk: torch.Tensor, seen: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames of ``chunk`` whose video index (``seen`` + position) is a multiple of ``stride``, and the indices."""
    first = (-seen) % stride
    return chunk[first::stride], torch.arange(seen + first, seen + chunk.shape[0], stride)


@torch.inference_mode()
def stream_steps(
    model: nn.Module, chunks: Iterable[torch.Tensor], *, transform: Transform, stride: int = 1,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Causal streaming: yield ``(starts, probs)`` per chunk, one step per frame fed to ``model.stream``.

    ``chunks`` yields uint8 ``(n, H, W, 3)`` frames in order (any chunk sizes); ``starts`` ``(s,)`` are the video
    indices of the frames fed, ``probs`` ``(s, K)`` the per-frame softmax. The state is carried across chunks, so the
    result does not depend on how the video is cut into chunks.
    """
    state = None
    seen = 0
    for chunk in chunks:
        picked, starts = _subsample(chunk, seen, stride)
        seen += chunk.shape[0]
        if picked.shape[0] == 0:
            continue
        x = transform(picked)[None].to(device)  # (1, C, s, H, W)
        logits, state = model.stream(x, state)  # (1, s, K)
        yield starts, logits[0].float().softmax(-1).cpu()


@torch.inference_mode()
def window_steps(
    model: nn.Module, chunks: Iterable[torch.Tensor], *, transform: Transform, num_frames: int, stride: int = 1,
    window_step: int | None = None, batch_size: int = 8, device: str | torch.device = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Sliding windows: yield ``(starts, probs)`` as windows complete, one step per window (see the module doc).

    A window is ``num_frames`` frames ``stride`` apart; windows start every ``window_step`` such frames
    (``1 <= window_step <= num_frames``). ``starts`` are the video indices of the first frame each window owns,
    ``probs`` ``(w, K)`` its softmax. Only the transformed frames a later window may still need are kept.
    """
    span = num_frames
    step = window_step or span
    if not 1 <= step <= span:
        raise ValueError(f"window_step must be in [1, num_frames={span}], got {step}")
    buf: torch.Tensor | None = None  # (C, m, H, W): transformed frames, subsampled indices first..first+m-1
    first = 0
    count = 0  # subsampled frames so far
    next_start = 0  # subsampled index where the next full window starts
    covered = 0  # end (exclusive) of the last full window
    seen = 0
    for chunk in chunks:
        picked, _ = _subsample(chunk, seen, stride)
        seen += chunk.shape[0]
        if picked.shape[0] == 0:
            continue
        frames = transform(picked)  # (C, s, H, W)
        buf = frames if buf is None else torch.cat([buf, frames], 1)
        count += frames.shape[1]
        starts = []
        while next_start + span <= count:
            starts.append(next_start)
            next_start += step
        if starts:
            clips = [buf[:, s - first : s - first + span] for s in starts]
            yield torch.tensor(starts) * stride, _score(model, clips, batch_size, device)
            covered = starts[-1] + span
        # Keep the next full window's frames and the last `span` (for an end-aligned window); copy, so that the
        # slice does not pin the whole concatenated buffer.
        keep = max(first, min(next_start, count - span))
        buf, first = buf[:, keep - first :].clone(), keep
    if buf is None:
        return
    if covered == 0:  # shorter than one window: pad with the last frame
        idx = torch.arange(span).clamp(max=count - 1)
        yield torch.zeros(1, dtype=torch.long), _score(model, [buf[:, idx]], batch_size, device)
    elif covered < count:  # frames after the last full window
        yield torch.tensor([covered * stride]), _score(model, [buf[:, count - span - first :]], batch_size, device)


def _score(model: nn.Module, clips: list[torch.Tensor], batch_size: int, device) -> torch.Tensor:
    out = [
        model(torch.stack(clips[i : i + batch_size]).to(device)).float().softmax(-1).cpu()
        for i in range(0, len(clips), batch_size)
    ]
    return torch.cat(out)


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

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

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
                "start_s": round(float(self.starts[a]) / self.fps, 4),
                "end_s": round(min(float(ends[b - 1]), self.num_frames) / self.fps, 4),
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
    batch_size: int = 8, backend: str = "auto", progress: bool = False,
) -> VideoPrediction:
    """Run ``predictor`` over the whole video at ``path`` (decoded ``chunk_size`` frames at a time)."""
    path = os.fspath(path)
    with open_video(path, backend) as decoder:
        fps = float(decoder.fps) if decoder.fps and decoder.fps > 0 else 25.0
        stride = predictor.frame_stride(fps)
        chunks = _Counted(decoder.iter_frames(chunk_size), decoder.num_frames, progress)
        common = {"transform": predictor.transform, "stride": stride, "device": predictor.device}
        if predictor.is_causal:
            steps = stream_steps(predictor.model, chunks, **common)
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
    return VideoPrediction(
        video=path, classes=predictor.classes, fps=fps, num_frames=chunks.frames, probs=video_probs.mean(),
        starts=torch.cat(starts).long(), labels=torch.cat(labels), scores=torch.cat(scores),
        mode="stream" if predictor.is_causal else "window", frame_stride=stride,
    )


def draw_label(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 with ``text`` in white on a black band at the top left (PIL's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    try:  # scalable built-in font (Pillow >= 10.1 with FreeType); the bitmap one otherwise
        font = ImageFont.load_default(size=max(10, frame.shape[0] // 24))
    except (TypeError, ValueError, OSError, ImportError):
        font = ImageFont.load_default()
    _, _, right, bottom = draw.textbbox((4, 4), text, font=font)
    draw.rectangle((0, 0, right + 4, bottom + 4), fill=(0, 0, 0))
    draw.text((4, 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def render_video(
    prediction: VideoPrediction, out_path: str | os.PathLike, *, chunk_size: int = 32, backend: str = "auto",
    overwrite: bool = False,
) -> None:
    """Write the video again with each frame's current label and score drawn on it.

    Decodes the video a second time, chunk by chunk, and streams the frames to ``out_path`` (libx264 for .mp4,
    .mkv, .mov; MPEG-4 Part 2 for .avi), so memory stays bounded. Odd frame sizes lose their last row or column
    (4:2:0 encoders need even sizes). ``out_path`` is never the input video, and an existing file is replaced only
    with ``overwrite``; the frames go to a temporary file beside it, renamed at the end, so an interrupted run
    leaves no half file (:mod:`vidrcnn.outputs`).
    """
    out_path = check_output_file(out_path, overwrite=overwrite, inputs=[prediction.video])
    suffix = out_path.suffix.lower()
    if suffix not in OUTPUT_CODECS:
        raise ValueError(f"{out_path}: unsupported output format {suffix!r} (use {', '.join(OUTPUT_CODECS)})")
    codec, options = OUTPUT_CODECS[suffix]
    done = 0
    with atomic_output(out_path) as tmp, open_video(prediction.video, backend) as decoder, VideoWriter(
        tmp, fps=prediction.fps, codec=codec, options=options
    ) as writer:
        for chunk in decoder.iter_frames(chunk_size):
            h, w = chunk.shape[1] // 2 * 2, chunk.shape[2] // 2 * 2
            owners = prediction.step_at(torch.arange(done, done + chunk.shape[0]))
            frames = chunk[:, :h, :w].numpy()
            out = np.stack([
                draw_label(frame, f"{prediction.classes[int(prediction.labels[s])]} {float(prediction.scores[s]):.2f}")
                for frame, s in zip(frames, owners.tolist())
            ])
            writer.write(out)
            done += chunk.shape[0]


def format_topk(prediction: VideoPrediction, k: int = 5, max_segments: int = 30) -> str:
    """Human-readable top-K and the timeline (its first ``max_segments`` segments; the JSON has them all)."""
    lines = [f"{prediction.video}: {prediction.num_frames} frames, {prediction.duration:.1f} s ({prediction.mode})"]
    lines += [f"  {entry['score']:.3f}  {entry['label']}" for entry in prediction.topk(k)]
    segments = prediction.segments()
    if len(segments) > 1:
        lines.append(f"timeline ({len(segments)} segments):")
        lines += [f"  {s['start_s']:8.2f}-{s['end_s']:8.2f} s  {s['label']} ({s['score']:.2f})"
                  for s in segments[:max_segments]]
        if len(segments) > max_segments:
            lines.append(f"  ... {len(segments) - max_segments} more (--json lists all)")
    return "\n".join(lines)

