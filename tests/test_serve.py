"""vidrcnn serve: predict equals tools/infer.py --json, a stream's messages equal offline streaming of the same frames
(each connection with its own state), and every bad request gets its status and one line, leaving no file behind."""

from __future__ import annotations

import io
import json
import math
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from checkpoints import write_checkpoint
from fastapi.testclient import TestClient
from PIL import Image
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect
from videos import noise_video

from vidrcnn.cli import main as vidrcnn_main
from vidrcnn.inference.live import LiveStats, LiveStream
from vidrcnn.inference.predictor import load_predictor
from vidrcnn.inference.serve import ServeOptions, create_app, decode_jpeg

pytestmark = pytest.mark.usefixtures("one_thread")

FPS = 25.0
TIMING = ("model_ms", "lag_s")  # the wall clock's: not comparable between two runs


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    # Random weights (favour=None): the label changes with the frames, so a mixed-up state shows.
    return write_checkpoint(tmp_path_factory.mktemp("serve") / "gru.pt", "rcn_gru_s", favour=None, num_frames=4,
                            stride=1)


@pytest.fixture(scope="module")
def predictor(ckpt):
    return load_predictor(ckpt, device="cpu")


def message(t: float, rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=90)
    return struct.pack("<d", t) + out.getvalue()


def frames(seed: int, n: int = 30) -> list[bytes]:
    """``n`` stream messages of a moving pattern at 25 fps (each seed its own pattern)."""
    yy, xx = np.mgrid[0:48, 0:64]
    rng = np.random.default_rng(seed)
    a, b = rng.integers(1, 7, 2)
    return [message(i / FPS, np.stack([(xx * a + i * 5) % 256, (yy * b + i * 3) % 256,
                                       np.full_like(xx, (i * 11 * (seed + 1)) % 256)], -1).astype(np.uint8))
            for i in range(n)]


def offline(predictor, messages: list[bytes], *, every_s: float, topk: int = 5) -> list[dict]:
    """The reports of streaming the same frames in this process, as the server words them."""
    stats = LiveStats(predictor.classes, warmup=predictor.num_frames - 1)
    live = LiveStream(predictor, stats, every_s=every_s, max_lag_s=math.inf, step_mode="chunk")
    reports = []
    for m in messages:
        t = struct.unpack("<d", m[:8])[0]
        if live.admit(t) and (r := live.step(t, decode_jpeg(m))) is not None:
            reports.append({"event": "prediction", **r, "topk": stats.topk(topk)})
    return [{k: v for k, v in r.items() if k not in TIMING} for r in reports]


def options(tmp_path: Path, **changes) -> ServeOptions:
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    return ServeOptions(**{"every_s": 0.2, "max_lag_s": math.inf, "upload_dir": str(uploads), **changes})


def predictions(ws, count: int) -> list[dict]:
    out = []
    while len(out) < count:
        m = ws.receive_json()
        assert m["event"] == "prediction", m
        out.append({k: v for k, v in m.items() if k not in TIMING})
    return out


def test_health_model_and_the_page(predictor, tmp_path):
    with TestClient(create_app(predictor, options(tmp_path))) as client:
        assert client.get("/v1/health").json() == {"status": "ok", "streams": 0, "jobs": 0}
        info = client.get("/v1/model").json()
        assert info["name"] == "rcn_gru_s" and info["kind"] == "causal" and info["classes"] == predictor.classes
        assert info["frame_interval_s"] == pytest.approx(1 / FPS)
        page = client.get("/")
        assert page.status_code == 200 and "/v1/stream" in page.text and 'id="label"' in page.text
        assert client.get("/etc/passwd").json() == {"error": "Not Found"}


def test_predict_answers_what_infer_json_prints(ckpt, predictor, tmp_path, capsys):
    video = noise_video(tmp_path / "clip.avi")
    vidrcnn_main(["infer", str(video), "--checkpoint", str(ckpt), "--json", "--device", "cpu"])
    expected = json.loads(capsys.readouterr().out)
    o = options(tmp_path)
    with TestClient(create_app(predictor, o)) as client:
        answer = client.post("/v1/predict?name=clip.avi", content=video.read_bytes()).json()
    assert {**answer, "video": None} == {**expected, "video": None}  # infer names the file by its path
    assert answer["video"] == "clip.avi" and not any(Path(o.upload_dir).iterdir())


