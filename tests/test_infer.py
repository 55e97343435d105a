"""Long-video inference: streaming and sliding windows in bounded memory, timelines, and tools/infer.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoints import write_checkpoint
from toolrun import load_tool
from torch import nn
from videos import numbered_frames, write_bad_corpus

from vidrcnn.cli import run_tool
from vidrcnn.data.transforms import MEAN, STD
from vidrcnn.errors import OutputError
from vidrcnn.inference.predictor import load_predictor, model_stride
from vidrcnn.inference.render import draw_label, render_video
from vidrcnn.inference.scoring import VideoPrediction, predict_video
from vidrcnn.inference.steps import stream_steps, window_steps
from vidrcnn.io import VideoWriter, open_video, write_video
from vidrcnn.models import get_model


def to_clip(frames: torch.Tensor) -> torch.Tensor:
    """A minimal eval transform: uint8 (T, H, W, 3) -> float (C, T, H, W)."""
    return frames.permute(3, 0, 1, 2).float() / 255


class ChunkSpy:
    """A decoder stand-in: yields ``total`` random frames in chunks and records how many frames are alive.

    Frames are numpy-backed, so a weak reference to the array tells whether anything (a view, a buffer) still holds
    the chunk's memory. No gc.collect(): memory that only a collection would free counts as held.
    """

    def __init__(self, total: int, chunk_size: int, size: int = 16, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.video = rng.integers(0, 256, (total, size, size, 3), dtype=np.uint8)  # the reference, never yielded
        self.chunk_size = chunk_size
        self.max_alive = 0
        self._refs: list[tuple[weakref.ref, int]] = []

    def __iter__(self):
        for start in range(0, len(self.video), self.chunk_size):
            self.max_alive = max(self.max_alive, sum(n for ref, n in self._refs if ref() is not None))
            array = self.video[start : start + self.chunk_size].copy()
            self._refs.append((weakref.ref(array), len(array)))
            yield torch.from_numpy(array)

    def whole(self) -> torch.Tensor:
        return torch.from_numpy(self.video.copy())


def collect(steps) -> tuple[torch.Tensor, torch.Tensor]:
    starts, probs = zip(*steps)
    return torch.cat(starts), torch.cat(probs)


class CausalMean(nn.Module):
    """A causal toy model: per-frame logits from the running mean of the frames' channel means (state = sum, n)."""

    is_causal = True

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)
        torch.nn.init.normal_(self.fc.weight, std=5.0, generator=torch.Generator().manual_seed(0))

    def stream(self, x, state=None):
        feats = x.mean(dim=(3, 4)).transpose(1, 2)  # (B, T, C)
        total, n = state if state is not None else (torch.zeros_like(feats[:, 0]), 0)
        csum = feats.cumsum(1) + total[:, None]
        counts = torch.arange(n + 1, n + feats.shape[1] + 1, dtype=feats.dtype).view(1, -1, 1)
        return self.fc(csum / counts), (csum[:, -1], n + feats.shape[1])

    def forward(self, x):
        return self.stream(x)[0][:, -1]


class WindowModel(nn.Module):
    """A non-causal toy model whose logits depend on every frame of the window and on their order."""

    is_causal = False

    def __init__(self, num_frames: int, num_classes: int = 4):
        super().__init__()
        self.fc = nn.Linear(3 * num_frames, num_classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(3, 4)).flatten(1))


@pytest.mark.parametrize("stride", [1, 3])
def test_streaming_is_chunk_invariant_and_holds_one_chunk(stride):
    model = CausalMean().eval()
    spy = ChunkSpy(total=100, chunk_size=8)
    starts, probs = collect(stream_steps(model, spy, transform=to_clip, stride=stride))
    whole_starts, whole_probs = collect(stream_steps(model, [spy.whole()], transform=to_clip, stride=stride))
    assert torch.equal(starts, torch.arange(0, 100, stride))
    assert torch.equal(starts, whole_starts)
    torch.testing.assert_close(probs, whole_probs)
    # the last step of the stream is what forward() gives on every fed frame at once
    fed = to_clip(spy.whole()[::stride])[None]
    torch.testing.assert_close(probs[-1], model(fed)[0].softmax(-1))
    # the consumer may still hold the previous chunk while the next is made; never more
    assert spy.max_alive <= 2 * spy.chunk_size


