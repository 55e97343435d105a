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

import colorsys
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidrcnn.io.writer import write_video
from vidrcnn.outputs import check_output_dir

SEGMENTS = 16  # the clip length the recommended sampling uses: 16 TSN segments over the whole video
SPLIT_DIR = "ucfTrainTestlist"
FORMATS = ("ucf101", "hmdb51", "kinetics", "ssv2", "frames")  # the layout and split files written (docs/data.md)
# MPEG-4 Part 2 with a bit rate so high that the encoder sits at its finest quantiser: measured at 64x64, the decoded
# clips are within ~1 dB PSNR of a lossless 4:2:0 encoding (FFV1), i.e. only chroma subsampling costs anything.
# One encoder thread: 4x faster for such small frames (no thread start-up per file), and deterministic output.
_ENCODER = {"codec": "mpeg4", "pix_fmt": "yuv420p", "gop": 12, "bit_rate": 1_000_000, "options": {"threads": "1"}}
_VP9 = {"codec": "libvpx-vp9", "pix_fmt": "yuv420p", "gop": 12, "bit_rate": 1_000_000,  # as SSv2's .webm files
        "options": {"threads": "1", "deadline": "realtime", "cpu-used": "8"}}


# -- drawing helpers (all float32 in [0, 1], antialiased by pixel coverage) --------------------------------------------
def _cover(distance_inside: np.ndarray) -> np.ndarray:
    """Pixel coverage from a signed distance to an edge (positive inside), with a one-pixel soft edge."""
    return np.clip(distance_inside + 0.5, 0.0, 1.0)


