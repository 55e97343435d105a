"""Video input/output: frame-accurate decoders behind one protocol, a cached metadata probe, a writer.

>>> with open_video("v_ApplyEyeMakeup_g01_c01.avi") as video:      # doctest: +SKIP
...     clip = video.get_frames(range(8, 24))                        # uint8 (16, 240, 320, 3), RGB
"""

from vidrcnn.io.backends import BACKENDS, open_video
from vidrcnn.io.base import VideoDecoder, VideoInfo
from vidrcnn.io.probe import ProbeCache, probe_video
from vidrcnn.io.writer import VideoWriter, write_video

__all__ = [
    "BACKENDS",
    "ProbeCache",
    "VideoDecoder",
    "VideoInfo",
    "VideoWriter",
    "open_video",
    "probe_video",
    "write_video",
]
