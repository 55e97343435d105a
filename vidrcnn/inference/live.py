"""Live sources for ``tools/infer.py``: a camera, a network stream or a pipe, predicted frame by frame.

A source is live (:func:`is_live`) when it is ``-`` (a stream piped on stdin, e.g. ``ffmpeg ... -f mpegts -``), a
camera device (``/dev/video0``, PyAV's v4l2 input) or a URL PyAV opens (``rtsp://``, ``http://``, ``udp://``, ...).
Its frames are decoded as they arrive and resampled by their timestamps to the model's spacing (``stride`` frames
of the training frame rate, 25 fps when the checkpoint does not record it); each kept frame is one step of the
causal model's ``stream`` with carried state, so the cost per frame and the memory stay the same however long the
stream runs (nothing is kept per frame: the video-level scores are a running mean, as in vidrcnn/inference/scoring.py).

Latency: *model* is the time of one step; *lag* is how far the prediction is behind the source, the wall-clock time
since the first frame minus the stream time since it. When the lag exceeds ``max_lag_s`` the model cannot keep up:
frames are dropped (counted) instead of falling further behind, until the lag is back under the bound; the summary
says how many and how to keep them (a larger ``--max-lag``). A source ahead of real time (a file through ffmpeg
without ``-re``, or a plain file served over ``http://``) has a lag of 0 and loses nothing that way.

Timeouts: a source that sends nothing for ``timeout_s`` (``--timeout``), at the start or mid-stream, ends the run
with that said in words, not FFmpeg's "Immediate exit requested".
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vidrcnn.errors import VideoDecodeError

if TYPE_CHECKING:  # torch is imported where it runs: tools/infer.py answers argument errors without it
    import numpy as np
    from torch import Tensor

    from vidrcnn.inference.scoring import StepMean

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://", "rtp://")


def is_live(source: str) -> bool:
    return source == "-" or source.startswith("/dev/video") or source.lower().startswith(URL_SCHEMES)


def _cause(exc: BaseException, timeout_s: float) -> str:
    """FFmpeg's words for a failure, or, for its interrupt on a timeout, what happened."""
    import av

    from vidrcnn.io.av_container import describe

    if isinstance(exc, av.ExitError) or "Immediate exit requested" in str(exc):
        return f"nothing received for {timeout_s:g} s: timed out (--timeout sets how long to wait)"
    return describe(exc)


def open_live(source: str, *, timeout_s: float = 10.0):
    """``av.open`` on a live source, every failure a :class:`VideoDecodeError` naming it."""
    import av

    from vidrcnn.io.av_container import AV_ERRORS

    try:
        if source == "-":
            return av.open(sys.stdin.buffer, mode="r")
        if source.startswith("/dev/video"):
            return av.open(source, mode="r", format="v4l2")
        return av.open(source, mode="r", timeout=timeout_s)
    except AV_ERRORS as exc:
        raise VideoDecodeError("stdin" if source == "-" else source,
                               f"cannot open the live source ({_cause(exc, timeout_s)})") from None


def live_frames(container, source: str, *, timeout_s: float = 10.0) -> Iterator[tuple[float, np.ndarray]]:
    """``(time in seconds, RGB frame (H, W, 3) uint8)`` of the first video stream, as they are decoded; ``timeout_s``
    is the one ``open_live`` was given (for the words of a stall)."""
    from vidrcnn.io.av_container import AV_ERRORS

    if not container.streams.video:
        raise VideoDecodeError("stdin" if source == "-" else source, "no video stream")
    stream = container.streams.video[0]
    rate = float(stream.average_rate or 25)
    try:
        for i, frame in enumerate(container.decode(stream)):
            t = frame.time if frame.time is not None else i / rate
            yield float(t), frame.to_ndarray(format="rgb24")
    except AV_ERRORS as exc:  # a stream that breaks off ends the predictions; the summary still comes
        print(f"warning: {'stdin' if source == '-' else source}: the stream broke off ({_cause(exc, timeout_s)})",
              file=sys.stderr)


@dataclass
class LiveStats:
    """What a live run has seen so far; :meth:`summary` is the dict printed at the end."""

    classes: list[str]
    warmup: int
    decoded: int = 0
    fed: int = 0
    dropped: int = 0
    model_s: float = 0.0
    max_lag_s: float = -math.inf
    first_t: float | None = None
    last_t: float = 0.0
    # The video-level scores, as for a file: the mean of the steps after the warm-up (vidrcnn/inference/scoring.py)
    probs: StepMean = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from vidrcnn.inference.scoring import StepMean

        self.probs = StepMean(len(self.classes), self.warmup)

    def topk(self, k: int) -> list[dict[str, Any]]:
        from vidrcnn.inference.scoring import top_labels

        return top_labels(self.probs.mean(), self.classes, k) if self.fed else []

    def summary(self, k: int) -> dict[str, Any]:
        return {"frames_decoded": self.decoded, "frames_fed": self.fed, "frames_dropped": self.dropped,
                "stream_s": round(self.last_t - (self.first_t or 0.0), 3),
                "model_ms_per_frame": round(1e3 * self.model_s / self.fed, 3) if self.fed else None,
                "max_lag_s": round(self.max_lag_s, 3) if self.fed else None, "peak_rss_mb": _peak_rss_mb(),
                "topk": self.topk(k)}


