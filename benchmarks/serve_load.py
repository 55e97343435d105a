"""`vidrcnn serve` under load, on loopback: K concurrent WebSocket streams of generated video at 25 fps.

Figures: docs/guide/performance.md, "Serving under load"; the tables of the last run in docs/reports/serve_load/.

    python benchmarks/serve_load.py [--checkpoint CKPT] [--backends torch,onnx] [--streams 1,2,4,8] [--seconds 20]
        [--out docs/reports/serve_load]

For each backend and K the server runs in its own process (`python -m vidrcnn.cli serve`, with `--every 0.04` so
that every frame the model takes is answered) and K client streams each send S seconds of their own moving pattern
(160x120 JPEGs, as the live page sends them) paced at 25 fps. Reported: the per-frame latency (a frame's answer
received minus the frame sent, over the frames answered) p50/p95/p99, the frames dropped by the server's lag bound, messages per second, the
server's peak resident memory and its growth over the run (the mean of its last 5 s minus that of its first 5 s after
a 5 s warm-up), and whether each stream's labels equal offline streaming of the same frames in this process (only
where the server dropped none of that stream's frames: a dropped frame changes the state). Without --checkpoint the
model is a random-weight `rcn_gru_s` at 32x32 (latency does not depend on the weights).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FPS = 25.0
EVERY = 0.04  # the server answers every frame it takes: one latency per frame


def pattern(seed: int, seconds: float) -> list[bytes]:
    """Stream messages (the time as float64, then a JPEG) of a moving 160x120 pattern, its own per ``seed``."""
    from PIL import Image

    yy, xx = np.mgrid[0:120, 0:160]
    a, b = np.random.default_rng(seed).integers(1, 7, 2)
    out = []
    for i in range(int(seconds * FPS)):
        rgb = np.stack([(xx * a + i * 5) % 256, (yy * b + i * 3) % 256, np.full_like(xx, (i * 11 * (seed + 1)) % 256)],
                       -1).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
        out.append(struct.pack("<d", i / FPS) + buf.getvalue())
    return out


def _rss_mb(pid: int, field: str = "VmRSS:") -> float | None:
    """The process's resident memory (``VmHWM:``: its peak so far) in MB, from /proc (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _stream(port: int, messages: list[bytes], result: dict) -> None:
    """Send ``messages`` at 25 fps on one connection while another thread reads the answers."""
    from websockets.sync.client import connect

    sent: list[float] = [math.nan] * len(messages)
    answers: list[tuple[float, dict]] = []
    with connect(f"ws://127.0.0.1:{port}/v1/stream", max_size=None) as ws:
        json.loads(ws.recv(timeout=30))  # ready

        def read() -> None:
            try:
                while True:
                    m = json.loads(ws.recv())
                    answers.append((time.perf_counter(), m))
            except Exception:  # noqa: BLE001 - the connection closed: the run is over
                return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        start = time.perf_counter()
        for i, m in enumerate(messages):
            time.sleep(max(0.0, start + i / FPS - time.perf_counter()))
            sent[i] = time.perf_counter()
            ws.send(m)
        # The last answers, the slowest: until the last frame's (if the server took it) or 3 s of silence.
        last_t = (len(messages) - 1) / FPS
        while True:
            count = len(answers)
            time.sleep(3.0)
            if len(answers) == count or any(abs(m.get("t", -1) - last_t) < 1e-3 for _, m in answers[-3:]):
                break
    reader.join(timeout=5)
    predictions = [(t, m) for t, m in answers if m.get("event") == "prediction"]
    result["latency_ms"] = [1e3 * (t - sent[round(m["t"] * FPS)]) for t, m in predictions]
    result["labels"] = {round(m["t"] * FPS): m["label"] for _, m in predictions}
    # Drops after the last answer are not reported: a stream is compared with offline only when none was seen.
    result["dropped"] = max((m["dropped"] for _, m in predictions), default=None)
    result["messages"] = len(predictions)


def offline_labels(predictor, messages: list[bytes]) -> dict[int, str]:
    from vidrcnn.inference.live import LiveStats, LiveStream
    from vidrcnn.inference.serve import decode_jpeg, frame_time

    stats = LiveStats(predictor.classes, warmup=predictor.num_frames - 1)
    live = LiveStream(predictor, stats, every_s=EVERY, max_lag_s=math.inf, step_mode="chunk")
    labels = {}
    for m in messages:
        t = frame_time(m)
        if live.admit(t) and (r := live.step(t, decode_jpeg(m))) is not None:
            labels[round(r["t"] * FPS)] = r["label"]
    return labels


