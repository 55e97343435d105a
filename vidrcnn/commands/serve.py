"""Serve one model over HTTP and WebSocket: predictions for uploaded videos, live streams with per-connection state,
and a live page for the camera or a video file.

    vidrcnn serve --checkpoint CKPT [--host 127.0.0.1] [--port 8000]     # then open http://127.0.0.1:8000/
    vidrcnn serve --onnx MODEL.onnx ...                                   # a model of tools/export.py, on onnxruntime
    curl --data-binary @clip.mp4 'http://127.0.0.1:8000/v1/predict?name=clip.mp4'   # the JSON of infer --json

Needs the serve extra (pip install -e '.[serve]'). The routes, the stream's messages and the limits are described
in vidrcnn/inference/serve.py. Bound to anything but the loopback, the server needs a token (--token or the
VIDRCNN_TOKEN environment variable), asked of every request.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys

from vidrcnn.errors import ConfigError

TOKEN_ENV = "VIDRCNN_TOKEN"


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="checkpoint written by tools/train.py")
    model.add_argument("--onnx", help="a model written by tools/export.py, run with onnxruntime on the CPU")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind [127.0.0.1: this machine only]")
    parser.add_argument("--port", type=int, default=8000, help="port to bind [8000]")
    parser.add_argument("--token", help=f"required on every request (default: ${TOKEN_ENV}); needed when --host is "
                        "not a loopback address")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest video POST /v1/predict takes [200]")
    parser.add_argument("--max-streams", type=int, default=os.cpu_count() or 1,
                        help="streams and predictions at once; more are answered 503 [the CPU cores]")
    parser.add_argument("--every", type=float, default=1.0, help="seconds of stream between two stream messages [1]")
    parser.add_argument("--max-lag", type=float, default=1.0,
                        help="seconds a stream may fall behind before its frames are dropped (counted) [1]")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="seconds without a frame before a stream "
                        "is closed [30]")
    parser.add_argument("--topk", type=int, default=5, help="labels in each answer [5]")
    parser.add_argument("--device", default="auto", help="--checkpoint: auto (CUDA when available), cpu, cuda")
    parser.add_argument("--weights", choices=("ema", "raw"), help="--checkpoint: the EMA of the weights or the raw ones")
    return parser


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.topk < 1 or args.max_streams < 1 or not args.max_upload_mb > 0:
        raise ConfigError("--topk, --max-streams, --max-upload-mb", "must be > 0")
    if not args.every > 0 or not args.max_lag > 0 or not args.idle_timeout > 0:
        raise ConfigError("--every, --max-lag, --idle-timeout", "must be > 0")
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(args.host):
        raise ConfigError("--host", f"{args.host} is reachable from other machines: set --token (or ${TOKEN_ENV}) so "
                                    "that only those who have it are served")
    missing = [m for m in ("fastapi", "uvicorn", "PIL") if importlib.util.find_spec(m) is None]
    if args.onnx and importlib.util.find_spec("onnxruntime") is None:
        missing.append("onnxruntime")
    if missing:
        raise ConfigError("vidrcnn serve", f"needs {', '.join(missing)}: pip install -e '.[serve]'"
                          + (" and '.[deploy]'" if "onnxruntime" in missing else ""))

    import uvicorn

    from vidrcnn.inference.serve import ServeOptions, create_app

    if args.onnx:
        from vidrcnn.inference.onnx_runtime import load_onnx_predictor

        predictor = load_onnx_predictor(args.onnx)
    else:
        from vidrcnn.inference.predictor import load_predictor

        predictor = load_predictor(args.checkpoint, device=args.device, weights=args.weights)
    loopback = ("127.0.0.1", "localhost", "::1") if is_loopback(args.host) else None
    options = ServeOptions(max_upload_mb=args.max_upload_mb, every_s=args.every, max_lag_s=args.max_lag,
                           max_jobs=args.max_streams, idle_timeout_s=args.idle_timeout, topk=args.topk, token=token,
                           allowed_hosts=loopback)
    app = create_app(predictor, options)
    kind = "causal: streams" if predictor.is_causal else "window: no streaming"
    print(f"serving {predictor.name} ({kind}) on http://{args.host}:{args.port}/", file=sys.stderr)
    # No access log, and warnings only: uvicorn would log each request's query string, the ?token= with it.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, ws="websockets-sansio")
    return 0
