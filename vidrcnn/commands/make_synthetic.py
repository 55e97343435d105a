"""Generate the synthetic UCF101-format dataset whose classes need temporal order (see vidrcnn.data.synthetic).

    python tools/make_synthetic.py data/synthetic                      # 11 classes x 25 groups x 4 clips, 32x32
    python tools/make_synthetic.py /tmp/tiny --groups 8 --clips-per-group 1 --frames 16 --size 32
    python tools/make_synthetic.py data/hmdb --format hmdb51           # HMDB51's layout and split files
    python tools/make_synthetic.py data/k400 --format kinetics         # Kinetics' CSVs and folders
    python tools/make_synthetic.py data/ssv2 --format ssv2             # SSv2's JSON and VP9 .webm files
    python tools/make_synthetic.py data/frames --format frames         # JPEG frame folders, list.txt
"""

from __future__ import annotations

import argparse
import json
import time

from vidrcnn.data.synthetic import make_synthetic


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to write (class folders, ucfTrainTestlist/, classes.json)")
    parser.add_argument("--groups", type=int, default=25, help="groups per class, >= 8 (UCF101: 25) [%(default)s]")
    parser.add_argument("--clips-per-group", type=int, default=4, help="clips per group and class [%(default)s]")
    parser.add_argument("--frames", type=int, default=40, help="frames per video, >= 16 [%(default)s]")
    parser.add_argument("--size", type=int, default=32, help="frame height = width, even, >= 32 [%(default)s]")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate written to the files [%(default)s]")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same frames [%(default)s]")
    parser.add_argument("--format", default="ucf101", choices=("ucf101", "hmdb51", "kinetics", "ssv2", "frames"),
                        help="the layout and split files: UCF101's ucfTrainTestlist/, HMDB51's "
                             "testTrainMulti_7030_splits/, Kinetics' annotations/*.csv and <split>/<label>/ "
                             "folders, SSv2's labels/*.json and <id>.webm, or JPEG frame folders with list.txt "
                             "(docs/guide/data.md) [%(default)s]")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty OUT_DIR that is not a synthetic dataset made with the same "
                             "arguments (without it such a folder is refused, so a real dataset is never touched)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        out = make_synthetic(args.out_dir, num_groups=args.groups, clips_per_group=args.clips_per_group,
                             num_frames=args.frames, size=args.size, fps=args.fps, seed=args.seed,
                             overwrite=args.overwrite, format=args.format)
    except ValueError as exc:  # a bad flag value: say which, like argparse does
        parser.error(str(exc))
    meta = json.loads((out / "classes.json").read_text(encoding="utf-8"))
    n = len(meta["classes"]) * args.groups * args.clips_per_group
    rec = meta["recommended"]
    print(f"wrote {n} videos in {len(meta['classes'])} classes to {out} in {time.perf_counter() - start:.1f} s")
    print(f"single-frame ceiling {meta['single_frame_ceiling']:.3f}; recommended: data.num_frames={rec['data.num_frames']}"
          f" data.sampling={rec['data.sampling']} data.size={rec['data.size']}")
    return 0
