"""Rendering: the labels of a :class:`~vidrcnn.inference.scoring.VideoPrediction` drawn onto the video, written as a new file.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from vidrcnn.inference.scoring import VideoPrediction
from vidrcnn.io import VideoWriter, open_video
from vidrcnn.outputs import atomic_output, check_output_file

_H264 = ("libx264", {"preset": "veryfast"})


OUTPUT_CODECS = {".mp4": _H264, ".mkv": _H264, ".mov": _H264, ".avi": ("mpeg4", {})}  # by output suffix


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