def _peak_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports kilobytes)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class LiveStream:
    """One live stream through the causal ``predictor``, frame by frame, with its own carried state (a server holds
    one per connection): :meth:`admit` says whether a frame at stream time ``t`` is fed (resampled to the model's
    spacing; dropped, and counted, when the model is more than ``max_lag_s`` behind), :meth:`step` feeds it and
    returns a report every ``every_s`` of stream time (see :func:`predict_live`). ``stats`` is updated as frames come.
    ``step_mode``: how the model is stepped (:mod:`.stream_runner`; None: a CUDA graph on CUDA)."""

    def __init__(self, predictor, stats: LiveStats, *, every_s: float = 1.0, max_lag_s: float = 1.0,
                 clock: Callable[[], float] = time.perf_counter, step_mode: str | None = None):
        from vidrcnn.inference.stream_runner import make_stepper

        self.predictor, self.stats, self.every_s, self.max_lag_s, self.clock = predictor, stats, every_s, max_lag_s, clock
        self.interval = predictor.frame_interval_s
        self.stepper = make_stepper(predictor.model, step_mode, predictor.device)
        self.next_t = self.next_report = 0.0
        self.wall0 = 0.0
        self.lag = 0.0
        self.window_s, self.window_n = 0.0, 0

    def admit(self, t: float) -> bool:
        """Count a frame at stream time ``t``; True when it is to be fed to the model (then call :meth:`step`)."""
        stats = self.stats
        stats.decoded += 1
        if stats.first_t is None:
            stats.first_t, self.wall0, self.next_t, self.next_report = t, self.clock(), t, t
        stats.last_t = t
        if t + 1e-6 < self.next_t:
            return False  # between two model frames
        self.next_t = _next_mark(self.next_t, t, self.interval)
        # a source ahead of real time is not behind
        self.lag = max(0.0, (self.clock() - self.wall0) - (t - stats.first_t))
        if self.lag > self.max_lag_s:
            stats.dropped += 1
            return False
        return True

    def step(self, t: float, rgb: np.ndarray | Tensor) -> dict[str, Any] | None:
        """Feed the admitted frame ``rgb`` ``(H, W, 3)`` uint8 at stream time ``t``; the report when one is due: ``t``
        (stream seconds), the current ``label`` and ``score`` (the last step's top-1), ``model_ms`` (mean step time
        since the last report), ``lag_s`` and the ``dropped`` count so far."""
        import torch

        stats, predictor, clock = self.stats, self.predictor, self.clock
        start = clock()
        with torch.inference_mode():
            frame = torch.as_tensor(rgb)[None]
            x = predictor.transform(frame)[None].to(predictor.device)  # (1, C, 1, H, W)
            logits = self.stepper(x)
            probs = logits[0, -1].float().softmax(-1).cpu()
        spent = clock() - start
        stats.model_s += spent
        self.window_s, self.window_n = self.window_s + spent, self.window_n + 1
        stats.fed += 1
        stats.max_lag_s = max(stats.max_lag_s, self.lag)
        stats.probs.add(probs[None])
        if t + 1e-6 < self.next_report:
            return None
        score, index = probs.max(0)
        report = {"t": round(t - stats.first_t, 3), "label": stats.classes[int(index)], "score": round(float(score), 4),
                  "model_ms": round(1e3 * self.window_s / self.window_n, 3), "lag_s": round(self.lag, 3),
                  "dropped": stats.dropped}
        self.window_s, self.window_n = 0.0, 0
        self.next_report = _next_mark(self.next_report, t, self.every_s)
        return report


def _next_mark(mark: float, t: float, period: float) -> float:
    """The first of ``mark``, ``mark + period``, ... after time ``t``. Step by step as a stream goes (the marks a run
    has always used); a jump of more than a thousand periods (a stream's clock that leaps, or a client's absurd time)
    is computed at once, so that no time a source sends can hold the loop for long."""
    if t + 1e-6 - mark > 1000 * period:
        return mark + (math.floor((t + 1e-6 - mark) / period) + 1) * period
    while mark <= t + 1e-6:
        mark += period
    return mark


def predict_live(predictor, frames: Iterable[tuple[float, np.ndarray]], stats: LiveStats, *, every_s: float = 1.0,
                 max_lag_s: float = 1.0, clock: Callable[[], float] = time.perf_counter,
                 step_mode: str | None = None) -> Iterator[dict[str, Any]]:
    """Feed ``frames`` to the causal ``predictor`` at its spacing through one :class:`LiveStream`; yield its report
    every ``every_s`` of stream time."""
    stream = LiveStream(predictor, stats, every_s=every_s, max_lag_s=max_lag_s, clock=clock, step_mode=step_mode)
    for t, rgb in frames:
        if stream.admit(t) and (report := stream.step(t, rgb)) is not None:
            yield report


__all__ = ["LiveStats", "LiveStream", "is_live", "live_frames", "open_live", "predict_live"]
