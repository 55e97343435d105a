"""A folder of pre-extracted frames as a video: ``open_video(folder)``, behind the same protocol as the backends.

Layout: ``folder/img_00001.jpg``, ``img_00002.jpg``, ... (JPEG or PNG; the prefix, the digits and the first number
are found from the files, so ``frame_000000.png`` works too), numbered without gaps: frame ``i`` of the video is the
``i``-th file. ``folder/meta.json`` (written by :func:`vidrcnn.io.extract.extract_frames`) gives the frame rate; without it the
rate is unknown (0.0). Only the wanted frames are read and decoded (JPEGs in one batched
``torchvision.io.decode_jpeg`` call). A missing frame file, a gap in the numbering and a corrupt image are
:class:`~vidrcnn.errors.VideoDecodeError`\\ s naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from collections.abc import Iterator, Sequence

import torch

from vidrcnn.errors import VideoDecodeError
from vidrcnn.io.base import DecoderBase, resize_frames

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# torchvision 0.29 deprecates its image codecs in favour of TorchCodec, which is not a dependency here; they still
# work (one batched decode_jpeg call is what this decoder needs), so the warning is not repeated for every frame.
_TV_IMAGE_DEPRECATION = "The image decoding and encoding capabilities of TorchVision are deprecated"


@contextlib.contextmanager
def quiet_image_codecs() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TV_IMAGE_DEPRECATION, category=DeprecationWarning)
        yield
META = "meta.json"
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)(?P<ext>\.(?:jpe?g|png))$", re.IGNORECASE)


def is_frame_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding numbered image files."""
    try:
        with os.scandir(path) as it:
            return any(_NUMBERED.match(e.name) for e in it if e.is_file())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return False


class FrameFolderDecoder(DecoderBase):
    """Frames of a folder of numbered images (module doc)."""

    backend = "frames"

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            raise VideoDecodeError(self.path, "no such frame folder")
        numbered = [(m, name) for name in os.listdir(self.path) if (m := _NUMBERED.match(name))]
        if not numbered:
            raise VideoDecodeError(self.path, f"no numbered frames ({'/'.join(IMAGE_EXTENSIONS)}) in the folder")
        kinds = {(m["prefix"], m["ext"].lower(), len(m["num"])) for m, _ in numbered}
        if len(kinds) > 1:
            raise VideoDecodeError(self.path, f"frames of more than one naming: {sorted(kinds)[:3]}")
        prefix, _, digits = next(iter(kinds))
        ext = numbered[0][0]["ext"]
        nums = sorted(int(m["num"]) for m, _ in numbered)
        self.fps, expected, notes = self._read_meta()
        count = max(len(nums), expected or 0)
        for i in range(count):  # numbered without gaps from the first, and as many as meta.json says
            if i >= len(nums) or nums[i] != nums[0] + i:
                raise VideoDecodeError(os.path.join(self.path, f"{prefix}{nums[0] + i:0{digits}d}{ext}"),
                                       f"frame {i} of {count} is missing")
        self._names = [f"{prefix}{n:0{digits}d}{ext}" for n in nums]
        self.num_frames = len(nums)
        self.notes = tuple(notes)
        self._size: tuple[int, int] | None = None  # decoded from the first frame when asked: counting reads no image

    @property
    def height(self) -> int:
        return self._frame_size()[0]

    @property
    def width(self) -> int:
        return self._frame_size()[1]

    def _frame_size(self) -> tuple[int, int]:
        if self._size is None:
            first = self._decode([0])[0]
            self._size = int(first.shape[1]), int(first.shape[2])  # (3, H, W)
        return self._size

    def _read_meta(self) -> tuple[float, int | None, list[str]]:
        """(fps, frame count) from ``meta.json``; (0.0, None) without one."""
        meta = os.path.join(self.path, META)
        if not os.path.isfile(meta):
            return 0.0, None, [f"no {META}: the frame rate is unknown"]
        try:
            with open(meta, encoding="utf-8") as f:
                info = json.load(f)
            return float(info["fps"]), int(info["num_frames"]), []
        except (ValueError, KeyError, TypeError) as exc:
            raise VideoDecodeError(meta, f"not a frame-folder {META} ({type(exc).__name__}: {exc})") from None

    def _decode(self, indices: Sequence[int]) -> list[torch.Tensor]:
        from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

        files = [os.path.join(self.path, self._names[i]) for i in indices]
        data = []
        for f in files:
            try:
                with quiet_image_codecs():
                    data.append(read_file(f))
            except RuntimeError:
                raise VideoDecodeError(f, "frame file is missing or unreadable") from None
        if not self._names[0].lower().endswith((".jpg", ".jpeg")):
            return [_decode_png(f, d) for f, d in zip(files, data)]
        try:
            with quiet_image_codecs():
                return list(decode_jpeg(data, mode=ImageReadMode.RGB))  # one batched call
        except RuntimeError:
            for f, d in zip(files, data):  # name the bad file
                try:
                    with quiet_image_codecs():
                        decode_image(d, mode=ImageReadMode.RGB)
                except RuntimeError as exc:
                    raise VideoDecodeError(f, f"corrupt image ({str(exc).splitlines()[0]})") from None
            raise

    def _get_frames(self, idx: list[int], size: tuple[int, int] | None) -> torch.Tensor:
        wanted = sorted(set(idx))
        got = dict(zip(wanted, self._decode(wanted)))
        frames = torch.stack([got[i] for i in idx]).permute(0, 2, 3, 1).contiguous()  # (T, H, W, 3)
        if size is not None:
            frames = resize_frames(frames, size)
        return frames

    def iter_frames(self, chunk_size: int = 32, size: tuple[int, int] | None = None) -> Iterator[torch.Tensor]:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        for start in range(0, self.num_frames, chunk_size):
            yield self.get_frames(range(start, min(start + chunk_size, self.num_frames)), size)

    def close(self) -> None:
        pass


def _decode_png(path: str, data: torch.Tensor) -> torch.Tensor:
    # PNG through Pillow, not torchvision's decode_png: once decord is imported in a process, torchvision's libpng
    # resolves zlib to decord's copy and fails on every file ("bad parameters to zlib"); Pillow bundles its own.
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as im:
            return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise VideoDecodeError(path, f"corrupt image ({type(exc).__name__}: {exc})") from None


__all__ = ["FrameFolderDecoder", "is_frame_folder", "quiet_image_codecs"]