def test_streaming_a_real_rcn_in_chunks_equals_one_pass():
    torch.manual_seed(0)
    model = get_model("rcn_gru_s", num_classes=5).eval()
    spy = ChunkSpy(total=24, chunk_size=5, size=32)
    _, probs = collect(stream_steps(model, spy, transform=to_clip, stride=2))
    with torch.inference_mode():
        logits = model(to_clip(spy.whole()[::2])[None])
    torch.testing.assert_close(probs[-1], logits[0].softmax(-1), atol=1e-5, rtol=1e-4)


def reference_windows(model, video: torch.Tensor, num_frames: int, stride: int, step: int):
    """Windows computed directly on the whole video (the definition in vidrcnn.inference.steps' docstring)."""
    sub = to_clip(video[::stride])  # (C, n, H, W)
    n = sub.shape[1]
    if n < num_frames:
        idx = torch.arange(num_frames).clamp(max=n - 1)
        return [0], [model(sub[:, idx][None])[0].softmax(-1)]
    starts = list(range(0, n - num_frames + 1, step))
    probs = [model(sub[:, s : s + num_frames][None])[0].softmax(-1) for s in starts]
    owned = [s * stride for s in starts]
    if starts[-1] + num_frames < n:
        owned.append((starts[-1] + num_frames) * stride)
        probs.append(model(sub[:, n - num_frames :][None])[0].softmax(-1))
    return owned, probs


@pytest.mark.parametrize(
    ("total", "chunk", "stride", "step"),
    [(100, 8, 1, 4), (100, 7, 2, 6), (37, 5, 1, 6), (10, 3, 2, 6), (61, 32, 3, 2)],
)
def test_sliding_windows_match_the_definition_and_bound_memory(total, chunk, stride, step):
    torch.manual_seed(0)
    model = WindowModel(num_frames=6).eval()
    spy = ChunkSpy(total=total, chunk_size=chunk)
    with torch.inference_mode():
        starts, probs = collect(window_steps(model, spy, transform=to_clip, num_frames=6, stride=stride,
                                             window_step=step, batch_size=3))
        ref_starts, ref_probs = reference_windows(model, spy.whole(), 6, stride, step)
    assert starts.tolist() == ref_starts
    torch.testing.assert_close(probs, torch.stack(ref_probs))
    assert spy.max_alive <= 2 * chunk


def test_window_step_out_of_range_is_refused():
    with pytest.raises(ValueError, match="window_step"):
        list(window_steps(WindowModel(4), [torch.zeros(8, 4, 4, 3, dtype=torch.uint8)], transform=to_clip,
                          num_frames=4, window_step=5))


def prediction(labels: list[int], starts: list[int], num_frames: int, fps: float = 10.0) -> VideoPrediction:
    scores = torch.linspace(0.5, 0.9, len(labels))
    return VideoPrediction(
        video="v.mp4", classes=["a", "b", "c"], fps=fps, num_frames=num_frames, probs=torch.tensor([0.2, 0.7, 0.1]),
        starts=torch.tensor(starts), labels=torch.tensor(labels), scores=scores, mode="window", frame_stride=1,
    )


def test_a_segments_model_sees_frames_spaced_as_in_training(tmp_path):
    assert model_stride({"sampling": "dense", "stride": 2, "segment_stride": 5}) == 2
    assert model_stride({"sampling": "segments", "stride": 1, "segment_stride": 3}) == 3
    assert model_stride({"sampling": "segments", "stride": 1}) == 1  # a checkpoint from before segment_stride
    path = write_checkpoint(tmp_path / "seg.pt", "frame_avg_s", preprocess={
        "num_frames": 4, "stride": 1, "sampling": "segments", "size": 32, "resize": 32, "mean": list(MEAN),
        "std": list(STD), "fps": 25.0, "segment_stride": 3})
    predictor = load_predictor(path)
    assert predictor.frame_stride(25.0) == 3 and predictor.frame_stride(50.0) == 6


def test_segments_are_runs_of_labels_covering_the_video():
    pred = prediction(labels=[0, 0, 1, 1, 1, 0], starts=[0, 4, 8, 12, 16, 20], num_frames=22)
    segments = pred.segments()
    assert [(s["start_s"], s["end_s"], s["label"]) for s in segments] == [
        (0.0, 0.8, "a"), (0.8, 2.0, "b"), (2.0, 2.2, "a")
    ]
    assert segments[1]["score"] == pytest.approx(float(pred.scores[2:5].mean()), abs=1e-6)
    assert pred.topk(2) == [{"label": "b", "score": pytest.approx(0.7)}, {"label": "a", "score": pytest.approx(0.2)}]
    assert pred.step_at(torch.tensor([0, 3, 4, 21])).tolist() == [0, 0, 1, 5]


