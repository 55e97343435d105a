"""Frame extraction: a video written out as a folder of numbered images that :class:`~vidrcnn.io.frames.FrameFolderDecoder`
reads back (``tools/extract_frames.py`` runs it over a dataset)."""

from __future__ import annotations

import json
import os

import torch

from vidrcnn.errors import VideoDecodeError
from vidrcnn.io.backends import open_video
from vidrcnn.io.frames import META, quiet_image_codecs


def _encode_png(image: torch.Tensor) -> torch.Tensor:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buf, format="PNG", compress_level=1)
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def extract_frames(video: str | os.PathLike, target: str | os.PathLike, *, fmt: str = "jpg", quality: int = 90) -> int:
    """Write every frame of ``video`` into ``target`` as ``img_00001.<fmt>`` ..., then ``meta.json`` (last, so a
    folder without it is unfinished); returns the frame count."""
    from torchvision.io import encode_jpeg, write_file

    target = os.fspath(target)
    os.makedirs(target, exist_ok=True)
    meta = os.path.join(target, META)
    if os.path.exists(meta):
        os.unlink(meta)
    count = 0
    with open_video(video) as decoder:
        fps = decoder.fps
        for chunk in decoder.iter_frames(32):
            images = list(chunk.permute(0, 3, 1, 2).contiguous())  # (3, H, W) each
            with quiet_image_codecs():
                data = encode_jpeg(images, quality=quality) if fmt == "jpg" else [_encode_png(i) for i in images]
                for d in data:
                    count += 1
                    write_file(os.path.join(target, f"img_{count:05d}.{fmt}"), d)
    if count == 0:
        raise VideoDecodeError(os.fspath(video), "no frames could be decoded")
    with open(meta, "w", encoding="utf-8") as f:
        json.dump({"fps": fps, "num_frames": count, "source": os.fspath(video)}, f)
    return count


__all__ = ["extract_frames"]
