"""Export a trained checkpoint to ONNX and check it against PyTorch before reporting success.

    python tools/export.py --checkpoint CKPT --out model.onnx [--video VIDEO] [--overwrite]
    python tools/export.py --checkpoint CKPT --triton REPO   # a Triton model repository: REPO/<model>/{config.pbtxt,1/}

Causal models (``rcn_*``, ``cnn_lstm_*``) become one streaming step with the state as named tensors; the others the
clip model with a dynamic batch (vidrcnn/inference/export.py says how). The file carries the model name, class names and
preprocessing in its metadata. The export is checked with onnxruntime on random clips, and on the first clip of
``--video`` when given, chunk after chunk for a stream: the largest difference of the logits is printed, and above
1e-4 the export fails and no file is written. ``--triton`` writes the model for Triton's sequence batcher with
implicit state (vidrcnn/inference/triton.py). Needs ``pip install -e '.[deploy]'``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from pathlib import Path

from vidrcnn.errors import OutputError
from vidrcnn.outputs import check_output_file


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by tools/train.py")
    parser.add_argument("--out", help="the ONNX file to write")
    parser.add_argument("--triton", metavar="REPO", help="write a Triton model repository: REPO/<model>/config.pbtxt "
                        "and REPO/<model>/1/model.onnx (a stream step with a sequence-start input)")
    parser.add_argument("--video", help="also check the export on the first clip of this video")
    parser.add_argument("--weights", choices=("ema", "raw"), help="the EMA or the raw weights (default: the checkpoint's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = parser.parse_args(argv)
    missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        parser.error(f"needs {', '.join(missing)}: pip install -e '.[deploy]'")
    if not (args.out or args.triton):
        parser.error("give --out FILE.onnx, --triton REPO, or both")
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.is_dir():
            raise OutputError(out, "is a folder, not an ONNX file name (give a file ending in .onnx)")
        if out.suffix.lower() != ".onnx":
            raise OutputError(out, "an ONNX file name ends in .onnx; refusing to write another kind of file")
        if out.absolute().parent.is_dir():  # else the folder is made below, and nothing in it can be an input
            check_output_file(out, overwrite=args.overwrite, inputs=[p for p in (args.checkpoint, args.video) if p])
    if args.triton and Path(args.triton).exists() and not Path(args.triton).is_dir():
        raise OutputError(args.triton, "is a file, not a folder for a Triton model repository")

    import torch

    from vidrcnn.inference.predictor import load_predictor

    predictor = load_predictor(args.checkpoint, device="cpu", weights=args.weights)
    pre = predictor.preprocess
    size = int(pre["size"])
    metadata = {"model": predictor.name, "classes": predictor.classes, "preprocess": pre,
                "num_frames": predictor.num_frames, "stride": predictor.stride, "train_fps": predictor.train_fps}
    generator = torch.Generator().manual_seed(0)
    checks = {"random input": [torch.randn(1, 3, predictor.num_frames, size, size, generator=generator)
                               for _ in range(2)]}
    if args.video:
        checks[args.video] = [_first_clip(predictor, args.video)]

    if args.triton:
        folder = Path(args.triton) / predictor.name
        if folder.exists() and not args.overwrite:
            raise OutputError(folder, "exists; add --overwrite to replace this model of the repository")
    if out is not None:
        checked, meta, report = _export_checked(predictor, out.parent, out.stem, size, metadata, checks,
                                                sequence_start=False)
        os.replace(checked, out)
        kind = (f"one streaming step, {len(meta['state'])} state tensors" if meta["kind"] == "stream"
                else f"the clip model, {predictor.num_frames} frames, dynamic batch")
        print(f"wrote {out} ({meta['model']}: {kind}, {out.stat().st_size / 1e6:.1f} MB)")
        print(f"onnxruntime vs PyTorch, max abs logit difference: {report}")
    if args.triton:
        from vidrcnn.inference.triton import write_triton_repository

        checked, meta, report = _export_checked(predictor, Path(args.triton), predictor.name, size, metadata, checks,
                                                sequence_start=True)
        try:
            folder = write_triton_repository(checked, args.triton, meta)
        finally:
            os.unlink(checked)
        print(f"wrote the Triton model repository {args.triton}: {folder / 'config.pbtxt'}, {folder / '1' / 'model.onnx'}")
        print(f"onnxruntime vs PyTorch, max abs logit difference: {report}")
    return 0


def _export_checked(predictor, folder: Path, stem: str, size: int, metadata: dict, checks: dict, *,
                    sequence_start: bool) -> tuple[str, dict, str]:
    """Export to a temporary file in ``folder`` and check it against PyTorch: that file (for the caller to move or
    remove), the metadata and the check's report. A failed export leaves nothing behind."""
    from vidrcnn.errors import ExportError
    from vidrcnn.inference.export import TOLERANCE, export_onnx, verify

    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=folder, prefix=f".{stem}-")
    os.close(fd)
    try:
        meta = export_onnx(predictor.model, tmp, frame_size=(size, size), num_frames=predictor.num_frames,
                           metadata=metadata, sequence_start=sequence_start)
        diffs = {what: verify(tmp, predictor.model, clips) for what, clips in checks.items()}
        report = "; ".join(f"{d:.2e} on {what}" for what, d in diffs.items())
        if not max(diffs.values()) <= TOLERANCE:
            raise ExportError(f"onnxruntime and PyTorch disagree on {meta['model']}: max abs logit difference "
                              f"{report} (tolerance {TOLERANCE:g})")
    except BaseException:
        os.unlink(tmp)
        raise
    frame_by_frame = ", frame by frame" if meta["kind"] == "stream" else ""
    return tmp, meta, f"{report} (tolerance {TOLERANCE:g}{frame_by_frame})"


def _first_clip(predictor, video: str):
    """The first ``num_frames`` frames the model would see of ``video`` (its stride), transformed: ``(1, 3, T, H, W)``."""
    import torch

    from vidrcnn.errors import VideoDecodeError
    from vidrcnn.io import open_video

    with open_video(video) as decoder:
        stride = predictor.frame_stride(float(decoder.fps) if decoder.fps and decoder.fps > 0 else 25.0)
        frames = []
        for chunk in decoder.iter_frames(32):
            frames.extend(chunk)
            if len(frames) >= predictor.num_frames * stride:
                break
    picked = frames[::stride][: predictor.num_frames]
    if not picked:
        raise VideoDecodeError(video, "no video frames could be decoded")
    return predictor.transform(torch.stack(picked))[None]