def test_bad_uploads_get_their_status_and_one_line_and_leave_no_file(predictor, tmp_path):
    o = options(tmp_path, max_upload_mb=0.01)  # 10 KB
    with TestClient(create_app(predictor, o)) as client:
        too_big = client.post("/v1/predict", content=b"\0" * 20_000)
        assert too_big.status_code == 413 and "0.01 MB" in too_big.json()["error"]
        streamed = client.post("/v1/predict", content=iter([b"\0" * 8000, b"\0" * 8000]))  # no length declared
        assert streamed.status_code == 413
        garbage = client.post("/v1/predict", content=b"this is not a video" * 10)
        assert garbage.status_code == 422 and garbage.json()["error"].startswith("not a video this server can read: ")
        assert "vidrcnn-upload" not in garbage.json()["error"]  # the temporary file's name stays inside
        assert client.post("/v1/predict", content=b"").status_code == 422
        form = client.post("/v1/predict", files={"video": ("clip.avi", b"x")})
        assert form.status_code == 415 and "--data-binary" in form.json()["error"]
    assert not any(Path(o.upload_dir).iterdir())


def test_a_stream_answers_what_offline_streaming_of_the_same_frames_gives(predictor, tmp_path):
    messages = frames(0)
    expected = offline(predictor, messages, every_s=0.2)
    assert len(expected) == 6 and len({r["label"] for r in expected}) > 1  # labels that change: a real comparison
    with TestClient(create_app(predictor, options(tmp_path))) as client, client.websocket_connect("/v1/stream") as ws:
        assert ws.receive_json()["event"] == "ready"
        for m in messages:
            ws.send_bytes(m)
        assert predictions(ws, len(expected)) == expected


def test_two_interleaved_streams_never_mix_their_state(predictor, tmp_path):
    a, b = frames(1), frames(2)
    expected_a, expected_b = offline(predictor, a, every_s=0.2), offline(predictor, b, every_s=0.2)
    assert [r["label"] for r in expected_a] != [r["label"] for r in expected_b]
    with (TestClient(create_app(predictor, options(tmp_path))) as client,
          client.websocket_connect("/v1/stream") as wa, client.websocket_connect("/v1/stream") as wb):
        wa.receive_json(), wb.receive_json()
        got_a, got_b = [], []
        for i, (ma, mb) in enumerate(zip(a, b, strict=True)):
            wa.send_bytes(ma)
            wb.send_bytes(mb)
            if i % 5 == 0:  # one message every 5 frames (0.2 s at 25 fps): read it before the next frames
                got_a += predictions(wa, 1)
                got_b += predictions(wb, 1)
        assert got_a == expected_a and got_b == expected_b


def test_bad_frames_are_answered_and_the_stream_goes_on(predictor, tmp_path):
    good = frames(0, n=6)
    with TestClient(create_app(predictor, options(tmp_path))) as client, client.websocket_connect("/v1/stream") as ws:
        ws.receive_json()
        ws.send_bytes(b"short")
        ws.send_bytes(struct.pack("<d", 0.0) + b"not a jpeg at all")
        ws.send_bytes(struct.pack("<d", math.nan) + good[0][8:])
        png = io.BytesIO()
        Image.new("RGB", (8, 8)).save(png, format="PNG")
        ws.send_bytes(struct.pack("<d", 1 / FPS) + png.getvalue())  # the next frame the model takes
        ws.send_text("hello")
        errors = [ws.receive_json() for _ in range(5)]
        assert [e["event"] for e in errors] == ["error"] * 5
        assert "a frame is its time as 8 bytes" in errors[0]["error"] and "not a JPEG image" in errors[1]["error"]
        assert "not a number of seconds" in errors[2]["error"] and "a PNG image, not a JPEG" in errors[3]["error"]
        assert errors[4]["error"].startswith("message 5: text")
        for m in good:
            ws.send_bytes(m)
        assert ws.receive_json()["event"] == "prediction"


