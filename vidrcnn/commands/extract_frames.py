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

import argparse
import json
import sys
from pathlib import Path

from vidrcnn.errors import OutputError, VideoDecodeError


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", help="folder of class folders of videos (UCF101 layout)")
    parser.add_argument("out", help="folder to write the frame folders, list.txt and classes.txt into")
    parser.add_argument("--format", default="jpg", choices=("jpg", "png"), help="image format [%(default)s]")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality, 1-100 [%(default)s]")
    parser.add_argument("--overwrite", action="store_true",
                        help="extract again the frame folders that another video, a changed one, or another "
                             "--format/--quality made (refused without it)")
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 100:
        parser.error("--quality must be in 1..100")
    src, out = Path(args.videos), Path(args.out)
    if not src.is_dir():
        raise VideoDecodeError(src, "not a folder of videos")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise OutputError(out, f"is inside the videos folder {src}: write the frames elsewhere")
    if out.exists() and any(out.iterdir()) and not (out / "classes.txt").is_file() and not _has_meta(out):
        raise OutputError(out, "is not empty and holds no extracted frames; choose an empty folder")

    from tqdm import tqdm

    from vidrcnn.data.formats.ucf101 import scan_folders
    from vidrcnn.io.extract import extract_frames, source_record

    folders = scan_folders(src)
    classes = list(folders)
    jobs = [(label, c, name) for label, c in enumerate(classes) for name in folders[c]]
    # A folder is done only when its meta.json records this very source and format: checked for every video
    # before anything is written, so that a mixed-up output folder is refused whole.
    done: dict[Path, int] = {}
    for _, cls, name in jobs:
        target = out / cls / Path(name).stem
        if not (target / "meta.json").is_file():
            continue
        try:
            meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        expected = source_record(src / cls / name, fmt=args.format, quality=args.quality, name=f"{cls}/{name}")
        differs = [k for k, v in expected.items() if meta.get(k) != v]
        if not isinstance(meta.get("num_frames"), int):
            differs.append("num_frames")
        if not differs:
            done[target] = meta["num_frames"]
        elif not args.overwrite:
            raise OutputError(target, f"holds frames that do not match {cls}/{name} ({_describe(differs, meta)}); "
                                      "pass --overwrite to extract it again, or choose another output folder")
    lines, failed = [], []
    for label, cls, name in tqdm(jobs, desc="extracting", unit="video", disable=not sys.stderr.isatty()):
        target = out / cls / Path(name).stem
        if target in done:
            count = done[target]
        else:
            try:
                count = extract_frames(src / cls / name, target, fmt=args.format, quality=args.quality,
                                       name=f"{cls}/{name}")
            except VideoDecodeError as exc:
                failed.append(str(exc))
                continue
        lines.append(f"{cls}/{Path(name).stem} {count} {label}\n")
    skipped = len(done)
    out.mkdir(parents=True, exist_ok=True)
    (out / "list.txt").write_text("".join(lines), encoding="utf-8")
    (out / "classes.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    print(f"{len(lines)} videos in {len(classes)} classes as frame folders in {out} ({skipped} already done); "
          f"list: {out / 'list.txt'}")
    for f in failed:
        print(f"error: {f}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} videos could not be read and are not in the list", file=sys.stderr)
    return 1 if failed else 0


def _has_meta(out: Path) -> bool:
    return any(out.glob("*/*/meta.json"))


def _describe(differs: list[str], meta: dict) -> str:
    """What a frame folder's record says against what this run would write."""
    if "source_size" not in meta:
        return "no record of its source: extracted by an older vidrcnn, or not by this tool"
    changed = "made from another video of that name, or before this one changed (size or modification time differ)"
    words = {"source": f"made from {meta.get('source')}", "source_size": changed, "source_mtime_ns": changed,
             "format": f"its frames are {meta.get('format')}", "quality": f"JPEG quality {meta.get('quality')}",
             "num_frames": "no frame count"}
    return "; ".join(dict.fromkeys(words.get(k, k) for k in differs))
