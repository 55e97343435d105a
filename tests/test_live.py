"""Live sources in tools/infer.py: a stream piped on stdin is predicted frame by frame as a file is, frames are
dropped when the model falls behind, Ctrl-C ends with a summary, and memory does not grow with the stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from checkpoints import write_checkpoint
from toolrun import TOOLS
from videos import mpegts_command

from vidrcnn.inference.live import LiveStats, is_live, predict_live
from vidrcnn.inference.predictor import load_predictor
from vidrcnn.inference.scoring import predict_video

pytestmark = pytest.mark.usefixtures("one_thread")


def _stream(seconds: float, *, realtime: bool = False) -> subprocess.Popen:
    return subprocess.Popen(mpegts_command(seconds, realtime=realtime), stdout=subprocess.PIPE)


def _default_sigint() -> None:
    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: give the tool the disposition a terminal gives it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _infer(args, stdin) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(TOOLS / "infer.py"), *args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_default_sigint)  # noqa: PLW1509 - it only resets one signal


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("live") / "rcn.pt", "rcn_gru_s", favour=None, num_frames=4)


def test_live_sources_are_told_from_files():
    assert all(is_live(s) for s in ("-", "/dev/video0", "rtsp://cam/1", "HTTP://host/x.ts", "udp://0.0.0.0:1234"))
    assert not any(is_live(s) for s in ("video.mp4", "./-", "/data/rtsp.mp4"))


def test_a_piped_stream_is_predicted_as_the_same_bytes_in_a_file(ckpt, tmp_path):
    data = _stream(10).communicate()[0]
    (tmp_path / "stream.ts").write_bytes(data)
    # --max-lag: a pipe from memory is faster than real time, but a loaded machine must not drop frames here
    run = subprocess.run([sys.executable, str(TOOLS / "infer.py"), "-", "--checkpoint", str(ckpt), "--jsonl",
                          "--topk", "3", "--max-lag", "1e9"], input=data, capture_output=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr.decode()
    lines = [json.loads(line) for line in run.stdout.decode().splitlines()]
    predictions, summary = lines[:-1], lines[-1]
    assert [p["event"] for p in predictions] == ["prediction"] * 10 and summary["event"] == "summary"
    assert [p["t"] for p in predictions] == pytest.approx(list(range(10)), abs=0.05)  # one a second of stream
    assert summary["frames_decoded"] == 250 and summary["frames_fed"] == 125 and summary["frames_dropped"] == 0
    stderr = run.stderr.decode()
    assert "250 frames decoded, 125 fed, 0 dropped" in stderr and "Traceback" not in stderr
    # The same frames fed to the same model: the file's video-level top-k (its per-frame stream, stride 2).
    expected = predict_video(load_predictor(ckpt), tmp_path / "stream.ts").to_dict(3)["topk"]
    assert [t["label"] for t in summary["topk"]] == [t["label"] for t in expected]
    assert [t["score"] for t in summary["topk"]] == pytest.approx([t["score"] for t in expected], abs=1e-5)


def test_frames_are_dropped_when_the_model_cannot_keep_up(ckpt):
    predictor = load_predictor(ckpt)
    ticks = iter(np.arange(0, 1e4, 0.05))  # every clock reading 50 ms later: a step costs about 100 ms of wall time
    frames = ((i / 25, np.zeros((48, 64, 3), np.uint8)) for i in range(250))
    stats = LiveStats(predictor.classes, warmup=3)
    reports = list(predict_live(predictor, frames, stats, every_s=1.0, max_lag_s=0.5, clock=lambda: next(ticks)))
    assert stats.decoded == 250 and stats.dropped > 0 and stats.fed + stats.dropped == 125  # every other frame
    assert stats.max_lag_s <= 0.5  # a frame is fed only while the lag is under the bound
    assert reports and reports[-1]["dropped"] <= stats.dropped and all(r["model_ms"] > 0 for r in reports)


def test_ctrl_c_ends_a_live_stream_with_a_summary(ckpt):
    source = _stream(60, realtime=True)
    proc = _infer(["-", "--checkpoint", str(ckpt), "--every", "0.5"], source.stdout)
    source.stdout.close()
    try:
        first = proc.stdout.readline()  # a prediction: the stream is being predicted as it comes
        assert " s  " in first and "ms/frame" in first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        source.kill()
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err
    assert "interrupted" in err and "frames decoded" in err and "top-5 over the stream" in err


def _summary(seconds: float, ckpt: Path) -> dict:
    source = _stream(seconds)
    proc = _infer(["-", "--checkpoint", str(ckpt), "--every", "10", "--jsonl", "--max-lag", "1e9"], source.stdout)
    source.stdout.close()
    out, err = proc.communicate(timeout=600)
    source.wait()
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def test_memory_does_not_grow_with_the_length_of_the_stream(ckpt):
    short, long = _summary(15, ckpt), _summary(150, ckpt)  # ten times as long: 3,750 frames
    assert short["frames_decoded"] == 375 and long["frames_decoded"] == 3750 and long["frames_dropped"] == 0
    assert long["peak_rss_mb"] - short["peak_rss_mb"] < 16, (short["peak_rss_mb"], long["peak_rss_mb"])


@pytest.mark.parametrize("source,stdin,named", [("rtsp://127.0.0.1:1/none", b"", "rtsp://127.0.0.1:1/none"),
                                                ("-", b"not a video stream at all" * 100, "stdin")],
                         ids=["unreachable url", "garbage on stdin"])
def test_a_bad_live_source_is_one_error_line_naming_it(ckpt, source, stdin, named):
    run = subprocess.run([sys.executable, str(TOOLS / "infer.py"), source, "--checkpoint", str(ckpt)], input=stdin,
                         capture_output=True, timeout=120, check=False)
    err = run.stderr.decode()
    assert run.returncode == 2 and err.startswith(f"error: {named}: ") and err.count("\n") == 1, err


def test_a_network_stream_url_is_predicted_frame_by_frame(ckpt, tmp_path):
    import functools
    import http.server
    import threading

    (tmp_path / "live.ts").write_bytes(_stream(4).communicate()[0])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.ts"
        run = subprocess.run([sys.executable, str(TOOLS / "infer.py"), url, "--checkpoint", str(ckpt), "--jsonl",
                              "--max-lag", "1e9"], capture_output=True, text=True, timeout=300, check=False)
        # A file served over http:// is read as live: frames the model cannot keep up with are dropped, and said so
        hurried = subprocess.run([sys.executable, str(TOOLS / "infer.py"), url, "--checkpoint", str(ckpt),
                                  "--max-lag", "1e-6"], capture_output=True, text=True, timeout=300, check=False)
    finally:
        server.shutdown()
    assert hurried.returncode == 0 and "frames dropped: the model fell more than --max-lag 1e-06 s behind" in \
        hurried.stderr and "a larger --max-lag keeps them" in hurried.stderr, hurried.stderr
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.splitlines()[-1])
    assert summary["event"] == "summary" and summary["frames_decoded"] == 100 and summary["frames_fed"] == 50


def test_a_source_ahead_of_real_time_has_no_negative_lag(ckpt):
    predictor = load_predictor(ckpt)
    ticks = iter(np.arange(0, 1e4, 0.001))  # the machine is fast: the stream's clock runs ahead of the wall's
    frames = ((i / 25, np.zeros((48, 64, 3), np.uint8)) for i in range(50))
    stats = LiveStats(predictor.classes, warmup=3)
    reports = list(predict_live(predictor, frames, stats, every_s=0.5, max_lag_s=1.0, clock=lambda: next(ticks)))
    assert reports and all(0.0 <= r["lag_s"] < 0.01 for r in reports)  # not -1.5 s: ahead is not behind
    assert 0.0 <= stats.max_lag_s < 0.01 and stats.dropped == 0


def _silent_server(send: bytes = b""):
    """A TCP server that answers every connection with ``send`` and then says nothing more; (url, stop)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(4096)  # the request
            if send:
                conn.sendall(send)
            held.append(conn)  # kept open, silent

    threading.Thread(target=serve, daemon=True).start()

    def stop():
        listener.close()
        for conn in held:
            conn.close()

    return f"http://127.0.0.1:{listener.getsockname()[1]}/live.ts", stop


def test_a_silent_source_and_a_stall_say_that_they_timed_out(ckpt):
    url, stop = _silent_server()
    try:
        run = subprocess.run([sys.executable, str(TOOLS / "infer.py"), url, "--checkpoint", str(ckpt), "--timeout",
                              "1"], capture_output=True, text=True, timeout=120, check=False)
    finally:
        stop()
    assert run.returncode == 2 and run.stderr == (f"error: {url}: cannot open the live source (nothing received for "
                                                  "1 s: timed out (--timeout sets how long to wait))\n"), run.stderr
    data = _stream(4).communicate()[0]
    head = b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\n\r\n" + data[: len(data) // 2]
    url, stop = _silent_server(head)  # half a stream, then silence
    try:
        run = subprocess.run([sys.executable, str(TOOLS / "infer.py"), url, "--checkpoint", str(ckpt), "--timeout",
                              "1", "--max-lag", "1e9"], capture_output=True, text=True, timeout=120, check=False)
    finally:
        stop()
    assert run.returncode == 0, run.stderr
    assert f"warning: {url}: the stream broke off (nothing received for 1 s: timed out" in run.stderr, run.stderr