def test_draw_label_marks_the_top_left_corner_only():
    frame = np.full((72, 128, 3), 128, dtype=np.uint8)
    out = draw_label(frame, "Biking 0.93")
    assert out.shape == frame.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - frame).sum(-1) > 0
    assert changed[:20, :60].mean() > 0.5  # the label band
    assert not changed[40:, :].any()  # the rest of the frame untouched


# -- checkpoints, real files and the tool ----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
@pytest.fixture(scope="module")
def files(tmp_path_factory, sample_videos) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("infer")
    out = {
        "causal": write_checkpoint(d / "rcn.pt", "rcn_gru_s"),
        "window": write_checkpoint(d / "frame_avg.pt", "frame_avg_s", favour=2),
        "random": write_checkpoint(d / "random.pt", "rcn_gru_s", favour=None, num_frames=3, stride=1),
        "small": d / "small.avi",
        "bikes": sample_videos["bikes.mp4"],
    }
    write_video(out["small"], numbered_frames(45, 48, 64), fps=25, codec="mpeg4")
    # a checkpoint whose weights do not fit its model (2 classes of weights, 3 class names)
    two = get_model("frame_avg_s", num_classes=2).state_dict()
    out["misfit"] = write_checkpoint(d / "misfit.pt", "frame_avg_s", model=two)
    out["no_keys"] = d / "weights_only.pt"
    torch.save({"weights": torch.zeros(3)}, out["no_keys"])
    out.update({f"bad_{k}": v for k, v in write_bad_corpus(d / "bad", sample_videos["carphone_pristine.mp4"]).items()})
    return out


@pytest.mark.parametrize("chunk_size", [7, 64])
def test_predict_video_on_a_real_file_does_not_depend_on_chunking(files, chunk_size):
    predictor = load_predictor(files["random"])
    assert predictor.is_causal
    ref = predict_video(predictor, files["small"], chunk_size=45)
    got = predict_video(predictor, files["small"], chunk_size=chunk_size)
    assert got.num_frames == 45 and got.mode == "stream"
    assert torch.equal(got.starts, torch.arange(45))
    torch.testing.assert_close(got.probs, ref.probs, atol=1e-5, rtol=1e-4)
    assert torch.equal(got.labels, ref.labels)


def test_video_level_score_of_a_causal_model_skips_the_warm_up(files):
    predictor = load_predictor(files["random"])  # num_frames=3: the first 2 steps are warm-up
    frames = torch.from_numpy(numbered_frames(45, 48, 64))
    per_step = collect(stream_steps(predictor.model, frames.split(10), transform=predictor.transform, stride=1))[1]
    pred = predict_video(predictor, files["small"], chunk_size=10)
    torch.testing.assert_close(pred.probs, per_step[2:].mean(0), atol=2e-3, rtol=0)  # 2e-3: mpeg4 is lossy


def run_infer(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "tools" / "infer.py"), *map(str, args)],
                          check=False, capture_output=True, text=True, env=env, timeout=240)


# name -> (video, checkpoint, the file the error must name)
ERROR_CASES = {
    "missing video": ("bad_missing", "causal", "bad_missing"),
    "directory": ("bad_directory", "causal", "bad_directory"),
    "empty file": ("bad_empty", "causal", "bad_empty"),
    "not a video": ("bad_text", "causal", "bad_text"),
    "truncated avi": ("bad_truncated_avi", "window", "bad_truncated_avi"),
    "audio only": ("bad_audio_only", "causal", "bad_audio_only"),
    "missing checkpoint": ("small", "missing_ckpt", "missing_ckpt"),
    "video as checkpoint": ("small", "small_as_ckpt", "small_as_ckpt"),
    "dict without keys": ("small", "no_keys", "no_keys"),
    "weights do not fit": ("small", "misfit", "misfit"),
}


