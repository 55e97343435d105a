"""Extract every video under DIR into folders of frames under OUT, and write the list that trains on them.

    python tools/extract_frames.py data/UCF101 data/UCF101-frames [--format jpg|png] [--quality 90]
    python tools/train.py ... data.root=data/UCF101-frames data.list_file=data/UCF101-frames/list.txt \\
        data.classes_file=data/UCF101-frames/classes.txt

``OUT/<Class>/<video name>/img_00001.jpg ...`` (PNG is lossless, JPEG smaller and faster to decode) with a
``meta.json`` (frame rate, frame count, and the source's name, size and modification time with the format and
quality) written last, so a stopped run resumes: a folder whose ``meta.json`` records this very source and format is
done and skipped, one without is extracted again, and one made from another video, a changed one or with another
``--format``/``--quality`` is refused, naming it (``--overwrite`` extracts it again). ``OUT/list.txt`` has one ``folder num_frames
label`` line per video (as frame-folder toolkits write it) and ``OUT/classes.txt`` the class names; the class is
the video's folder under DIR. An unreadable video is reported and left out of the list (never a silent drop: the
count is printed and the tool exits 1).
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.extract_frames import main

__all__ = ["main", "run_tool"]  # `vidrcnn extract-frames` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
