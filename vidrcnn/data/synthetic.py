"""A synthetic UCF101-format dataset whose classes need temporal modelling, generated in seconds.

Classes come in pairs that are **time reversals** of each other: a clip of the second member is rendered exactly as
a clip of the first and then played backwards. Any single frame, and any unordered bag of frames, therefore has the
same distribution under both members, while the order of frames tells them apart. Positions, phases, colours,
speeds and event timing are random (uniform phases, so even the distribution of the frame at a given time index is
the same for both members of a local pair). A pair may show *which pair* it is in a single frame (its shapes), never
which member.

- local motion pairs (any two neighbouring frames decide): MoveRight / MoveLeft (a sprite crossing a wrap-around
  scene), ZoomIn / ZoomOut (concentric rings flowing out of / into their centre), RotateCW / RotateCCW (a bar with a
  knob at one end spinning about its centre);
- global order pairs (only frames far apart decide): FlashLeftThenRight / FlashRightThenLeft (two lamps side by
  side, one lit briefly in the first third, the other in the last third, nothing but the unlit lamps in between),
  FlashTopThenBottom / FlashBottomThenTop (the same with two round lamps stacked vertically);
- a static class, Still: a plus sign that never moves; its shape is its own, so a single frame recognises it.

Files: ``out_dir/<Class>/v_<Class>_gNN_cMM.avi`` (MPEG-4 Part 2 in AVI, like UCF101), ``out_dir/ucfTrainTestlist/``
with ``classInd.txt`` and ``trainlist0k.txt`` / ``testlist0k.txt`` for k = 1..3 exactly as UCF101 ships them
(CRLF line endings, 1-based class index, test lists without labels; split k tests on groups 7(k-1)+1..7k), and
``out_dir/classes.json`` (class definitions, the single-frame ceiling, the recommended clip sampling). Clips of one
group share a background texture (one per group, across classes, shifted a little per clip, like a camera moved
between takes), so a test split shows backgrounds never seen in training, as in UCF101.

Everything is drawn from ``numpy.random.default_rng`` seeded by (seed, what, class, group, clip): the same seed gives
the same frames on every machine, and regenerating one class or group does not shift any other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vidrcnn.data.synthetic_classes import CLASSES, SEGMENTS, Scene, class_names, render_clip, single_frame_ceiling
from vidrcnn.io.writer import write_video
from vidrcnn.outputs import check_output_dir

SPLIT_DIR = "ucfTrainTestlist"
FORMATS = ("ucf101", "hmdb51", "kinetics", "ssv2", "frames")  # the layout and split files written (docs/guide/data.md)
# MPEG-4 Part 2 with a bit rate so high that the encoder sits at its finest quantiser: measured at 64x64, the decoded
# clips are within ~1 dB PSNR of a lossless 4:2:0 encoding (FFV1), i.e. only chroma subsampling costs anything.
# One encoder thread: 4x faster for such small frames (no thread start-up per file), and deterministic output.
_ENCODER = {"codec": "mpeg4", "pix_fmt": "yuv420p", "gop": 12, "bit_rate": 1_000_000, "options": {"threads": "1"}}
_VP9 = {"codec": "libvpx-vp9", "pix_fmt": "yuv420p", "gop": 12, "bit_rate": 1_000_000,  # as SSv2's .webm files
        "options": {"threads": "1", "deadline": "realtime", "cpu-used": "8"}}


def _check_args(num_groups: int, clips_per_group: int, num_frames: int, size: int, fps: float) -> None:
    if not 8 <= num_groups <= 99:
        raise ValueError(f"num_groups must be 8..99 (groups 1-7 are split 1's test set), got {num_groups}")
    if not 1 <= clips_per_group <= 99:
        raise ValueError(f"clips_per_group must be 1..99, got {clips_per_group}")
    if num_frames < SEGMENTS:
        raise ValueError(f"num_frames must be >= {SEGMENTS} (events need room to be far apart), got {num_frames}")
    if size < 32 or size % 2:
        raise ValueError(f"size must be even (MPEG-4 needs it) and >= 32, got {size}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")


def _write_lists(out: Path, names: list[str], files: dict[str, list[tuple[int, str]]]) -> None:
    lists = out / SPLIT_DIR
    lists.mkdir(parents=True, exist_ok=True)
    crlf = "\r\n"  # UCF101's lists are DOS text files; writing them the same way tests the readers honestly
    (lists / "classInd.txt").write_bytes("".join(f"{i} {n}{crlf}" for i, n in enumerate(names, 1)).encode())
    for k in (1, 2, 3):
        tested = range(7 * (k - 1) + 1, 7 * k + 1)
        train, test = [], []
        for label, name in enumerate(names, 1):
            for group, rel in files[name]:
                (test.append(f"{rel}{crlf}") if group in tested else train.append(f"{rel} {label}{crlf}"))
        if not test:  # fewer groups than the split tests on: say so in the list (a comment), and the reader refuses
            groups = max(g for name in names for g, _ in files[name])
            test.append(f"# split {k} tests on groups {tested.start}-{tested.stop - 1}; this dataset has groups "
                        f"1-{groups}, so split {k} has no test set here (make it with --groups {tested.start} or more)"
                        f"{crlf}")
        (lists / f"trainlist{k:02d}.txt").write_bytes("".join(train).encode())
        (lists / f"testlist{k:02d}.txt").write_bytes("".join(test).encode())


def _write_frame_list(out: Path, names: list[str], files: dict[str, list[tuple[int, str]]]) -> None:
    """``list.txt`` (``folder num_frames label``, as frame-folder toolkits write it) and ``classes.txt``."""
    (out / "list.txt").write_text("".join(f"{rel} {label}\n" for label, name in enumerate(names)
                                          for _, rel in files[name]), encoding="utf-8")
    (out / "classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")


def _write_hmdb51_splits(out: Path, names: list[str], files: dict[str, list[tuple[int, str]]]) -> None:
    """HMDB51's split files in place of UCF101's lists: split k tests on the groups UCF101's split k tests on."""
    from vidrcnn.data.formats.hmdb51 import SPLIT_FOLDER, write_split_files

    marks = {name: [[(rel.rpartition("/")[2], 2 if 7 * (k - 1) < group <= 7 * k else 1) for group, rel in files[name]]
                    for k in (1, 2, 3)] for name in names}
    write_split_files(out / SPLIT_FOLDER, marks)