def test_a_window_model_is_refused_at_connect(tmp_path):
    window = load_predictor(write_checkpoint(tmp_path / "c3d.pt", "c3d_s"), device="cpu")
    with TestClient(create_app(window, options(tmp_path))) as client, client.websocket_connect("/v1/stream") as ws:
        refusal = ws.receive_json()
        assert refusal["event"] == "error" and "is a window model" in refusal["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008


def test_a_token_is_asked_of_every_request(predictor, tmp_path):
    with TestClient(create_app(predictor, options(tmp_path, token="s3cret"))) as client:
        for path in ("/", "/v1/health", "/v1/model"):
            assert client.get(path).status_code == 401
        assert client.get("/v1/health?token=wrong").status_code == 401
        assert client.get("/v1/health?token=s3cret").status_code == 200
        assert client.get("/v1/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.post("/v1/predict", content=b"x").status_code == 401
        with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect("/v1/stream"):
            pass
        assert denied.value.status_code == 401
        with client.websocket_connect("/v1/stream?token=s3cret") as ws:
            assert ws.receive_json()["event"] == "ready"


def test_past_max_streams_the_server_answers_503_and_a_closed_stream_frees_its_place(predictor, tmp_path):
    with TestClient(create_app(predictor, options(tmp_path, max_jobs=1))) as client:
        with client.websocket_connect("/v1/stream") as ws:
            ws.receive_json()
            for m in frames(0, n=3):  # a client that goes away mid-stream
                ws.send_bytes(m)
            assert client.get("/v1/health").json()["streams"] == 1
            with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect("/v1/stream"):
                pass
            assert denied.value.status_code == 503
            busy = client.post("/v1/predict", content=b"x")
            assert busy.status_code == 503 and "--max-streams" in busy.json()["error"]
        for _ in range(100):  # the server sees the disconnect on its next read
            if client.get("/v1/health").json()["streams"] == 0:
                break
            time.sleep(0.02)
        assert client.get("/v1/health").json() == {"status": "ok", "streams": 0, "jobs": 0}


def test_an_idle_stream_is_closed_with_the_reason(predictor, tmp_path):
    with (TestClient(create_app(predictor, options(tmp_path, idle_timeout_s=0.2))) as client,
          client.websocket_connect("/v1/stream") as ws):
        ws.receive_json()
        ws.send_text("still here")  # only frames keep a stream open
        assert ws.receive_json()["error"].startswith("message 1: text")
        assert "no frame for 0.2 s" in ws.receive_json()["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1000


def _uvicorn(app):
    """``app`` on a real uvicorn at a free loopback port, in a thread: ``(server, thread, port)``."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, ws="websockets-sansio", log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


def test_a_real_server_on_a_loopback_port(predictor, tmp_path):
    import urllib.request

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    app = create_app(predictor, options(tmp_path, max_jobs=1))
    server, thread, port = _uvicorn(app)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=10) as answer:
            assert json.load(answer)["status"] == "ok"
        messages = frames(3)
        with connect(f"ws://127.0.0.1:{port}/v1/stream") as ws:
            assert json.loads(ws.recv())["event"] == "ready"
            with pytest.raises(InvalidStatus) as refused:  # one stream at most: the second is answered over HTTP
                connect(f"ws://127.0.0.1:{port}/v1/stream")
            assert refused.value.response.status_code == 503 and b"--max-streams" in refused.value.response.body
            for m in messages:
                ws.send(m)
            got = [json.loads(ws.recv()) for _ in range(6)]
        assert [{k: v for k, v in m.items() if k not in TIMING} for m in got] == offline(predictor, messages,
                                                                                         every_s=0.2)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_serve_refuses_a_public_address_without_a_token(ckpt, capsys, monkeypatch):
    monkeypatch.delenv("VIDRCNN_TOKEN", raising=False)
    assert vidrcnn_main(["serve", "--checkpoint", str(ckpt), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --host: 0.0.0.0 is reachable from other machines: set --token") and "\n" == err[-1]


def test_the_onnx_backend_serves_the_same_predictions(ckpt, predictor, tmp_path, capsys):
    from vidrcnn.inference.onnx_runtime import load_onnx_predictor

    onnx = tmp_path / "gru.onnx"
    assert vidrcnn_main(["export", "--checkpoint", str(ckpt), "--out", str(onnx)]) == 0
    capsys.readouterr()
    messages = frames(4)
    expected = offline(predictor, messages, every_s=0.2)  # the checkpoint's, in PyTorch
    with (TestClient(create_app(load_onnx_predictor(onnx), options(tmp_path))) as client,
          client.websocket_connect("/v1/stream") as ws):
        assert ws.receive_json()["event"] == "ready"
        for m in messages:
            ws.send_bytes(m)
        got = predictions(ws, len(expected))
    assert [m["label"] for m in got] == [m["label"] for m in expected]
    assert [m["score"] for m in got] == pytest.approx([m["score"] for m in expected], abs=2e-4)  # 4 decimals sent


def _blocks(seed: int) -> np.ndarray:
    """A 240x320 still of coloured blocks: what the fake camera shows, every frame."""
    rng = np.random.default_rng(seed)
    return np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), 40, 0), 40, 1)


def _stream_probs(predictor, image: np.ndarray, steps: int = 30):
    import torch

    x = predictor.transform(torch.from_numpy(image)[None])[None].repeat(1, 1, steps, 1, 1)
    with torch.no_grad():
        logits, _ = predictor.model.stream(x)
    return logits[0, -1].softmax(-1)


def _input_dependent_checkpoint(path: Path, images: list[np.ndarray]) -> Path:
    """A checkpoint whose label depends on what it sees: random weights give every image about the same scores
    (the features share a large common part), so the classifier is rescaled and its bias centres the features of
    ``images``."""
    import torch

    from vidrcnn.engine.checkpoint import load_checkpoint, save_checkpoint

    write_checkpoint(path, "rcn_gru_s", favour=None, num_frames=4, stride=1)
    predictor = load_predictor(path, device="cpu")
    features = []
    hook = predictor.model.fc.register_forward_hook(lambda m, i, o: features.append(i[0].reshape(-1, i[0].shape[-1])[-1]))
    for image in images:
        _stream_probs(predictor, image)
    hook.remove()
    f = torch.stack(features)
    with torch.no_grad():
        w = predictor.model.fc.weight
        w.mul_(50 / w.norm(dim=1, keepdim=True) / (f - f.mean(0)).norm(dim=1).mean())
        bias = -(w @ f.mean(0))
    ckpt = load_checkpoint(path)
    ckpt["model"]["fc.weight"], ckpt["model"]["fc.bias"] = w.detach().clone(), bias
    save_checkpoint(path, ckpt)
    return path


def test_the_page_in_a_real_browser_shows_the_offline_label_of_the_camera(tmp_path):
    import os

    from browser import REQUIRE_ENV, Browser, artifact_dir, chromium, write_y4m

    executable = chromium()
    if executable is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"Chromium is not installed, and {REQUIRE_ENV} says this machine must run the browser test")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); CI installs it and runs this")
    images = [_blocks(seed) for seed in range(8)]
    predictor = load_predictor(_input_dependent_checkpoint(tmp_path / "gru.pt", images), device="cpu")
    probs = _stream_probs(predictor, images[2])
    top2 = probs.sort(descending=True).values[:2]
    assert float(top2[0] - top2[1]) > 0.5  # a clear label: JPEG and scaling in the browser cannot flip it
    expected = predictor.classes[int(probs.argmax())]
    assert {predictor.classes[int(_stream_probs(predictor, im).argmax())] for im in images} != {expected}

    camera = write_y4m(tmp_path / "camera.y4m", np.stack([images[2]] * 10))
    server, thread, port = _uvicorn(create_app(predictor, options(tmp_path)))
    browser = None
    try:
        (profile := tmp_path / "profile").mkdir()
        browser = Browser(executable, profile, camera)
        browser.call("Emulation.setDeviceMetricsOverride", width=900, height=1000, deviceScaleFactor=1, mobile=False)
        browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/?autostart=1")
        seen = browser.wait_for("(window.vidrcnnMessages || 0) >= 5 && document.getElementById('label').textContent",
                                timeout_s=60)
        shot = browser.screenshot(artifact_dir() / "serve_page.png")
        status = browser.evaluate("document.getElementById('status').textContent")
        assert seen == expected, f"the page shows {seen!r} ({status!r}); offline: {expected!r}; screenshot {shot}"
        assert shot.stat().st_size > 1000
    finally:
        if browser is not None:
            browser.close()
        server.should_exit = True
        thread.join(timeout=10)


def test_a_failure_inside_the_server_is_one_line_not_a_traceback(predictor, tmp_path, monkeypatch, caplog):
    from vidrcnn.inference import serve

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory\nand more lines")

    monkeypatch.setattr(serve, "_predict_file", boom)
    monkeypatch.setattr(serve, "_step", boom)
    o = options(tmp_path)
    with TestClient(create_app(predictor, o)) as client:
        failed = client.post("/v1/predict", content=b"any bytes")
        assert failed.status_code == 500
        assert failed.json() == {"error": "the server failed: RuntimeError: out of memory"}
        with client.websocket_connect("/v1/stream") as ws:
            ws.receive_json()
            ws.send_bytes(frames(0, n=1)[0])
            assert ws.receive_json() == {"event": "error", "error": "the server failed: RuntimeError: out of memory"}
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 1011
        assert client.get("/v1/health").json()["jobs"] == 0
    assert not any(Path(o.upload_dir).iterdir())
    assert [r.getMessage() for r in caplog.records if r.name == "vidrcnn.inference.serve"] == [
        "predict: RuntimeError: out of memory", "stream: RuntimeError: out of memory"]
    assert not any(r.exc_info for r in caplog.records)


def test_requests_from_another_sites_page_or_host_are_refused(predictor, tmp_path):
    o = options(tmp_path, allowed_hosts=("127.0.0.1", "localhost", "::1"))
    with TestClient(create_app(predictor, o), base_url="http://127.0.0.1:8000") as client:
        assert client.get("/v1/health").status_code == 200
        assert client.get("/v1/health", headers={"Origin": "http://127.0.0.1:8000"}).status_code == 200  # its page
        rebound = client.get("/v1/health", headers={"Host": "evil.example:8000"})  # DNS rebinding
        assert rebound.status_code == 403 and "is not this server's" in rebound.json()["error"]
        other = client.post("/v1/predict", content=b"x", headers={"Origin": "https://evil.example"})
        assert other.status_code == 403 and "https://evil.example is refused" in other.json()["error"]
        with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect(
                "/v1/stream", headers={"Origin": "https://evil.example"}):
            pass
        assert denied.value.status_code == 403
        same = {"Origin": "http://127.0.0.1:8000", "Host": "127.0.0.1:8000"}
        with client.websocket_connect("/v1/stream", headers=same) as ws:
            assert ws.receive_json()["event"] == "ready"


def test_uploads_that_name_other_files_are_refused(predictor, tmp_path, sample_videos):
    # FFmpeg's concat script (and playlists) would open the files they name: an upload may only be a container.
    script = f"ffconcat version 1.0\nfile '{sample_videos['bikes.mp4']}'\n".encode()
    o = options(tmp_path)
    with TestClient(create_app(predictor, o)) as client:
        answer = client.post("/v1/predict", content=script)
        assert answer.status_code == 422 and "not a container this server takes" in answer.json()["error"]
        bad_topk = client.post("/v1/predict?topk=many", content=b"x")
        assert bad_topk.status_code == 422 and bad_topk.json()["error"].startswith("bad request parameter (topk:")
    assert not any(Path(o.upload_dir).iterdir())


def test_absurd_frame_times_are_refused_or_skipped_at_once(predictor, tmp_path):
    good = frames(0, n=6)
    with (TestClient(create_app(predictor, options(tmp_path, token="t"))) as client,
          client.websocket_connect("/v1/stream", headers={"Authorization": "bearer t"}) as ws):  # the header works too
        ws.receive_json()
        ws.send_bytes(struct.pack("<d", 1e300) + good[0][8:])
        assert "at most 1e+09" in ws.receive_json()["error"]
        ws.send_bytes(good[0])
        assert ws.receive_json()["event"] == "prediction"
        start = time.perf_counter()
        ws.send_bytes(struct.pack("<d", 9e8) + good[1][8:])  # 28 years later: the next model frame, found at once
        assert ws.receive_json()["event"] == "prediction" and time.perf_counter() - start < 5
