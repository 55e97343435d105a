"""Headless Chromium for the tests, driven over the Chrome DevTools Protocol with the websockets package the server
already needs (no Playwright or Selenium, no browser download): a fake camera fed from a Y4M file, a page to load,
JavaScript to evaluate, a screenshot to save."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

REQUIRE_ENV = "VIDRCNN_REQUIRE_BROWSER"  # set by .ci/run: there a missing Chromium fails the test, never skips it


def chromium() -> str | None:
    """The Chromium executable (Debian's package: /usr/bin/chromium), or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def write_y4m(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """``frames`` ``(T, H, W, 3)`` uint8 as a Y4M file, the format Chromium's fake camera reads."""
    import av

    with av.open(str(path), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class Browser:
    """A headless Chromium whose camera plays ``camera`` (a Y4M file) in a loop, and one page of it."""

    def __init__(self, executable: str, profile: Path, camera: Path):
        self.process = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
             "--window-size=900,800",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "--use-fake-ui-for-media-stream",
             "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._connect(profile)
        except BaseException:
            self.process.kill()
            self.process.wait(timeout=10)
            raise

    def _connect(self, profile: Path) -> None:
        port_file = profile / "DevToolsActivePort"  # Chromium writes its port there once it listens
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.process.returncode} before listening")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        from urllib.request import urlopen

        with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        from websockets.sync.client import connect

        self.connection = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.ws = self.connection.__enter__()
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        """One DevTools command; its result (events that come first are skipped)."""
        n = next(self.ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == n:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 30.0):
        """Evaluate ``expression`` until it is truthy; its value (None after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        return None

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        try:
            self.connection.__exit__(None, None, None)
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def artifact_dir() -> Path:
    """Where tests leave what a person may want to look at (``$VIDRCNN_ARTIFACTS``, else outputs/test_artifacts)."""
    root = Path(os.environ.get("VIDRCNN_ARTIFACTS", Path(__file__).resolve().parents[1] / "outputs" / "test_artifacts"))
    root.mkdir(parents=True, exist_ok=True)
    return root