def _video_path(format: str, name: str, group: int, clip: int) -> str:
    if format == "kinetics":  # <split>/<label>/<youtube_id>_<start>_<end>, as the ActivityNet crawler stores them
        from vidrcnn.data.formats.kinetics import video_name

        return f"{'val' if group <= 7 else 'train'}/{name}/{video_name(_youtube_id(name, group, clip), 0, 10, '.avi')}"
    if format == "ssv2":  # <id>.webm, flat; the id numbers class, group and clip
        return f"{(class_names().index(name) + 1) * 10000 + group * 100 + clip}.webm"
    return f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"


def _youtube_id(name: str, group: int, clip: int) -> str:
    return f"{name}-g{group:02d}c{clip:02d}"


def _write_kinetics_annotations(out: Path, names: list[str], files: dict[str, list[tuple[int, str]]]) -> None:
    """Kinetics' train.csv and validate.csv in ``out/annotations``: validation is split 1's test groups."""
    from vidrcnn.data.formats.kinetics import ANNOTATIONS, write_annotations

    rows: dict[str, list[tuple[str, str, int, int]]] = {"train.csv": [], "validate.csv": []}
    for name in names:
        for group, rel in files[name]:
            yid = rel.rpartition("/")[2].rsplit("_", 2)[0]
            rows["validate.csv" if group <= 7 else "train.csv"].append((name, yid, 0, 10))
    write_annotations(out / ANNOTATIONS, rows)


def _write_ssv2_annotations(out: Path, names: list[str], files: dict[str, list[tuple[int, str]]]) -> None:
    """SSv2's labels, train and validation JSON in ``out/labels``: each class a template with a placeholder
    (``"<Class> [something]"``), validation is split 1's test groups."""
    from vidrcnn.data.formats.ssv2 import LABELS, LISTS, class_of

    labels = out / "labels"
    labels.mkdir(exist_ok=True)
    templates = {name: f"{name} [something]" for name in names}
    (labels / LABELS).write_text(json.dumps({class_of(templates[n]): str(i) for i, n in enumerate(names)}, indent=1),
                                 encoding="utf-8")
    lists: dict[str, list[dict]] = {"train": [], "test": []}
    for name in names:
        for group, rel in files[name]:
            lists["test" if group <= 7 else "train"].append(
                {"id": rel.removesuffix(".webm"), "label": f"{name} a thing", "template": templates[name],
                 "placeholders": ["a thing"]})
    for which, entries in lists.items():
        (labels / LISTS[which]).write_text(json.dumps(entries, indent=1), encoding="utf-8")


