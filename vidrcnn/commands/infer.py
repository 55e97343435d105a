"""Classify one video of any length with a trained checkpoint: top-K labels and a timeline of predictions.

    python tools/infer.py VIDEO --checkpoint CKPT [--topk K] [--json] [--out-video OUT.mp4 [--overwrite]]
    python tools/infer.py VIDEO --onnx MODEL.onnx ...   # a model of tools/export.py, on onnxruntime

Causal models stream frame by frame with carried state; others run sliding windows (see vidrcnn/inference/ for how
the video-level top-K is formed). ``--json`` prints exactly one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from vidrcnn.errors import ConfigError


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("video", help="video file to classify, or a live source: a camera (/dev/video0), a stream URL "
                        "(rtsp://, http://, udp://, ...) or - for a stream piped on stdin")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="checkpoint written by tools/train.py")
    model.add_argument("--onnx", help="a model written by tools/export.py, run with onnxruntime on the CPU "
                       "(needs pip install -e '.[deploy]')")
    parser.add_argument("--topk", type=int, default=5, help="labels to print (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout, nothing else")
    parser.add_argument("--out-video", help="write the video with the current label drawn on each frame "
                        "(.mp4/.mkv/.mov: H.264, .avi: MPEG-4)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out-video file (never the input video itself)")
    parser.add_argument("--chunk-size", type=int, default=32, help="frames decoded at a time (memory bound)")
    parser.add_argument("--window-step", type=int, default=None,
                        help="non-causal models: model frames between window starts (default: num_frames)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    parser.add_argument("--backend", default="auto", choices=["auto", "pyav", "decord"])
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    parser.add_argument("--weights", choices=("ema", "raw"),
                        help="the EMA of the weights or the raw ones (default: the checkpoint's, EMA when it has one)")
    live = parser.add_argument_group("live sources")
    live.add_argument("--every", type=float, default=1.0, help="seconds of stream between two printed predictions [1]")
    live.add_argument("--jsonl", action="store_true", help="one JSON object per prediction on stdout, then a summary")
    live.add_argument("--max-lag", type=float, default=1.0,
                      help="seconds behind the source beyond which frames are dropped (counted) [1]")
    live.add_argument("--timeout", type=float, default=10.0,
                      help="seconds to wait for a live source's data, at the start or mid-stream, before giving up [10]")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.topk < 1 or args.chunk_size < 1 or args.batch_size < 1:
        raise ConfigError("--topk, --chunk-size, --batch-size", "must be >= 1")
    if args.onnx and (args.weights or args.device not in ("auto", "cpu")):
        raise ConfigError("--onnx", "runs the exported weights on the CPU: no --weights, no --device cuda")
    if args.onnx and importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError("--onnx", "needs onnxruntime: pip install -e '.[deploy]'")

    from vidrcnn.inference.live import is_live

    if is_live(args.video):
        if args.json or args.out_video:
            raise ConfigError(args.video, "a live source has no end to wait for: use --jsonl (not --json), and no "
                                          "--out-video")
        if not args.every > 0 or not args.max_lag > 0 or not args.timeout > 0:
            raise ConfigError("--every, --max-lag, --timeout", "must be > 0")
        return _live(args, parser)
    if args.jsonl:
        raise ConfigError("--jsonl", "is for live sources; a video file takes --json")

    # Imported here so that --help and argument errors answer without loading torch.
    from vidrcnn.inference.render import OUTPUT_CODECS, render_video
    from vidrcnn.inference.scoring import format_topk, predict_video
    from vidrcnn.io import probe_video
    from vidrcnn.outputs import check_output_file

    if args.out_video and Path(args.out_video).suffix.lower() not in OUTPUT_CODECS:
        raise ConfigError(args.out_video, f"--out-video must end in one of {', '.join(OUTPUT_CODECS)}")

    from vidrcnn.engine.distributed import resolve_device

    resolve_device(args.device)  # a GPU that is not there fails first
    probe_video(args.video)  # a bad video fails now, before the checkpoint is loaded
    if args.out_video:
        # and an output that cannot or must not be written (the input itself, an existing file) before any work
        check_output_file(args.out_video, overwrite=args.overwrite, inputs=[args.video])
    predictor = _load(args)
    if args.window_step is not None and not 1 <= args.window_step <= predictor.num_frames:
        raise ConfigError("--window-step", f"must be in [1, {predictor.num_frames}] for this model")
    prediction = predict_video(predictor, args.video, chunk_size=args.chunk_size, window_step=args.window_step,
                               batch_size=args.batch_size, backend=args.backend, progress=True)
    if args.out_video:
        render_video(prediction, args.out_video, chunk_size=args.chunk_size, backend=args.backend,
                     overwrite=args.overwrite)
        print(f"wrote {args.out_video}", file=sys.stderr)
    for note in prediction.notes:  # on stderr too, where a --json run is still seen by a person
        print(f"warning: {args.video}: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(prediction.to_dict(args.topk)))
    else:
        print(format_topk(prediction, args.topk))
    return 0


def _load(args):
    if args.onnx:
        from vidrcnn.inference.onnx_runtime import load_onnx_predictor

        return load_onnx_predictor(args.onnx)
    from vidrcnn.inference.predictor import load_predictor

    return load_predictor(args.checkpoint, device=args.device, weights=args.weights)


def _live(args, parser: argparse.ArgumentParser) -> int:
    """Predict a live source until it ends or Ctrl-C; a summary on stderr (and as the last line of --jsonl)."""
    from vidrcnn.inference.live import LiveStats, live_frames, open_live, predict_live

    predictor = _load(args)
    if not predictor.is_causal:
        raise ConfigError(args.video, "a live source needs a causal model (rcn_*, cnn_lstm_*): it is predicted frame "
                                      "by frame")
    stats = LiveStats(predictor.classes, warmup=predictor.num_frames - 1)
    container = open_live(args.video, timeout_s=args.timeout)
    try:
        for report in predict_live(predictor, live_frames(container, args.video, timeout_s=args.timeout), stats,
                                   every_s=args.every, max_lag_s=args.max_lag):
            if args.jsonl:
                print(json.dumps({"event": "prediction", **report}), flush=True)
            else:
                print(f"{report['t']:9.2f} s  {report['label']} {report['score']:.2f}  (model {report['model_ms']:.1f} "
                      f"ms/frame, lag {report['lag_s']:.2f} s, dropped {report['dropped']})", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        container.close()
    summary = stats.summary(args.topk)
    if args.jsonl:
        print(json.dumps({"event": "summary", **summary}), flush=True)
    top = ", ".join(f"{t['label']} {t['score']:.2f}" for t in summary["topk"]) or "none (no frame fed)"
    print(f"{summary['stream_s']:.1f} s of stream: {summary['frames_decoded']} frames decoded, {summary['frames_fed']} "
          f"fed, {summary['frames_dropped']} dropped; model {summary['model_ms_per_frame']} ms/frame, max lag "
          f"{summary['max_lag_s']} s, peak RSS {summary['peak_rss_mb']} MB; top-{args.topk} over the stream: {top}",
          file=sys.stderr)
    if summary["frames_dropped"]:
        print(f"note: {summary['frames_dropped']} frames dropped: the model fell more than --max-lag {args.max_lag:g} s "
              "behind the source (a live source does not wait for it); a larger --max-lag keeps them, at the cost "
              "of more delay (a file served over http:// is read as live)", file=sys.stderr)
    return 0