def _bright(rng: np.random.Generator) -> np.ndarray:
    """A saturated, bright colour: stands out on the darker, duller backgrounds."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.55, 1.0), rng.uniform(0.85, 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def _uniform2(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float]:
    # Python floats, not NumPy float64 scalars: under NumPy 2's promotion rules those would turn every float32
    # frame computation they touch into float64 (2x slower).
    a, b = rng.uniform(lo, hi, size=2)
    return float(a), float(b)


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = _bright(rng)
    b = _bright(rng)
    while np.abs(a - b).max() < 0.35:  # keep the two parts of an object tellable apart
        b = _bright(rng)
    return a, b


def _paint(frames: np.ndarray, alpha: np.ndarray, colour: np.ndarray | float) -> None:
    """Composite ``colour`` with coverage ``alpha`` ((T, H, W) or (H, W)) onto ``frames`` (T, H, W, 3) in place."""
    a = alpha[..., None]
    frames *= 1.0 - a
    frames += a * colour


def group_background(seed: int, group: int, side: int) -> np.ndarray:
    """The background texture of ``group``: smooth dull colour noise, float32 ``(side, side, 3)``."""
    rng = np.random.default_rng([seed, 0xB6, group])
    base = rng.uniform(0.12, 0.45, size=3)
    layers = []
    for cells, amp in ((4, 0.14), (9, 0.07), (side // 4, 0.035)):
        noise = torch.from_numpy(rng.normal(0.0, amp, size=(1, 3, cells, cells)).astype(np.float32))
        layers.append(F.interpolate(noise, size=(side, side), mode="bicubic", align_corners=False)[0])
    texture = torch.from_numpy(base.astype(np.float32))[:, None, None] + sum(layers)
    return texture.clamp(0.02, 0.6).permute(1, 2, 0).numpy().copy()


# -- the scenes (each renders the *first* member of its pair; the second is the same clip reversed) -----------------
@dataclass(frozen=True)
class _Scene:
    frames: int
    size: int
    u: float  # lengths are designed for 64x64 frames and scaled by size / 64

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        yy, xx = np.mgrid[0 : self.size, 0 : self.size].astype(np.float32) + 0.5  # pixel centres
        return yy, xx

    @property
    def t(self) -> np.ndarray:
        return np.arange(self.frames, dtype=np.float32)[:, None, None]

    def event_len(self) -> int:
        """Frames an event lasts: long enough that one of SEGMENTS TSN segments lies inside it, whatever the draw."""
        return max(3, 2 * math.ceil(self.frames / SEGMENTS) - 1)

    def event_starts(self, rng: np.random.Generator) -> tuple[int, int]:
        """Starts of the early and the late event; the late one mirrors an independent early draw, so the reversed
        clip has its events at exactly the same distribution of times."""
        d = self.event_len()
        # The early event lies inside the first third (and starts after the first 10%); the late one mirrors it.
        lo = round(0.1 * self.frames)
        hi = max(lo, math.ceil(self.frames / 3) - d)
        early = int(rng.integers(lo, hi + 1))
        late = self.frames - d - int(rng.integers(lo, hi + 1))
        return early, late


def _move(scene: _Scene, rng: np.random.Generator, frames: np.ndarray) -> None:
    """A two-colour square sprite moving right across a wrap-around scene at a constant speed."""
    s, u = scene.size, scene.u
    yy, xx = scene.grid()
    half = u * rng.uniform(5.0, 7.0)
    y0 = rng.uniform(half + 2, s - half - 2)
    x0 = rng.uniform(0, s)  # uniform start on a torus: every frame's position is uniform, for both members
    speed = u * rng.uniform(0.8, 1.6)
    outer, inner = _two_colours(rng)
    dx = np.mod(xx[None] - (x0 + speed * scene.t) + s / 2, s) - s / 2  # (T, H, W) wrap-around offset
    dy = (yy - y0)[None]
    _paint(frames, _cover(half - np.abs(dx)) * _cover(half - np.abs(dy)), outer)
    _paint(frames, _cover(half / 2 - np.abs(dx)) * _cover(half / 2 - np.abs(dy)), inner)


def _zoom(scene: _Scene, rng: np.random.Generator, frames: np.ndarray) -> None:
    """A disk of concentric rings flowing outwards from its centre, as when zooming into a target."""
    s, u = scene.size, scene.u
    yy, xx = scene.grid()
    radius = u * rng.uniform(12.0, 16.0)
    cy, cx = _uniform2(rng, radius + 1, s - radius - 1)
    wavelength = u * rng.uniform(9.0, 12.0)
    speed = u * rng.uniform(0.35, 0.7)  # < wavelength / 2 per sampled step even for widely spaced frames
    phase = rng.uniform(0, wavelength)
    a, b = _two_colours(rng)
    r = np.hypot(yy - cy, xx - cx)
    mix = 0.5 + 0.5 * np.cos(2 * np.pi * (r[None] - phase - speed * scene.t) / wavelength)  # (T, H, W)
    disk = _cover(radius - r)
    colour = a * mix[..., None] + b * (1.0 - mix[..., None])
    frames *= 1.0 - disk[None, ..., None]
    frames += disk[None, ..., None] * colour


def _rotate(scene: _Scene, rng: np.random.Generator, frames: np.ndarray) -> None:
    """A bar with a knob at one end spinning clockwise (on screen, y down) about its centre."""
    s, u = scene.size, scene.u
    yy, xx = scene.grid()
    length = u * rng.uniform(11.0, 14.0)
    cy, cx = _uniform2(rng, length + 3 * u + 1, s - length - 3 * u - 1)
    theta0 = rng.uniform(0, 2 * np.pi)
    omega = math.radians(rng.uniform(6.0, 12.0))  # per frame; the knob keeps even 60-degree steps unambiguous
    bar_colour, knob_colour = _two_colours(rng)
    theta = theta0 + omega * scene.t  # (T, 1, 1)
    cos, sin = np.cos(theta), np.sin(theta)
    ry, rx = (yy - cy)[None], (xx - cx)[None]
    along = rx * cos + ry * sin
    across = np.abs(-rx * sin + ry * cos)
    _paint(frames, _cover(1.4 * u - across) * _cover(length - np.abs(along)), bar_colour)
    knob = np.hypot(rx - length * cos, ry - length * sin)
    _paint(frames, _cover(3.0 * u - knob), knob_colour)


def _lamps(scene: _Scene, rng: np.random.Generator, frames: np.ndarray, *, vertical: bool) -> None:
    """Two lamp outlines; the first lights up briefly early on, the second late; nothing else happens."""
    s, u = scene.size, scene.u
    yy, xx = scene.grid()
    half = u * rng.uniform(4.5, 6.0)
    gap = u * rng.uniform(16.0, 22.0)
    along_lo, along_hi = half + gap / 2 + 1, s - half - gap / 2 - 1
    across_lo, across_hi = half + 1, s - half - 1
    c_along, c_across = rng.uniform(along_lo, along_hi), rng.uniform(across_lo, across_hi)
    outline, fill = _two_colours(rng)
    early, late = scene.event_starts(rng)
    d = scene.event_len()
    for k, start in enumerate((early, late)):
        centre = c_along + (k - 0.5) * gap
        cy, cx = (centre, c_across) if vertical else (c_across, centre)
        if vertical:  # round lamps, stacked
            dist = np.hypot(yy - cy, xx - cx)
            inside, ring = _cover(half - dist), _cover(half - dist) * _cover(dist - (half - 1.5 * u))
        else:  # square lamps, side by side
            dist = np.maximum(np.abs(yy - cy), np.abs(xx - cx))
            inside, ring = _cover(half - dist), _cover(half - dist) * _cover(dist - (half - 1.5 * u))
        _paint(frames[start : start + d], np.broadcast_to(inside, (d, s, s)), fill)
        _paint(frames, np.broadcast_to(ring, (scene.frames, s, s)), outline)


def _still(scene: _Scene, rng: np.random.Generator, frames: np.ndarray) -> None:
    """A plus sign that never moves."""
    s, u = scene.size, scene.u
    yy, xx = scene.grid()
    arm, width = u * rng.uniform(6.0, 8.0), u * rng.uniform(1.8, 2.6)
    cy, cx = _uniform2(rng, arm + 1, s - arm - 1)
    ay, ax = np.abs(yy - cy), np.abs(xx - cx)
    plus = np.maximum(_cover(arm - ax) * _cover(width - ay), _cover(width - ax) * _cover(arm - ay))
    _paint(frames, np.broadcast_to(plus, (scene.frames, s, s)), _bright(rng))


@dataclass(frozen=True)
class SyntheticClass:
    name: str
    kind: str  # "local" | "global" | "static"
    pair: str | None
    description: str
    render: Callable[[_Scene, np.random.Generator, np.ndarray], None]
    reverse: bool  # the second member of a pair: the first member's rendering, played backwards


def _h(scene, rng, frames):
    _lamps(scene, rng, frames, vertical=False)


def _v(scene, rng, frames):
    _lamps(scene, rng, frames, vertical=True)


# Definition order fixes the seeds; label order is the sorted one of classInd.txt.
CLASSES: tuple[SyntheticClass, ...] = (
    SyntheticClass("MoveRight", "local", "Move", "a two-colour square moves right (wrapping around)", _move, False),
    SyntheticClass("MoveLeft", "local", "Move", "MoveRight played backwards: the square moves left", _move, True),
    SyntheticClass("ZoomIn", "local", "Zoom", "concentric rings flow outwards from the disk's centre", _zoom, False),
    SyntheticClass("ZoomOut", "local", "Zoom", "ZoomIn played backwards: rings flow into the centre", _zoom, True),
    SyntheticClass("RotateCW", "local", "Rotate", "a bar with a knob spins clockwise", _rotate, False),
    SyntheticClass("RotateCCW", "local", "Rotate", "RotateCW played backwards: it spins counter-clockwise", _rotate,
                   True),
    SyntheticClass("FlashLeftThenRight", "global", "FlashHorizontal",
                   "two square lamps; the left one flashes in the first third, the right one in the last", _h, False),
    SyntheticClass("FlashRightThenLeft", "global", "FlashHorizontal",
                   "FlashLeftThenRight played backwards: right lamp early, left lamp late", _h, True),
    SyntheticClass("FlashTopThenBottom", "global", "FlashVertical",
                   "two round lamps; the top one flashes in the first third, the bottom one in the last", _v, False),
    SyntheticClass("FlashBottomThenTop", "global", "FlashVertical",
                   "FlashTopThenBottom played backwards: bottom lamp early, top lamp late", _v, True),
    SyntheticClass("Still", "static", None, "a plus sign that never moves (its shape is unique to it)", _still, False),
)


def class_names() -> list[str]:
    """Class names in label order: sorted case-insensitively, as UCF101's classInd.txt (and folder scans) order."""
    return sorted((c.name for c in CLASSES), key=lambda n: (n.lower(), n))


