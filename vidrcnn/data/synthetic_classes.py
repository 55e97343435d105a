"""The synthetic action classes and how a clip of each is drawn (:data:`CLASSES`, :func:`render_clip`); the dataset
writer is :mod:`vidrcnn.data.synthetic`, whose docstring describes the classes.

Classes come in pairs that are **time reversals** of each other: a clip of the second member is rendered exactly as
a clip of the first and then played backwards. Everything is drawn from ``numpy.random.default_rng`` seeded by
(seed, what, class, group, clip): the same seed gives the same frames on every machine.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SEGMENTS = 16  # the clip length the recommended sampling uses: 16 TSN segments over the whole video


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
class Scene:
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


def _move(scene: Scene, rng: np.random.Generator, frames: np.ndarray) -> None:
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


def _zoom(scene: Scene, rng: np.random.Generator, frames: np.ndarray) -> None:
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


def _rotate(scene: Scene, rng: np.random.Generator, frames: np.ndarray) -> None:
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


def _lamps(scene: Scene, rng: np.random.Generator, frames: np.ndarray, *, vertical: bool) -> None:
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


def _still(scene: Scene, rng: np.random.Generator, frames: np.ndarray) -> None:
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
    render: Callable[[Scene, np.random.Generator, np.ndarray], None]
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
    cls.render(Scene(num_frames, size, size / 64.0), rng, frames)
    if cls.reverse:
        frames = frames[::-1]
    return np.ascontiguousarray(np.clip(frames * 255.0 + 0.5, 0, 255).astype(np.uint8))
