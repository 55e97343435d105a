"""The inference server behind ``vidrcnn serve`` (``tools/serve.py``): a FastAPI app for one loaded model.

Routes (every answer is JSON; an error is ``{"error": "<one line>"}`` with its status):

- ``GET /v1/health``: ``{"status": "ok", "streams": n, "jobs": n}``; ``GET /v1/model``: name, classes,
  preprocessing, ``kind`` (``"causal"`` or ``"window"``) and ``frame_interval_s`` (the spacing a stream is fed at).
- ``POST /v1/predict``: a video file as the raw request body (``curl --data-binary @clip.mp4``; ``?name=`` names it
  in the answer, ``?topk=``): the JSON of ``tools/infer.py --json``. The body is streamed to a temporary file, never
  held in memory, and that file is removed whatever happens. 413 past ``max_upload_mb``; 415 for a form upload;
  422 for a body that is not a video, with the decoder's reason.
- ``GET /v1/stream`` (WebSocket), causal models only: the client sends each frame as one binary message, the
  frame's time in seconds as a little-endian float64 then a JPEG image. Each connection carries its own model state
  (:class:`~vidrcnn.inference.live.LiveStream`): the frames are resampled to the model's spacing by their times, and
  dropped (counted) when the model falls more than ``max_lag_s`` behind. The server sends ``{"event": "ready", ...}``,
  then ``{"event": "prediction", ...}`` at most every ``every_s`` of stream time (label, score, ``topk`` over the
  stream so far, ``model_ms`` per frame, ``lag_s``, ``dropped``), and ``{"event": "error", ...}`` for a frame it
  cannot read (the stream goes on). A window model is refused with an error message and close code 1008; a stream
  silent for ``idle_timeout_s`` is closed with code 1000 and a message saying so.
- ``GET /``: the live page (``serve_page.html``): the camera or a local video file streamed to ``/v1/stream``.

Safety: ``token`` (when set) is required on every request, as ``Authorization: Bearer TOKEN`` or ``?token=TOKEN``
(a browser's WebSocket cannot set headers), compared in constant time; 401 otherwise. ``max_jobs`` bounds the
streams and predictions running at once: 503 past it. Nothing a request sends names a file: uploads go to a
temporary file whose name the server makes.
"""

# No ``from __future__ import annotations``: FastAPI reads the route functions' annotations (Request, WebSocket) as
# objects, and those are imported inside create_app, since a plain install (without the serve extra) imports every
# module of the package.
import asyncio
import hmac
import io
import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from vidrcnn.errors import VidrcnnError
from vidrcnn.inference.live import LiveStats, LiveStream

TIME_BYTES = 8  # a stream frame: the frame's time (little-endian float64), then the JPEG
CLOSE_POLICY = 1008  # WebSocket close codes: refused by policy (a window model), normal (idle)
CLOSE_NORMAL = 1000

if TYPE_CHECKING:
    from fastapi import FastAPI, Request, WebSocket


@dataclass(frozen=True)
class ServeOptions:
    """What ``vidrcnn serve``'s flags set (``--max-upload-mb``, ``--every``, ...); the module doc says what each
    bounds. ``upload_dir``: where uploads are spooled (None: the system's temporary folder)."""

    max_upload_mb: float = 200.0
    every_s: float = 1.0
    max_lag_s: float = 1.0
    max_jobs: int = os.cpu_count() or 1
    idle_timeout_s: float = 30.0
    topk: int = 5
    token: str | None = None
    chunk_size: int = 32
    backend: str = "auto"
    upload_dir: str | None = None


def frame_time(data: bytes) -> float:
    """The time of a stream message ``data`` (its first 8 bytes); ValueError with the reason for a bad one."""
    if len(data) <= TIME_BYTES:
        raise ValueError(f"{len(data)} bytes: a frame is its time as 8 bytes (float64) then a JPEG image")
    (t,) = struct.unpack("<d", data[:TIME_BYTES])
    if not math.isfinite(t):
        raise ValueError(f"its time is {t}, not a number of seconds")
    return t


