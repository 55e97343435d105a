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

Safety: a request whose Origin is another site's page, or (on the loopback) whose Host is not this machine's, is
refused with 403, so a web page the user visits cannot use the server. ``token`` (when set) is required on every
request, as ``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (a browser's WebSocket cannot set headers),
compared in constant time; 401 otherwise. ``max_jobs`` bounds the streams and predictions running at once: 503
past it. Nothing a request sends names a file: uploads go to a
temporary file whose name the server makes.
"""

# No ``from __future__ import annotations``: FastAPI reads the route functions' annotations (Request, WebSocket) as
# objects, and those are imported inside create_app, since a plain install (without the serve extra) imports every
# module of the package.
import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import logging
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from vidrcnn.errors import VideoDecodeError, VidrcnnError
from vidrcnn.inference.live import LiveStats, LiveStream

TIME_BYTES = 8  # a stream frame: the frame's time (little-endian float64), then the JPEG
MAX_TIME_S = 1e9  # a frame's time in seconds: about 30 years of stream
MAX_FRAME_PIXELS = 4096 * 4096  # a model sees 32-112 pixels a side: a larger frame is a mistake or an attack
# The containers an upload may be: what cameras and phones write. Not FFmpeg's playlists and scripts (HLS, concat),
# which name other files: an upload must never make the server open anything but itself.
UPLOAD_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,flv,ogg,asf,h264,hevc,mjpeg,gif,yuv4mpegpipe"
CLOSE_POLICY = 1008  # WebSocket close codes: refused by policy (a window model), normal (idle)
CLOSE_NORMAL = 1000
CLOSE_ERROR = 1011
log = logging.getLogger(__name__)

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
    allowed_hosts: tuple[str, ...] | None = None  # the Host names served (None: any); the loopback names on 127.0.0.1


def frame_time(data: bytes) -> float:
    """The time of a stream message ``data`` (its first 8 bytes); ValueError with the reason for a bad one."""
    if len(data) <= TIME_BYTES:
        raise ValueError(f"{len(data)} bytes: a frame is its time as 8 bytes (float64) then a JPEG image")
    (t,) = struct.unpack("<d", data[:TIME_BYTES])
    if not math.isfinite(t) or abs(t) > MAX_TIME_S:
        raise ValueError(f"its time is {t}, not a number of seconds (at most {MAX_TIME_S:g})")
    return t


def decode_jpeg(data: bytes) -> Any:
    """The image of a stream message ``data`` (after its time) as ``(H, W, 3)`` uint8; ValueError for a bad one."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data[TIME_BYTES:])) as image:
            if image.format not in ("JPEG", "MPO"):  # MPO: a camera's JPEG with extra pictures after the first
                raise ValueError(f"a {image.format} image, not a JPEG")
            if image.width * image.height > MAX_FRAME_PIXELS:  # checked before any pixel is decoded
                raise ValueError(f"{image.width}x{image.height} pixels, over the {MAX_FRAME_PIXELS:,} a frame may have")
            return np.array(image.convert("RGB"))  # writable: torch takes it without a copy
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"not a JPEG image ({first})") from None


def model_info(predictor) -> dict[str, Any]:
    """What ``GET /v1/model`` answers."""
    return {"name": predictor.name, "classes": list(predictor.classes), "preprocess": predictor.preprocess,
            "kind": "causal" if predictor.is_causal else "window", "num_frames": predictor.num_frames,
            "frame_interval_s": predictor.frame_interval_s}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def foreign(headers, allowed_hosts: tuple[str, ...] | None) -> str | None:
    """Why a request with ``headers`` is refused as coming from elsewhere (None: it is not): a Host outside
    ``allowed_hosts`` (a DNS-rebinding page), or an Origin other than the Host (another site's page in the user's
    browser: browsers apply no same-origin rule to WebSockets or to a plain POST)."""
    from urllib.parse import urlsplit

    host = headers.get("host", "")
    if allowed_hosts is not None and urlsplit(f"//{host}").hostname not in allowed_hosts:
        return f"the Host {host!r} is not this server's (serving {', '.join(allowed_hosts)})"
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != host:
        return f"a request from the page of {origin} is refused: only this server's own page may call it"
    return None


def authorized(token: str | None, headers, query) -> bool:
    """Whether a request with ``headers`` and ``query`` parameters carries ``token`` (any does when it is None)."""
    if token is None:
        return True
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    given = query.get("token") or (credentials.strip() if scheme.lower() == "bearer" else "")
    digest = [hashlib.sha256(x.encode()).digest() for x in (given, token)]  # equal lengths: nothing leaks
    return hmac.compare_digest(*digest)


