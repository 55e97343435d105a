"""onnxruntime against eager PyTorch: one streamed frame (batch 1, carrying the state) and a clip, per model.

Figures: docs/guide/performance.md, "onnxruntime".

    python benchmarks/onnx_stream.py [--models rcn_gru_s,rcn_mingru_s,cnn_lstm_s,c3d_s] [--threads 2] [--iters 50]

Each model is exported as ``tools/export.py`` exports it (vidrcnn/inference/export.py), at 32x32 and 16 frames, with random
weights (the timing does not depend on them). A causal model: *frame* is one streaming step (PyTorch:
``model.stream`` on one frame with the state of 15 frames before it; onnxruntime: the exported step), *clip* is 16
frames (PyTorch: ``model(clip)``, whose input convolutions run over all frames at once; onnxruntime: 16 steps).
The 3-D CNN (a window model) has no streaming step: *clip* is one window of 16 frames, and a new prediction per
frame costs a window. Both runtimes in one process, one after the other, ``--threads`` threads each; the ratios
are of one run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from vidrcnn.inference.export import export_onnx
from vidrcnn.inference.onnx_runtime import OnnxModel, read_metadata, session_for
from vidrcnn.models import get_model
from vidrcnn.profiling import time_fn
from vidrcnn.profiling.bench_args import parse, stat_ms, timing_parser

MODELS = "rcn_gru_s,rcn_mingru_s,cnn_lstm_s,c3d_s"


def _row(name: str, args, folder: Path) -> dict[str, float]:
    torch.manual_seed(0)
    model = get_model(name, num_classes=11).eval()
    path = folder / f"{name}.onnx"
    export_onnx(model, path, frame_size=(32, 32), num_frames=16, metadata={"model": name})
    session = session_for(path, threads=args.threads)
    runtime = OnnxModel(session, read_metadata(session))
    clip = torch.randn(1, 3, 16, 32, 32)
    out: dict[str, float] = {}
    with torch.inference_mode():
        if runtime.is_causal:
            _, state = model.stream(clip[:, :, :15])
            _, ort_state = runtime.stream(clip[:, :, :15])
            frame = clip[:, :, 15:]
            out["frame torch"] = stat_ms(time_fn(lambda: model.stream(frame, state), warmup=5, iters=args.iters), args)
            out["frame ort"] = stat_ms(time_fn(lambda: runtime.stream(frame, ort_state), warmup=5, iters=args.iters),
                                       args)
            ort_clip = lambda: runtime.stream(clip)
        else:
            ort_clip = lambda: runtime(clip)
        out["clip torch"] = stat_ms(time_fn(lambda: model(clip), warmup=3, iters=max(5, args.iters // 5)), args)
        out["clip ort"] = stat_ms(time_fn(ort_clip, warmup=3, iters=max(5, args.iters // 5)), args)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = timing_parser(__doc__)
    ap.add_argument("--models", default=MODELS, help="comma-separated model names [%(default)s]")
    args = parse(ap, argv)
    import onnxruntime

    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} threads, batch 1, "
          f"32x32, {args.stat} of {args.iters} calls (clips: {max(5, args.iters // 5)})\n")
    print("| model | frame: PyTorch (ms) | frame: onnxruntime (ms) | speed-up | clip of 16: PyTorch (ms) | "
          "clip: onnxruntime (ms) | speed-up |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            r = _row(name, args, Path(tmp))
            frame = (f"{r['frame torch']:.2f} | {r['frame ort']:.2f} | {r['frame torch'] / r['frame ort']:.2f}x"
                     if "frame ort" in r else "- | - | - (a window model)")
            print(f"| `{name}` | {frame} | {r['clip torch']:.2f} | {r['clip ort']:.2f} | "
                  f"{r['clip torch'] / r['clip ort']:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