def decode_jpeg(data: bytes) -> Any:
    """The image of a stream message ``data`` (after its time) as ``(H, W, 3)`` uint8; ValueError for a bad one."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data[TIME_BYTES:])) as image:
            if image.format != "JPEG":
                raise ValueError(f"a {image.format} image, not a JPEG")
            return np.array(image.convert("RGB"))  # writable: torch takes it without a copy
    except (UnidentifiedImageError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"not a JPEG image ({first})") from None


def model_info(predictor) -> dict[str, Any]:
    """What ``GET /v1/model`` answers."""
    return {"name": predictor.name, "classes": list(predictor.classes), "preprocess": predictor.preprocess,
            "kind": "causal" if predictor.is_causal else "window", "num_frames": predictor.num_frames,
            "frame_interval_s": max(1, predictor.stride) / (predictor.train_fps or 25.0)}


def authorized(token: str | None, headers, query) -> bool:
    """Whether a request with ``headers`` and ``query`` parameters carries ``token`` (any does when it is None)."""
    if token is None:
        return True
    given = query.get("token") or headers.get("authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


def create_app(predictor, options: ServeOptions | None = None) -> "FastAPI":
    """The app serving ``predictor`` (:func:`~vidrcnn.inference.predictor.load_predictor` or
    :func:`~vidrcnn.inference.onnx_runtime.load_onnx_predictor`) with ``options``."""
    from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    o = options or ServeOptions()
    app = FastAPI(title="vidrcnn", docs_url=None, redoc_url=None, openapi_url=None)
    jobs = {"streams": 0, "predictions": 0}
    info = model_info(predictor)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if not authorized(o.token, request.headers, request.query_params):
            return JSONResponse({"error": "a token is required: Authorization: Bearer TOKEN or ?token=TOKEN"}, 401)
        return await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def one_line_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return resources.files("vidrcnn.inference").joinpath("serve_page.html").read_text(encoding="utf-8")

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "streams": jobs["streams"], "jobs": jobs["streams"] + jobs["predictions"]}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return info

    def busy() -> bool:
        return jobs["streams"] + jobs["predictions"] >= o.max_jobs

    @app.post("/v1/predict")
    async def predict(request: Request, name: str = "upload", topk: int | None = None) -> dict[str, Any]:
        if busy():
            raise HTTPException(503, f"the server runs {o.max_jobs} streams and predictions at most "
                                     "(--max-streams): try again later")
        jobs["predictions"] += 1
        try:
            answer = await _predict(request, predictor, o)
        finally:
            jobs["predictions"] -= 1
        answer = answer.to_dict(o.topk if topk is None else max(1, topk))
        answer["video"] = os.path.basename(name)
        return answer

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        if not authorized(o.token, ws.headers, ws.query_params):
            await _refuse(ws, 401, "a token is required: ?token=TOKEN")
            return
        if busy():
            await _refuse(ws, 503, f"the server runs {o.max_jobs} streams and predictions at most (--max-streams): "
                                   "try again later")
            return
        await ws.accept()
        if not predictor.is_causal:
            await ws.send_json({"event": "error", "error": f"model {predictor.name!r} is a window model: it cannot "
                                "stream frame by frame (POST /v1/predict takes a whole video)"})
            await ws.close(CLOSE_POLICY)
            return
        jobs["streams"] += 1
        try:
            await _stream(ws, predictor, o, info)
        except WebSocketDisconnect:
            pass  # the client went away: its state goes with this call
        finally:
            jobs["streams"] -= 1

    return app


async def _predict(request: "Request", predictor, o: ServeOptions):
    """The prediction for the video in ``request``'s body, spooled to a temporary file removed whatever happens."""
    from fastapi import HTTPException
    from starlette.concurrency import run_in_threadpool

    if request.headers.get("content-type", "").startswith("multipart/"):
        raise HTTPException(415, "send the video as the raw request body (curl --data-binary @clip.mp4), not as a form")
    limit = int(o.max_upload_mb * 2**20)
    too_big = f"over the server's limit of {o.max_upload_mb:g} MB (--max-upload-mb)"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the video is {int(declared) / 2**20:.1f} MB, {too_big}")
    fd, path = tempfile.mkstemp(prefix="vidrcnn-upload-", dir=o.upload_dir)
    try:
        size = 0
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"the video is {too_big}")
                f.write(chunk)
        if size == 0:
            raise HTTPException(422, "the request body is empty: send the video as the body")
        return await run_in_threadpool(_predict_file, predictor, path, o)
    except VidrcnnError as exc:  # the decoder's reason, without the temporary file's name
        raise HTTPException(422, f"not a video this server can read: {getattr(exc, 'cause', None) or exc}") from None
    finally:
        os.unlink(path)


def _predict_file(predictor, path: str, o: ServeOptions):
    from vidrcnn.inference.scoring import predict_video
    from vidrcnn.io import probe_video

    probe_video(path)
    return predict_video(predictor, path, chunk_size=o.chunk_size, backend=o.backend)


async def _refuse(ws: "WebSocket", status: int, reason: str) -> None:
    """Refuse a WebSocket before accepting it: an HTTP answer where the server can send one, else a close."""
    from fastapi.responses import JSONResponse

    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"error": reason}, status))
    else:
        await ws.close(CLOSE_POLICY, reason)


async def _stream(ws: "WebSocket", predictor, o: ServeOptions, info: dict[str, Any]) -> None:
    from fastapi import WebSocketDisconnect
    from starlette.concurrency import run_in_threadpool

    stats = LiveStats(predictor.classes, warmup=predictor.num_frames - 1)
    live = LiveStream(predictor, stats, every_s=o.every_s, max_lag_s=o.max_lag_s, step_mode="chunk")
    await ws.send_json({"event": "ready", "model": info["name"], "frame_interval_s": info["frame_interval_s"]})
    n = 0
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(), o.idle_timeout_s)
        except TimeoutError:
            await ws.send_json({"event": "error", "error": f"no frame for {o.idle_timeout_s:g} s: stream closed"})
            await ws.close(CLOSE_NORMAL)
            return
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", CLOSE_NORMAL))
        n += 1
        data = message.get("bytes")
        if data is None:
            await ws.send_json({"event": "error", "error": f"message {n}: text; a frame is a binary message"})
            continue
        try:
            t = frame_time(data)
            # Only the frames the model takes are decoded: a stream that falls behind drops frames cheaply.
            report = await run_in_threadpool(_step, live, t, data) if live.admit(t) else None
        except ValueError as exc:
            await ws.send_json({"event": "error", "error": f"frame {n}: {exc}"})
            continue
        if report is not None:
            await ws.send_text(json.dumps({"event": "prediction", **report, "topk": stats.topk(o.topk)}))


def _step(live: LiveStream, t: float, data: bytes) -> dict[str, Any] | None:
    return live.step(t, decode_jpeg(data))


__all__ = ["ServeOptions", "create_app", "decode_jpeg", "frame_time", "model_info"]
