"""Can a model tell ZoomIn from ZoomOut? The probe behind the "Zoom" section of docs/reports/how_defaults_were_chosen.md.

    python benchmarks/zoom_probe.py [--seeds 0,1,2,3,4] [--epochs 6] [--runs NAME[:JSON] ...] [--data DIR]

The zoom pair (concentric rings flowing out of or into a disk's centre, one of them the other played backwards) was
the one pair no RCN of the ablation learned. This probe isolates it: only the two zoom classes, rendered in memory
(:func:`vidrcnn.data.synthetic.render_clip`, no video encoding), 8 clips per group, the study's split (groups 8-25
train, 1-7 test), its TSN sampling of 16 frames from 40 and its schedule (AdamW, warm-up then cosine, batch 16), so
one run takes about 20 s on 2 CPU cores. Each run is ``NAME`` (a registered model, or one of the ``c3d_time_from``
variants below) with optional builder options as JSON; it prints test top-1 per seed and the mean.

``c3d_time_from{k}``: ``c3d_s`` whose convolutions before the k-th see one frame only (kernel (1, 3, 3)), to find
the grid at which mixing time first stops working (conv 1 runs at 32x32, conv 2 at 16x16, conv 3 at 8x8).
``--data DIR``: the zoom pair's videos of a synthetic dataset written by ``tools/make_synthetic.py`` (``--size 32``),
decoded, instead of frames rendered in memory: the study's clips as the loader sees them, after lossy encoding.

The default runs spell out the options of the morning of 2026-12-02 (``activation="tanh"``,
``stem_downsample="stride"``), so they reproduce the table of docs/reports/how_defaults_were_chosen.md whatever the builders' defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidrcnn.data.sampling import segment_clip
from vidrcnn.data.synthetic_classes import CLASSES, render_clip
from vidrcnn.data.transforms import MEAN, STD
from vidrcnn.models import C3D, get_model

FRAMES, SEGMENTS, SIZE, BATCH = 40, 16, 32, 16
_BEFORE = '"activation": "tanh", "stem_downsample": "stride"'
DEFAULT_RUNS = ("c3d_s", "c3d_time_from2", "c3d_time_from3",
                *(f'rcn_gru_s:{{"stem_frames": {k}, {_BEFORE}}}' for k in (1, 2, 3)))


def c3d_time_from(first: int, num_classes: int) -> C3D:
    """``c3d_s`` with temporal kernel 1 in its convolutions before the ``first``-th (1-based)."""
    model = get_model("c3d_s", num_classes=num_classes)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    for conv in convs[:first - 1]:
        conv.weight = nn.Parameter(conv.weight.detach()[:, :, 1:2].clone())  # the centre tap of a fresh init
        conv.kernel_size, conv.padding = (1, 3, 3), (0, 1, 1)
    return model


def build(spec: str, num_classes: int) -> nn.Module:
    name, _, options = spec.partition(":")
    if name.startswith("c3d_time_from"):
        return c3d_time_from(int(name.removeprefix("c3d_time_from")), num_classes)
    return get_model(name, num_classes=num_classes, **(json.loads(options) if options else {}))


def zoom_clips(groups: range, clips: int) -> tuple[np.ndarray, np.ndarray]:
    pair = [c for c in CLASSES if c.pair == "Zoom"]
    x = [render_clip(c, seed=0, group=g, clip=j, num_frames=FRAMES, size=SIZE)
         for c in pair for g in groups for j in range(clips)]
    y = [k for k in range(len(pair)) for _ in groups for _ in range(clips)]
    return np.stack(x), np.array(y)


def decoded_zoom_clips(root: str, groups: range, clips: int) -> tuple[np.ndarray, np.ndarray]:
    """The zoom pair's videos ``v_<class>_g<group>_c<clip>.avi`` of the synthetic dataset at ``root``, decoded."""
    from vidrcnn.io import open_video

    x, y = [], []
    for k, c in enumerate(c for c in CLASSES if c.pair == "Zoom"):
        for g in groups:
            for j in range(1, clips + 1):
                with open_video(Path(root) / c.name / f"v_{c.name}_g{g:02d}_c{j:02d}.avi") as video:
                    x.append(video.get_frames(range(video.num_frames)).numpy())
                    y.append(k)
    if x[0].shape[1:3] != (SIZE, SIZE) or x[0].shape[0] != FRAMES:
        raise SystemExit(f"error: {root}: the probe needs {FRAMES} frames of {SIZE}x{SIZE} "
                         f"(tools/make_synthetic.py --size {SIZE}), got {x[0].shape[:3]}")
    return np.stack(x), np.array(y)


def to_clip(frames: np.ndarray, indices: list[int]) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(3, 1, 1, 1), torch.tensor(STD).view(3, 1, 1, 1)
    return (torch.from_numpy(frames[indices]).permute(3, 0, 1, 2).float() / 255.0 - mean) / std


def run(spec: str, seed: int, data, *, epochs: int, lr: float) -> dict:
    (xtr, ytr), (xte, yte) = data
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = build(spec, num_classes=2)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = math.ceil(len(xtr) / BATCH)
    total, warm = steps * epochs, max(1, 2 * steps // 3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(len(xtr))
        for s in range(steps):
            b = order[s * BATCH:(s + 1) * BATCH]
            x = torch.stack([to_clip(xtr[i], segment_clip(FRAMES, SEGMENTS, rng)) for i in b])
            logits = model(x)
            logits = logits[:, -1] if logits.dim() == 3 else logits
            loss = F.cross_entropy(logits, torch.from_numpy(ytr[b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    idx = segment_clip(FRAMES, SEGMENTS, None)
    with torch.no_grad():
        pred = torch.cat([model(torch.stack([to_clip(xte[i], idx) for i in range(j, min(j + 32, len(xte)))]))
                          .argmax(1) for j in range(0, len(xte), 32)])
    return {"top1": float((pred.numpy() == yte).mean()), "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), help="NAME or NAME:JSON builder options")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clips", type=int, default=8, help="clips per group and class [%(default)s]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", help="a synthetic dataset (tools/make_synthetic.py) to decode the zoom pair from "
                                   "[render in memory]")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.data:
        data = (decoded_zoom_clips(args.data, range(8, 26), args.clips),
                decoded_zoom_clips(args.data, range(1, 8), args.clips))
    else:
        data = zoom_clips(range(8, 26), args.clips), zoom_clips(range(1, 8), args.clips)
    source = f"decoded from {args.data}" if args.data else "rendered"
    print(f"ZoomIn vs ZoomOut ({source}), {len(data[0][1])} train / {len(data[1][1])} test clips at {SIZE}x{SIZE}, "
          f"{args.epochs} epochs, lr {args.lr:g}, seeds {args.seeds} (chance: 50%)\n")
    print("| run | test top-1 per seed | mean | s per run |\n|---|---|---|---|")
    for spec in args.runs:
        results = [run(spec, s, data, epochs=args.epochs, lr=args.lr) for s in seeds]
        top1 = [100 * r["top1"] for r in results]
        print(f"| `{spec}` | {' / '.join(f'{t:.1f}' for t in top1)} | {np.mean(top1):.1f} | "
              f"{np.mean([r['seconds'] for r in results]):.0f} |", flush=True)


if __name__ == "__main__":
    main()