def run(model_flag: list[str], streams: int, seconds: float, port: int, predictor) -> dict:
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in the finally below; read if the server fails to start
    server = subprocess.Popen([sys.executable, "-m", "vidrcnn.cli", "serve", *model_flag, "--port", str(port),
                               "--every", str(EVERY), "--max-streams", str(streams), "--max-lag", "1"],
                              stdout=subprocess.DEVNULL, stderr=log, text=True)
    rss: list[tuple[float, float]] = []
    peak: list[float] = []
    try:
        from urllib.request import urlopen

        for _ in range(600):
            try:
                with urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1):
                    break
            except OSError:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"the server did not start: {log.read()[-2000:]}") from None
                time.sleep(0.1)
        messages = [pattern(k, seconds) for k in range(streams)]
        results = [{} for _ in range(streams)]
        clients = [threading.Thread(target=_stream, args=(port, messages[k], results[k])) for k in range(streams)]
        start = time.perf_counter()
        for c in clients:
            c.start()
        while any(c.is_alive() for c in clients):
            if (mb := _rss_mb(server.pid)) is not None:
                rss.append((time.perf_counter() - start, mb))
            time.sleep(0.5)
        wall = time.perf_counter() - start
        peak.append(_rss_mb(server.pid, "VmHWM:") or math.nan)  # the kernel's own peak, between samples too
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    latencies = sorted(x for r in results for x in r["latency_ms"])
    sent = streams * int(seconds * FPS)
    dropped = sum(r["dropped"] or 0 for r in results)
    checked = [r["labels"] == offline_labels(predictor, m) for r, m in zip(results, messages, strict=True)
               if r["dropped"] == 0]
    first = [mb for t, mb in rss if 5 <= t < 10]
    last = [mb for t, mb in rss if t >= wall - 5]

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else math.nan

    return {"streams": streams, "seconds": seconds, "frames_sent": sent, "frames_dropped": dropped,
            "dropped_pct": 100 * dropped / sent, "p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "messages_per_s": sum(r["messages"] for r in results) / wall, "peak_rss_mb": peak[0],
            "rss_growth_mb": statistics.fmean(last) - statistics.fmean(first) if first and last else None,
            "offline_equal": f"{sum(checked)} of {len(checked)}" if checked else "n/a (frames dropped)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="default: a random-weight rcn_gru_s checkpoint at 32x32")
    parser.add_argument("--backends", default="torch,onnx", help="torch, onnx or both [torch,onnx]")
    parser.add_argument("--streams", default="1,2,4,8", help="the K to run [1,2,4,8]")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of video per stream [20]")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", help="folder for serve_load.json and serve_load.md")
    args = parser.parse_args(argv)
    import torch

    from vidrcnn.inference.predictor import load_predictor

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="serve_load-"))
    ckpt = Path(args.checkpoint) if args.checkpoint else _random_checkpoint(tmp / "rcn_gru_s.pt")
    predictor = load_predictor(ckpt, device="cpu")
    rows = []
    for backend in args.backends.split(","):
        flag = ["--checkpoint", str(ckpt), "--device", "cpu"]
        if backend == "onnx":
            onnx = tmp / "model.onnx"
            if not onnx.exists():
                subprocess.run([sys.executable, "-m", "vidrcnn.cli", "export", "--checkpoint", str(ckpt), "--out",
                                str(onnx)], check=True, capture_output=True)
            flag = ["--onnx", str(onnx)]
        for k in map(int, args.streams.split(",")):
            row = {"backend": backend, **run(flag, k, args.seconds, args.port, predictor)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = [("| backend | K | p50 ms | p95 ms | p99 ms | dropped | messages/s | server peak MB | growth MB | "
              "= offline |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        growth = "n/a" if r["rss_growth_mb"] is None else f"{r['rss_growth_mb']:+.1f}"
        table.append(f"| {r['backend']} | {r['streams']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{r['dropped_pct']:.1f}% | {r['messages_per_s']:.0f} | {r['peak_rss_mb']:.0f} | {growth} | "
                     f"{r['offline_equal']} |")
    print("\n".join(table))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "serve_load.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        command = f"`python benchmarks/serve_load.py {' '.join(sys.argv[1:])}`, {os.cpu_count()} CPU cores"
        (out / "serve_load.md").write_text("\n".join([command, "", *table, ""]), encoding="utf-8")
    return 0


def _random_checkpoint(path: Path) -> Path:
    import torch

    from vidrcnn.data.transforms import MEAN, STD
    from vidrcnn.engine.checkpoint import DEFAULTS_VERSION, save_checkpoint
    from vidrcnn.models import get_model

    torch.manual_seed(0)
    classes = [f"class{i}" for i in range(11)]
    model = get_model("rcn_gru_s", num_classes=len(classes))
    save_checkpoint(path, {"model": model.state_dict(), "model_name": "rcn_gru_s", "num_classes": len(classes),
                           "classes": classes, "defaults_version": DEFAULTS_VERSION, "config": {}, "epoch": 0,
                           "preprocess": {"num_frames": 16, "stride": 1, "sampling": "segments", "size": 32,
                                          "resize": 32, "mean": list(MEAN), "std": list(STD)}})
    return path


if __name__ == "__main__":
    sys.exit(main())
