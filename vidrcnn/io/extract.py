"""Frame extraction: a video written out as a folder of numbered images that :class:`~vidrcnn.io.frames.FrameFolderDecoder`
reads back (``tools/extract_frames.py`` runs it over a dataset)."""

from __future__ import annotations

import json
import os
import re

import torch

from vidrcnn.errors import VideoDecodeError
from vidrcnn.io.backends import open_video
from vidrcnn.io.frames import META, quiet_image_codecs

_FRAME = re.compile(r"^img_\d{5,}\.(?:jpg|png)$")


def _encode_png(image: torch.Tensor) -> torch.Tensor:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buf, format="PNG", compress_level=1)
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def source_record(video: str | os.PathLike, *, fmt: str, quality: int, name: str | None = None) -> dict:
    """What a frame folder records of its source in ``meta.json``, so that a resumed extraction can tell its own
    frames from another video's: the source's name (``name``, e.g. its path under the dataset root), size and
    modification time, and the image format and JPEG quality."""
    stat = os.stat(video)
    return {"source": name if name is not None else os.fspath(video), "source_size": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns, "format": fmt, "quality": quality if fmt == "jpg" else None}


def extract_frames(video: str | os.PathLike, target: str | os.PathLike, *, fmt: str = "jpg", quality: int = 90,
                   name: str | None = None) -> int:
    """Write every frame of ``video`` into ``target`` as ``img_00001.<fmt>`` ..., then ``meta.json`` (last, so a
    folder without it is unfinished) with the frame rate, the count and :func:`source_record`; returns the count.

    Frames an earlier extraction left in ``target`` are removed first. A video that cannot be read leaves no folder
    behind (and, read half-way, none of its frames)."""
    from torchvision.io import encode_jpeg, write_file

    target = os.fspath(target)
    record = source_record(video, fmt=fmt, quality=quality, name=name)
    created = not os.path.isdir(target)
    count = 0
    with open_video(video) as decoder:  # opened first: an unreadable video makes no folder
        os.makedirs(target, exist_ok=True)
        _remove_frames(target, with_meta=True)
        try:
            for chunk in decoder.iter_frames(32):
                images = list(chunk.permute(0, 3, 1, 2).contiguous())  # (3, H, W) each
                with quiet_image_codecs():
                    data = encode_jpeg(images, quality=quality) if fmt == "jpg" else [_encode_png(i) for i in images]
                    for d in data:
                        count += 1
                        write_file(os.path.join(target, f"img_{count:05d}.{fmt}"), d)
            if count == 0:
                raise VideoDecodeError(os.fspath(video), "no frames could be decoded")
        except BaseException:
            _remove_frames(target, with_meta=False)
            if created and not os.listdir(target):
                os.rmdir(target)
            raise
        fps = decoder.fps
    with open(os.path.join(target, META), "w", encoding="utf-8") as f:
        json.dump({"fps": fps, "num_frames": count, **record}, f)
    return count


def _remove_frames(target: str, *, with_meta: bool) -> None:
    """The numbered frames this module writes (and ``meta.json``), nothing else."""
    for entry in os.listdir(target):
        if _FRAME.match(entry) or (with_meta and entry == META):
            os.unlink(os.path.join(target, entry))


__all__ = ["extract_frames", "source_record"]