def _generated_by(folder: Path, generator: dict) -> bool:
    """Whether ``folder`` holds a synthetic dataset made with exactly these generator arguments."""
    try:
        meta = json.loads((folder / "classes.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("generator") == generator


def make_synthetic(
    out_dir: str | os.PathLike,
    *,
    num_groups: int = 25,
    clips_per_group: int = 4,
    num_frames: int = 40,
    size: int = 32,
    fps: float = 25,
    seed: int = 0,
    overwrite: bool = False,
    format: str = "ucf101",
) -> Path:
    """Write the dataset (see the module doc) into ``out_dir`` and return it as a Path.

    Defaults: 11 classes x 25 groups x 4 clips = 1100 videos of 40 frames at 32x32 (1.6 s at 25 fps): small enough
    that a model trains on it in about a minute on 2 CPU cores (``make study``), large enough (792 training clips in
    split 1) that it learns within 6 epochs. Shapes scale with ``size``; 64 gives sharper frames. ``num_groups``
    must be at least 8 so that split 1 has both sets (splits 2 and 3 need 15 and 22). ``out_dir`` must be missing,
    empty, or a synthetic dataset made with the same arguments (then its files are written again, byte for byte the
    same); anything else (a real dataset, another synthetic one) only with ``overwrite``: an
    :class:`~vidrcnn.errors.OutputError` otherwise, before anything is written.
    """
    _check_args(num_groups, clips_per_group, num_frames, size, fps)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    generator = {"seed": seed, "groups": num_groups, "clips_per_group": clips_per_group, "frames": num_frames,
                 "size": size, "fps": fps, **({"format": format} if format != "ucf101" else {})}
    out = check_output_dir(out_dir, overwrite=overwrite, replaceable=lambda d: _generated_by(d, generator),
                           what="a synthetic dataset made with the same arguments")
    out.mkdir(parents=True, exist_ok=True)
    by_name = {c.name: c for c in CLASSES}
    names = class_names()
    files: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        files[name] = []
        for group in range(1, num_groups + 1):
            for clip in range(1, clips_per_group + 1):
                rel = _video_path(format, name, group, clip)
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                frames = render_clip(by_name[name], seed=seed, group=group, clip=clip, num_frames=num_frames, size=size)
                write_video(out / rel, frames, fps=fps, **(_VP9 if format == "ssv2" else _ENCODER))
                if format == "frames":  # the encoded video, decoded into a folder of JPEGs, as extraction does
                    from vidrcnn.io.extract import extract_frames

                    count = extract_frames(out / rel, out / rel.removesuffix(".avi"))
                    (out / rel).unlink()
                    rel = f"{rel.removesuffix('.avi')} {count}"
                files[name].append((group, rel))
    if format == "frames":
        _write_frame_list(out, names, files)
    elif format == "hmdb51":
        _write_hmdb51_splits(out, names, files)
    elif format == "kinetics":
        _write_kinetics_annotations(out, names, files)
    elif format == "ssv2":
        _write_ssv2_annotations(out, names, files)
    else:
        _write_lists(out, names, files)
    scene = Scene(num_frames, size, size / 64.0)
    classes = [{"name": n, "kind": by_name[n].kind, "pair": by_name[n].pair, "description": by_name[n].description}
               for n in names]
    meta = {
        "classes": classes,
        "single_frame_ceiling": single_frame_ceiling(classes),
        "recommended": {
            "data.num_frames": SEGMENTS,
            "data.sampling": "segments",
            "data.stride": 1,
            "data.size": size,
            "why": f"16 TSN segments over the whole clip always catch both events of a global pair (each lasts "
                   f"{scene.event_len()} frames, long enough to hold a whole segment); a randomly placed dense "
                   "16-frame clip can miss one, so a model trained on those sees unlearnable global clips",
        },
        "event_frames": scene.event_len(),
        "generator": generator,
    }
    (out / "classes.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
