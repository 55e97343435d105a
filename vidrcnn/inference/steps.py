"""The step generators: a video's frames, in chunks, turned into per-step class probabilities.

Inference on one video of any length: video-level top-K and a timeline of predictions, in bounded memory.

Causal models (``model.is_causal``) run in streaming mode: every ``stride``-th frame goes to
``model.stream(frames, state)`` and the state is carried from chunk to chunk, so the cost per frame does not grow
with the video's length. Each frame fed is one *step*: the prediction after everything seen up to that frame.

Other models run sliding windows of ``num_frames`` frames (``stride`` apart), started every ``window_step`` frames
(default ``num_frames``: back to back, each frame seen once). A video shorter than one window is padded by
repeating its last frame (as ``dense_clip`` pads); frames after the last full window get one more window aligned to
the video's end. Each window is one step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

from vidrcnn.inference.predictor import Transform
from vidrcnn.inference.stream_runner import make_stepper


def _subsample(chunk: torch.Tensor, seen: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames of ``chunk`` whose video index (``seen`` + position) is a multiple of ``stride``, and the indices."""
    first = (-seen) % stride
    return chunk[first::stride], torch.arange(seen + first, seen + chunk.shape[0], stride)


@torch.inference_mode()
def stream_steps(
    model: nn.Module, chunks: Iterable[torch.Tensor], *, transform: Transform, stride: int = 1,
    device: str | torch.device = "cpu", step_mode: str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Causal streaming: yield ``(starts, probs)`` per chunk, one step per frame fed to ``model.stream``.

    ``chunks`` yields uint8 ``(n, H, W, 3)`` frames in order (any chunk sizes); ``starts`` ``(s,)`` are the video
    indices of the frames fed, ``probs`` ``(s, K)`` the per-frame softmax. The state is carried across chunks, so the
    result does not depend on how the video is cut into chunks. ``step_mode``: how the model is stepped
    (:mod:`.stream_runner`; None: a CUDA graph replayed per frame on CUDA, ``model.stream`` per chunk elsewhere).
    """
    stepper = make_stepper(model, step_mode, device)
    seen = 0
    for chunk in chunks:
        picked, starts = _subsample(chunk, seen, stride)
        seen += chunk.shape[0]
        if picked.shape[0] == 0:
            continue
        x = transform(picked)[None].to(device)  # (1, C, s, H, W)
        logits = stepper(x)  # (1, s, K)
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
