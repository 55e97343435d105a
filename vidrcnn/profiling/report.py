"""Write profile rows as CSV, JSON and markdown, plot latency against T, fit the growth exponent, summarise."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vidrcnn.outputs import save_png

COLUMNS = (
    "model", "T", "batch", "height", "width", "device", "dtype", "compile", "channels_last", "params", "flops",
    "gflops", "latency_median_ms", "latency_q25_ms", "latency_q75_ms", "latency_min_ms", "latency_max_ms",
    "latency_iters", "clips_per_s", "frames_per_s", "ms_per_gflop", "peak_mem_mb", "peak_mem_delta_mb",
    "seq_steps", "causal", "new_frame_ms", "new_frame_mode", "train_median_ms", "error",
)


def machine_info(device: str) -> dict:
    """Where the numbers were taken: CPU model, cores, threads, load, torch, GPU name, date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "device": device,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if hasattr(os, "getloadavg"):
        info["load_avg_1_5_15"] = [round(v, 2) for v in os.getloadavg()]
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def fit_slopes(rows: Sequence[dict], key: str = "latency_median_ms") -> dict[str, dict]:
    """Per model, the least-squares slope of log(latency) on log(T): 1 means linear growth in T, 0 flat."""
    fits = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        pts = [(r["T"], r[key]) for r in rows if r["model"] == model and not r.get("error") and r.get(key)]
        if len(pts) < 2:
            continue
        t, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        slope, intercept = np.polyfit(t, y, 1)
        fits[model] = {"slope": float(slope), "lengths": [p[0] for p in pts],
                       "growth": float(pts[-1][1] / pts[0][1]), "fit_intercept": float(intercept)}
    return fits


def write_csv(rows: Sequence[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return "" if v is None else str(v)


def markdown_table(rows: Sequence[dict]) -> str:
    """The columns a reader compares, one line per (model, T)."""
    cols = [("model", "model"), ("T", "T"), ("latency_median_ms", "median ms"), ("latency_q25_ms", "q25"),
            ("latency_q75_ms", "q75"), ("clips_per_s", "clips/s"), ("frames_per_s", "frames/s"),
            ("gflops", "GFLOPs"), ("ms_per_gflop", "ms/GFLOP"), ("params", "params"),
            ("peak_mem_delta_mb", "mem +MB"), ("seq_steps", "seq steps"), ("new_frame_ms", "new frame ms"),
            ("new_frame_mode", "new frame by")]
    if any("train_median_ms" in r for r in rows):
        cols.append(("train_median_ms", "fwd+bwd ms"))
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['model']} | {r['T']} | error: {r['error']} |" + " |" * (len(cols) - 3))
        else:
            lines.append("| " + " | ".join(_fmt(r.get(c[0])) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict], path: Path) -> None:
    """Latency against T on log-log axes, and latency per GFLOP: flat for work that parallelises over T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for model in dict.fromkeys(r["model"] for r in rows):
        ok = [r for r in rows if r["model"] == model and not r.get("error")]
        if not ok:
            continue
        t = [r["T"] for r in ok]
        ax1.plot(t, [r["latency_median_ms"] for r in ok], marker="o", label=model)
        ax2.plot(t, [r["ms_per_gflop"] for r in ok], marker="o", label=model)
    for ax, ylabel, title in ((ax1, "forward latency, median (ms)", "latency against clip length"),
                              (ax2, "ms per GFLOP", "latency per GFLOP (sequential work costs more)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("frames per clip T")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)


def summary(rows: Sequence[dict], fits: dict[str, dict], window_t: int = 16) -> str:
    """Slope of latency against T per model, and the per-frame cost of streaming against re-running a window."""
    lines = ["latency ~ T^slope (least squares on log-log):"]
    for model, f in fits.items():
        lines.append(f"  {model:16s} slope {f['slope']:5.2f}   T={f['lengths'][0]}->{f['lengths'][-1]}: "
                     f"x{f['growth']:.2f}")
    ok = [r for r in rows if not r.get("error")]
    ts = sorted({r["T"] for r in ok})
    if ts:
        wt = window_t if window_t in ts else ts[-1]
        windows = {r["model"]: r["latency_median_ms"] for r in ok if r["T"] == wt and r["new_frame_mode"] == "window"}
        streams = {r["model"]: r["new_frame_ms"] for r in ok if r["new_frame_mode"] == "stream"}
        for s_model, s_ms in streams.items():
            for w_model, w_ms in windows.items():
                lines.append(f"  one new frame: {s_model} streaming {s_ms:.3g} ms vs {w_model} re-running a "
                             f"{wt}-frame window {w_ms:.3g} ms: 1/{w_ms / s_ms:.1f}")
    errors = [r for r in rows if r.get("error")]
    for r in errors:
        lines.append(f"  skipped {r['model']} T={r['T']}: {r['error']}")
    return "\n".join(lines)


def _switches(options: dict) -> str:
    """The timing switches that were on, for the header of profile.md (the table has no column for all of them)."""
    on = [name for name, flag in (("bf16 autocast", "amp"), ("torch.compile", "compile"),
                                  ("channels-last", "channels_last"), ("forward+backward timed", "train"))
          if options.get(flag)]
    batch = f" Batch {options['batch']}." if "batch" in options else ""
    return f"{batch} Switches: {', '.join(on) or 'none (eager fp32)'}."


def write_all(rows: Sequence[dict], out_dir: str | os.PathLike, *, device: str, options: dict | None = None) -> dict:
    """Write ``profile.csv``, ``profile.json``, ``profile.md`` and ``latency_vs_length.png`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fits = fit_slopes(rows)
    meta = {"machine": machine_info(device), "options": options or {}}
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    write_csv(clean, out / "profile.csv")
    (out / "profile.json").write_text(json.dumps({"meta": meta, "rows": clean, "fits": fits}, indent=1))
    m = meta["machine"]
    header = (f"Profile on {m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch threads), device "
              f"{device}{', ' + m['gpu'] if 'gpu' in m else ''}, torch {m['torch']}, {m['date']}, load "
              f"{m.get('load_avg_1_5_15', 'n/a')}.{_switches(options or {})}\n\n")
    (out / "profile.md").write_text(header + markdown_table(clean))
    if any(not r.get("error") for r in rows):
        plot(clean, out / "latency_vs_length.png")
    return fits