def single_frame_ceiling(classes: Sequence[dict] | dict | None = None) -> float:
    """Expected accuracy of a model that sees frames but not their order, on balanced classes.

    ``classes``: the ``classes`` list of ``classes.json`` (dicts with ``name``, ``kind``, ``pair``), that whole
    file's dict, or None for this module's classes. The two members of a pair are indistinguishable without order,
    by construction (one is the other reversed), so the best such a model can do within a pair is one right in two
    (per member: 1/size of its pair). A class without a pair, here the static class, has a shape no other class
    shows, so one frame recognises it: 1.0. The ceiling is the mean over classes; for the 5 pairs plus Still it is
    6/11 = 0.545. A model above it uses temporal order; a frame model far below it is failing at appearance.
    """
    if classes is None:
        classes = [{"name": c.name, "pair": c.pair} for c in CLASSES]
    elif isinstance(classes, dict):
        classes = classes["classes"]
    if not classes:
        raise ValueError("no classes")
    sizes: dict[str, int] = {}
    for c in classes:
        if c.get("pair") is not None:
            sizes[c["pair"]] = sizes.get(c["pair"], 0) + 1
    return sum(1.0 / sizes[c["pair"]] if c.get("pair") is not None else 1.0 for c in classes) / len(classes)


def render_clip(cls: SyntheticClass, *, seed: int, group: int, clip: int, num_frames: int, size: int) -> np.ndarray:
    """The uint8 frames ``(T, H, W, 3)`` of one clip, before encoding."""
    index = CLASSES.index(cls)
    rng = np.random.default_rng([seed, 0xC1, index, group, clip])
    pad = max(2, size // 8)
    background = group_background(seed, group, size + pad)
    oy, ox = rng.integers(0, pad + 1, size=2)
    frames = np.repeat(background[None, oy : oy + size, ox : ox + size], num_frames, axis=0)
    cls.render(_Scene(num_frames, size, size / 64.0), rng, frames)
    if cls.reverse:
        frames = frames[::-1]
    return np.ascontiguousarray(np.clip(frames * 255.0 + 0.5, 0, 255).astype(np.uint8))


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
    scene = _Scene(num_frames, size, size / 64.0)
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