def create_app(predictor, options: ServeOptions | None = None) -> "FastAPI":
    """The app serving ``predictor`` (:func:`~vidrcnn.inference.predictor.load_predictor` or
    :func:`~vidrcnn.inference.onnx_runtime.load_onnx_predictor`) with ``options``."""
    from fastapi import FastAPI, HTTPException, Request, WebSocket
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    o = options or ServeOptions()
    app = FastAPI(title="vidrcnn", docs_url=None, redoc_url=None, openapi_url=None)
    jobs = {"streams": 0, "predictions": 0}
    info = model_info(predictor)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if (reason := foreign(request.headers, o.allowed_hosts)) is not None:
            return JSONResponse({"error": reason}, 403)
        if not authorized(o.token, request.headers, request.query_params):
            return JSONResponse({"error": "a token is required: Authorization: Bearer TOKEN or ?token=TOKEN"}, 401)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError):
        where = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"bad request parameter ({where})"}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def one_line_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, exc.status_code)

    page_html = resources.files("vidrcnn.inference").joinpath("serve_page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return page_html

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
            raise HTTPException(503, _busy_reason(o))
        jobs["predictions"] += 1
        try:
            answer = await _predict(request, predictor, o)
        except HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - one line in the log and in the answer, never a traceback
            log.error("predict: %s", _one_line(exc))
            raise HTTPException(500, f"the server failed: {_one_line(exc)}") from None
        finally:
            jobs["predictions"] -= 1
        answer = answer.to_dict(o.topk if topk is None else max(1, topk))
        answer["video"] = os.path.basename(name)
        return answer

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        if (refused := _refusal(ws, o, busy())) is not None:
            await _refuse(ws, *refused)
            return
        jobs["streams"] += 1  # counted before any await: streams connecting at once cannot all pass the check
        try:
            await _accept_and_stream(ws, predictor, o, info)
        finally:
            jobs["streams"] -= 1

    return app


async def _predict(request: "Request", predictor, o: ServeOptions):
    """The prediction for the video in ``request``'s body, spooled to a temporary file removed whatever happens."""
    from fastapi import HTTPException
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect

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
            chunks = request.stream().__aiter__()
            while True:
                try:  # a client that stops sending holds a job slot: it has idle_timeout_s between two chunks
                    chunk = await asyncio.wait_for(chunks.__anext__(), o.idle_timeout_s)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    raise HTTPException(408, f"no data for {o.idle_timeout_s:g} s: upload abandoned") from None
                except ClientDisconnect:
                    raise HTTPException(400, "the client went away mid-upload") from None
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"the video is {too_big}")
                f.write(chunk)
        if size == 0:
            raise HTTPException(422, "the request body is empty: send the video as the body")
        return await run_in_threadpool(_predict_file, predictor, path, o)
    except VidrcnnError as exc:  # the decoder's reason, without the temporary file's name
        reason = str(getattr(exc, "cause", None) or exc).replace(path, "the upload")  # its name stays inside
        raise HTTPException(422, f"not a video this server can read: {reason}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _predict_file(predictor, path: str, o: ServeOptions):
    import av

    from vidrcnn.inference.scoring import predict_video
    from vidrcnn.io import probe_video

    try:  # FFmpeg picks the demuxer from the content: only the containers of UPLOAD_FORMATS, only this file
        with av.open(path, options={"format_whitelist": UPLOAD_FORMATS, "protocol_whitelist": "file"}):
            pass
    except (av.FFmpegError, ValueError) as exc:
        raise VideoDecodeError(None, f"not a container this server takes ({str(exc).splitlines()[0]})") from None
    probe_video(path)
    # Whole chunks on every device: a CUDA graph captured in one request's thread would refuse the others' kernels.
    return predict_video(predictor, path, chunk_size=o.chunk_size, backend=o.backend, step_mode="chunk")


def _busy_reason(o: ServeOptions) -> str:
    return f"the server runs {o.max_jobs} streams and predictions at most (--max-streams): try again later"


def _refusal(ws: "WebSocket", o: ServeOptions, busy: bool) -> tuple[int, str] | None:
    """The status and reason a WebSocket is refused with before it is accepted (None: it is not)."""
    if (reason := foreign(ws.headers, o.allowed_hosts)) is not None:
        return 403, reason
    if not authorized(o.token, ws.headers, ws.query_params):
        return 401, "a token is required: ?token=TOKEN"
    if busy:
        return 503, _busy_reason(o)
    return None


async def _refuse(ws: "WebSocket", status: int, reason: str) -> None:
    """Refuse a WebSocket before accepting it: an HTTP answer where the server can send one, else a close."""
    from fastapi.responses import JSONResponse

    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"error": reason}, status))
    else:
        await ws.close(CLOSE_POLICY, reason)


async def _accept_and_stream(ws: "WebSocket", predictor, o: ServeOptions, info: dict[str, Any]) -> None:
    """Accept a counted stream and serve it until it ends; a window model is refused, a failure is one line."""
    from fastapi import WebSocketDisconnect

    try:
        await ws.accept()
        if not predictor.is_causal:
            await ws.send_json({"event": "error", "error": f"model {predictor.name!r} is a window model: it "
                                "cannot stream frame by frame (POST /v1/predict takes a whole video)"})
            await ws.close(CLOSE_POLICY)
            return
        await _stream(ws, predictor, o, info)
    except (WebSocketDisconnect, ConnectionError):
        pass  # the client went away: its state goes with this call
    except Exception as exc:  # noqa: BLE001 - one line in the log and to the client, never a traceback
        log.error("stream: %s", _one_line(exc))
        with contextlib.suppress(Exception):  # the client may be gone too
            await ws.send_json({"event": "error", "error": f"the server failed: {_one_line(exc)}"})
            await ws.close(CLOSE_ERROR)


async def _stream(ws: "WebSocket", predictor, o: ServeOptions, info: dict[str, Any]) -> None:
    from fastapi import WebSocketDisconnect
    from starlette.concurrency import run_in_threadpool

    stats = LiveStats(predictor.classes, warmup=predictor.num_frames - 1)
    live = LiveStream(predictor, stats, every_s=o.every_s, max_lag_s=o.max_lag_s, step_mode="chunk")
    await ws.send_json({"event": "ready", "model": info["name"], "frame_interval_s": info["frame_interval_s"]})
    n = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + o.idle_timeout_s  # moved on by frames only: other messages do not keep a stream open
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
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
            deadline = loop.time() + o.idle_timeout_s
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