def infer_in_process(*args: str | Path) -> subprocess.CompletedProcess:
    """``tools/infer.py`` as ``run_tool`` runs it, in this process (no start-up of torch each time); an exception
    that is not turned into an ``error:`` line escapes and fails the test, as a traceback would."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_tool(load_tool("infer").main, [str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def cli_runs(files, tmp_path_factory):
    """Every tool run of this module: the bad inputs in this process, the real video as its own process."""
    d = tmp_path_factory.mktemp("infer_cli")
    paths = {**files, "missing_ckpt": d / "nope.pt", "small_as_ckpt": files["small"]}
    results = {name: infer_in_process(paths[video], "--checkpoint", paths[ckpt])
               for name, (video, ckpt, _) in ERROR_CASES.items()}
    results["bikes json"] = run_infer(files["bikes"], "--checkpoint", files["causal"], "--json", "--topk", "2",
                                      "--chunk-size", "48", "--out-video", d / "bikes_labelled.mp4")
    return results, paths, d


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_input_is_one_error_line_naming_the_file(cli_runs, case):
    results, paths, _ = cli_runs
    proc = results[case]
    named = str(paths[ERROR_CASES[case][2]])
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}: "), proc.stderr
    assert proc.stdout == ""


def test_json_on_a_real_h264_video_with_labelled_copy(cli_runs, sample_videos):
    results, _, d = cli_runs
    proc = results["bikes json"]
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # exactly one JSON object and nothing else on stdout
    assert out["video"] == str(sample_videos["bikes.mp4"])
    assert out["topk"][0]["label"] == "Biking" and len(out["topk"]) == 2
    assert out["topk"][0]["score"] > 0.99
    assert out["num_frames"] == 250 and out["mode"] == "stream"
    # the biased classifier says Biking on every frame: one segment over the whole video
    assert out["segments"] == [{"start_s": 0.0, "end_s": pytest.approx(out["duration_s"]), "label": "Biking",
                                "score": pytest.approx(out["topk"][0]["score"], abs=1e-3)}]
    with open_video(d / "bikes_labelled.mp4") as labelled, open_video(sample_videos["bikes.mp4"]) as source:
        assert (labelled.num_frames, labelled.width, labelled.height) == (250, 640, 272)
        drawn, original = labelled.get_frames([100])[0].int(), source.get_frames([100])[0].int()
    band = (drawn[:12, :40] - original[:12, :40]).abs().float().mean()
    rest = (drawn[100:] - original[100:]).abs().float().mean()
    assert band > 30 and rest < 3  # the label band is drawn; the picture itself is only re-encoded


def test_text_output_of_a_window_model(files, capsys):
    # In-process (the subprocess runs above already cover the tool's start-up); same main() as the command line.
    tool = load_tool("infer")
    assert tool.main([str(files["small"]), "--checkpoint", str(files["window"]), "--window-step", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("45 frames, 1.8 s (window)")
    score, label = lines[1].split()
    assert label == "Diving" and float(score) > 0.99


def test_out_video_never_replaces_the_input_or_an_existing_file_unasked(files, tmp_path, capsys):
    tool = load_tool("infer")
    video = tmp_path / "footage.avi"
    video.write_bytes(files["small"].read_bytes())
    link = tmp_path / "link.avi"
    link.symlink_to(video)
    before = video.read_bytes()
    for target in (video, link):  # the input itself, also through a link, and even with --overwrite
        with pytest.raises(OutputError, match="is an input"):
            tool.main([str(video), "--checkpoint", str(files["causal"]), "--out-video", str(target), "--overwrite"])
    assert video.read_bytes() == before
    existing = tmp_path / "labelled.avi"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        tool.main([str(video), "--checkpoint", str(files["causal"]), "--out-video", str(existing)])
    assert existing.read_bytes() == b"keep me"
    assert tool.main([str(video), "--checkpoint", str(files["causal"]), "--out-video", str(existing),
                      "--overwrite"]) == 0
    with open_video(existing) as out:
        assert out.num_frames == 45
    assert sorted(p.name for p in tmp_path.iterdir()) == ["footage.avi", "labelled.avi", "link.avi"]  # no temp left
    capsys.readouterr()


def test_an_interrupted_render_leaves_no_half_file(files, tmp_path, monkeypatch):
    predictor = load_predictor(files["causal"])
    prediction = predict_video(predictor, files["small"], chunk_size=16)
    calls = []

    def failing_write(self, frames):
        calls.append(len(frames))
        if len(calls) == 2:
            raise KeyboardInterrupt
        original(self, frames)

    original = VideoWriter.write
    monkeypatch.setattr(VideoWriter, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        render_video(prediction, tmp_path / "out.mp4", chunk_size=16)
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []

def test_a_video_with_an_absurd_frame_rate_is_classified_not_crashed_on(files, tmp_path, capsys):
    from videos import write_absurd_fps

    tool = load_tool("infer")
    for path in write_absurd_fps(tmp_path).values():  # 1e8 fps crashed stride rescaling; 30000 fps used one frame
        assert tool.main([str(path), "--checkpoint", str(files["causal"]), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["num_frames"] == 30 and out["fps"] == 25.0  # unknown: the model's own rate is assumed


def test_a_missing_gpu_is_refused_before_the_checkpoint_is_read(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the refusal is what a machine without one must show
    from vidrcnn.cli import run_tool
    from vidrcnn.errors import ConfigError

    tool = load_tool("infer")
    with pytest.raises(ConfigError, match="--device: cuda requested but torch sees no GPU"):
        tool.main([str(tmp_path / "no_video.mp4"), "--checkpoint", str(tmp_path / "no.pt"), "--device", "cuda"])
    assert run_tool(tool.main, [str(tmp_path / "v.mp4"), "--checkpoint", "x.pt", "--device", "cuda"]) == 2


@pytest.mark.parametrize(("args", "line"), [
    (["v.mp4", "--checkpoint", "x.pt", "--topk", "0"], "error: --topk, --chunk-size, --batch-size: must be >= 1"),
    (["v.mp4", "--onnx", "m.onnx", "--weights", "ema"], "error: --onnx: runs the exported weights on the CPU"),
    (["v.mp4", "--checkpoint", "x.pt", "--jsonl"], "error: --jsonl: is for live sources; a video file takes --json"),
    (["-", "--checkpoint", "x.pt", "--json"], "error: -: a live source has no end to wait for"),
    (["-", "--checkpoint", "x.pt", "--every", "0"], "error: --every, --max-lag, --timeout: must be > 0"),
    (["v.mp4", "--checkpoint", "x.pt", "--out-video", "v.txt"], "error: v.txt: --out-video must end in one of"),
])
def test_each_refusal_is_one_error_line_not_a_usage_dump(args, line, capsys):
    from vidrcnn.cli import run_tool

    assert run_tool(load_tool("infer").main, args) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1 and "usage:" not in err, err


def test_a_truncated_file_and_a_short_video_are_classified_with_a_note(files, tmp_path, capsys):
    full = tmp_path / "full.mkv"
    write_video(full, numbered_frames(240, 32, 32), fps=25)
    cut = tmp_path / "cut.mkv"  # cut in half: it still decodes, and its header still says 9.6 s
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    tool = load_tool("infer")
    assert tool.main([str(cut), "--checkpoint", str(files["causal"]), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["duration_s"] < 5 and len(out["notes"]) == 1
    assert out["notes"][0].startswith("the file may be truncated: it promises 9.60 s of video, ")
    assert captured.err.startswith(f"warning: {cut}: the file may be truncated: it promises 9.60 s")
    assert tool.main([str(full), "--checkpoint", str(files["causal"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []  # the whole file: nothing to say
    short = tmp_path / "short.avi"
    write_video(short, numbered_frames(5, 32, 32), fps=25, codec="mpeg4")
    assert tool.main([str(short), "--checkpoint", str(files["window"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("note: 5 frames (3 at the model's spacing of 2), shorter than the model's 4-frame clip; the "
                        "last frame is repeated to fill the clip"), lines


def _vfr(path: Path) -> Path:
    """30 frames, 40 ms apart up to 0.6 s, then 80 ms apart: 1.8 s, though its average rate says 25 fps (1.2 s)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.time_base = 32, 32, "yuv420p", Fraction(1, 1000)
        pts = 0
        for i, frame in enumerate(numbered_frames(30, 32, 32)):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = pts, Fraction(1, 1000)
            out.mux(stream.encode(picture))
            pts += 40 if i < 15 else 80
        out.mux(stream.encode())
    return path


def test_a_variable_frame_rate_file_is_timed_by_its_frames_own_timestamps(files, tmp_path, capsys):
    video = _vfr(tmp_path / "vfr.mkv")
    tool = load_tool("infer")
    assert tool.main([str(video), "--checkpoint", str(files["window"]), "--json", "--window-step", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    times = [0.04 * i for i in range(16)] + [0.6 + 0.08 * i for i in range(1, 15)]
    assert out["duration_s"] == pytest.approx(1.8) and out["notes"] == []  # not 30 frames / 25 fps = 1.2 s
    assert out["segments"][-1]["end_s"] == pytest.approx(1.8)
    assert all(any(abs(s["start_s"] - t) < 1e-3 for t in times) for s in out["segments"]), out["segments"]
