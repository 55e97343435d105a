"""List the videos under DIR that cannot be decoded: one line per bad file with the cause, then a summary.

Exit code 1 if any video is bad, 0 otherwise; readable videos with wrong metadata (a frame rate outside 1-1000 fps,
or one its timestamps contradict) are listed as warnings. ``--cache FILE`` remembers results (keyed by path, size
and mtime), so a second scan of an unchanged dataset reads nothing. Example:

    python tools/scan_videos.py data/UCF101 --cache data/UCF101/.probe-cache.json
"""

from __future__ import annotations

import argparse
import sys

from vidrcnn.io.av_container import TRUNCATED
from vidrcnn.io.decode_check import VIDEO_EXTENSIONS, find_videos, scan_videos
from vidrcnn.io.probe import ProbeCache
from vidrcnn.outputs import check_output_file


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="DIR", help="folders (searched recursively) or video files")
    parser.add_argument("--cache", metavar="FILE", help="JSON probe cache to read and update")
    parser.add_argument("--quick", action="store_true", help="demux only; skip decoding every frame (misses "
                        "corruption in the middle of a file)")
    parser.add_argument("--ext", nargs="+", default=list(VIDEO_EXTENSIONS), help="file extensions to scan")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print one line per good video")
    args = parser.parse_args(argv)

    files = [f for root in args.paths for f in find_videos(root, args.ext)]
    if args.cache:  # its folder must be writable, and it is never one of the videos; ProbeCache refuses a foreign file
        check_output_file(args.cache, overwrite=True, inputs=files)
    bad = frames = flagged = 0
    with ProbeCache(args.cache) as cache:
        for result in scan_videos(files, cache=cache, verify=not args.quick):
            damage = [n for n in result.info.notes if n.startswith(TRUNCATED)] if result.ok else []
            if result.ok and not damage:
                frames += result.info.num_frames
                for note in result.info.notes:  # readable, but its metadata is wrong (e.g. an absurd frame rate)
                    print(f"{result.path}: warning: {note}", flush=True)
                flagged += bool(result.info.notes)
                if args.verbose:
                    info = result.info
                    print(f"ok {result.path}: {info.num_frames} frames, {info.width}x{info.height}, {info.fps:.2f} fps")
            else:  # unreadable, or readable only in part (it decodes, but less than the file promises)
                bad += 1
                print(f"{result.path}: {result.error or 'damaged: ' + '; '.join(damage)}", flush=True)
    print(f"scanned {len(files)} videos: {len(files) - bad} readable ({frames} frames, {flagged} with warnings), "
          f"{bad} unreadable or damaged", file=sys.stderr)
    return 1 if bad else 0
