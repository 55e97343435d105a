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
    "model", "T", "batch", "threads", "height", "width", "device", "dtype", "compile", "channels_last", "params", "flops",
    "gflops", "latency_median_ms", "latency_q25_ms", "latency_q75_ms", "latency_min_ms", "latency_max_ms",
    "latency_iters", "first_call_s", "clips_per_s", "frames_per_s", "ms_per_gflop", "peak_mem_mb", "peak_mem_delta_mb",
    "seq_steps", "causal", "new_frame_ms", "new_frame_mode", "train_median_ms",
    "train_peak_mem_mb", "train_peak_mem_delta_mb", "error",
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


def config_names(rows: Sequence[dict]) -> list[str]:
    """Each row's model, with its batch and thread count where ``rows`` hold more than one of them."""
    varied = [k for k in ("batch", "threads") if len({r.get(k) for r in rows}) > 1]
    label = {"batch": "batch {}", "threads": "{} threads"}
    return [r["model"] + (f" ({', '.join(label[k].format(r.get(k)) for k in varied)})" if varied else "")
            for r in rows]


def fit_slopes(rows: Sequence[dict], key: str = "latency_median_ms") -> dict[str, dict]:
    """Per model (and batch and thread count, where several were measured: see :func:`config_names`), the
    least-squares slope of log(latency) on log(T): 1 means linear growth in T, 0 flat."""
    fits = {}
    names = config_names(rows)
    for name in dict.fromkeys(names):
        pts = [(r["T"], r[key]) for r, n in zip(rows, names) if n == name and not r.get("error") and r.get(key)]
        if len(pts) < 2:
            continue
        t, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        slope, intercept = np.polyfit(t, y, 1)
        fits[name] = {"slope": float(slope), "lengths": [p[0] for p in pts],
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
    cols = [("model", "model"), ("T", "T")]
    cols += [(k, k) for k in ("batch", "threads") if len({r.get(k) for r in rows}) > 1]
    cols += [("latency_median_ms", "median ms"), ("latency_q25_ms", "q25"),
            ("latency_q75_ms", "q75"), ("clips_per_s", "clips/s"), ("frames_per_s", "frames/s"),
            ("gflops", "GFLOPs"), ("ms_per_gflop", "ms/GFLOP"), ("params", "params"),
            ("peak_mem_delta_mb", "mem +MB"), ("seq_steps", "seq steps"), ("new_frame_ms", "new frame ms"),
            ("new_frame_mode", "new frame by")]
    if any("train_median_ms" in r for r in rows):
        cols += [("train_median_ms", "fwd+bwd ms"), ("train_peak_mem_delta_mb", "fwd+bwd mem +MB")]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if r.get("error"):
            lead = [_fmt(r.get(c[0])) for c in cols[:cols.index(("latency_median_ms", "median ms"))]]
            lines.append("| " + " | ".join(lead) + f" | error: {r['error']} |" + " |" * (len(cols) - len(lead) - 1))
        else:
            lines.append("| " + " | ".join(_fmt(r.get(c[0])) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _extreme_title(rows: Sequence[dict], key: str, what: str, fmt: str) -> str:
    """A title that says what the data show: the highest and lowest model of ``key`` at the longest clip."""
    ok = [r for r in rows if not r.get("error") and r.get(key) is not None]
    if not ok:
        return what
    t = max(r["T"] for r in ok)
    at = sorted((r for r in ok if r["T"] == t), key=lambda r: r[key])
    if len(at) < 2:
        return f"{what} at T={t}"
    return (f"{what} at T={t}: highest {at[-1]['model']} ({at[-1][key]:{fmt}}), "
            f"lowest {at[0]['model']} ({at[0][key]:{fmt}})")


def plot_rows(rows: Sequence[dict]) -> tuple[list[dict], str]:
    """The rows the latency plot shows, one configuration per model: the smallest batch and the most threads
    measured; and a caption naming them."""
    if not rows:
        return [], ""
    batch = min(r.get("batch") or 1 for r in rows)
    threads = max(r.get("threads") or 0 for r in rows)
    chosen = [r for r in rows if (r.get("batch") or 1) == batch and (r.get("threads") or 0) == threads]
    return chosen, f"batch {batch}" + (f", {threads} threads" if threads else "")


def plot(rows: Sequence[dict], path: Path) -> None:
    """Latency against T on log-log axes, and latency per GFLOP (flat for work that parallelises over T); titles
    generated from the numbers, so they cannot claim what the data do not show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, config = plot_rows(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4))
    for model in dict.fromkeys(r["model"] for r in rows):
        ok = [r for r in rows if r["model"] == model and not r.get("error")]
        if not ok:
            continue
        t = [r["T"] for r in ok]
        ax1.plot(t, [r["latency_median_ms"] for r in ok], marker="o", label=model)
        ax2.plot(t, [r["ms_per_gflop"] for r in ok], marker="o", label=model)
    for ax, ylabel, title in (
            (ax1, "forward latency, median (ms)", _extreme_title(rows, "latency_median_ms", "latency", ".3g")),
            (ax2, "ms per GFLOP", _extreme_title(rows, "ms_per_gflop", "ms per GFLOP", ".3g"))):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("frames per clip T")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle(config, fontsize=9)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)


def scaling_rows(rows: Sequence[dict]) -> list[dict]:
    """Strong scaling: per (model, T, batch) measured at several thread counts, the latency at each count and the
    speed-up from the fewest threads to each of the others (latency at the fewest / latency at n)."""
    ok = [r for r in rows if not r.get("error") and r.get("threads") and r.get("latency_median_ms")]
    out = []
    for key in dict.fromkeys((r["model"], r["T"], r["batch"]) for r in ok):
        at = {r["threads"]: r["latency_median_ms"] for r in ok if (r["model"], r["T"], r["batch"]) == key}
        if len(at) < 2:
            continue
        base = min(at)
        out.append({"model": key[0], "T": key[1], "batch": key[2], "base_threads": base,
                    "latency_ms": dict(sorted(at.items())),
                    "speedup": {n: at[base] / ms for n, ms in sorted(at.items()) if n != base}})
    return out


def scaling_markdown(scaling: Sequence[dict]) -> str:
    """The strong-scaling table: latency per thread count and the speed-up from the fewest threads."""
    if not scaling:
        return ""
    counts = sorted({n for s in scaling for n in s["latency_ms"]})
    base = min(counts)
    head = ["model", "T", "batch", *(f"ms, {n} thr" for n in counts), *(f"speed-up {base}->{n}" for n in counts[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in scaling:
        cells = [s["model"], str(s["T"]), str(s["batch"]), *(_fmt(s["latency_ms"].get(n)) for n in counts),
                 *(f"{s['speedup'][n]:.2f}x" if n in s["speedup"] else "" for n in counts[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_scaling(scaling: Sequence[dict], path: Path) -> None:
    """Speed-up against threads, one panel per batch, one line per (model, T), with the ideal line; the title says
    which model scaled most and least at the longest clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({s["batch"] for s in scaling})
    fig, axes = plt.subplots(1, len(batches), figsize=(5.5 * len(batches), 4.2), squeeze=False)
    for ax, b in zip(axes[0], batches):
        these = [s for s in scaling if s["batch"] == b]
        counts = sorted({n for s in these for n in s["latency_ms"]})
        for s in these:
            ax.plot(counts, [1.0] + [s["speedup"].get(n, float("nan")) for n in counts[1:]], marker="o",
                    label=f"{s['model']} T={s['T']}")
        ax.plot(counts, [n / counts[0] for n in counts], "k--", lw=1, label="ideal")
        t = max(s["T"] for s in these)
        last = sorted((s for s in these if s["T"] == t), key=lambda s: s["speedup"][counts[-1]])
        title = f"batch {b}: speed-up {counts[0]}->{counts[-1]} threads"
        if len(last) >= 2:
            title += (f" at T={t}: most {last[-1]['model']} {last[-1]['speedup'][counts[-1]]:.2f}x, "
                      f"least {last[0]['model']} {last[0]['speedup'][counts[-1]]:.2f}x")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("torch threads")
        ax.set_ylabel(f"speed-up over {counts[0]} thread(s)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)


def work_per_step(row: dict) -> float:
    """FLOPs per dependent step on the critical path: a model without a time loop (``seq_steps`` 0) is one step."""
    return row["flops"] / max(row.get("seq_steps") or 0, 1)


def _slope_and_correlation(xs: Sequence[float], ys: Sequence[float], *, log_y: bool) -> tuple[float, float]:
    """Least-squares slope and correlation of ``ys`` (or log ``ys``) against log ``xs``; NaN without a spread."""
    lx, y = np.log(xs), np.log(ys) if log_y else np.asarray(ys, dtype=float)
    if len(lx) < 2 or np.ptp(lx) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    return float(np.polyfit(lx, y, 1)[0]), float(np.corrcoef(lx, y)[0, 1])


def plot_work_per_step(rows: Sequence[dict], scaling: Sequence[dict], path: Path) -> str:
    """Left: latency per dependent step against work per dependent step (every model, T, batch and thread count
    measured); right: the speed-up from the fewest to the most threads against work per step. Both titles are
    computed from the points (the log-log slope; whether the speed-up rises with work per step); returns them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if not r.get("error") and r.get("flops") and r.get("latency_median_ms")]
    work = {(r["model"], r["T"], r["batch"]): work_per_step(r) for r in ok}
    # (model, work per step, y) for each panel: ms per dependent step, and the speed-up to the most threads.
    per_step = [(r["model"], work_per_step(r), r["latency_median_ms"] / max(r.get("seq_steps") or 0, 1)) for r in ok]
    speedups = [(s_["model"], work[(s_["model"], s_["T"], s_["batch"])], s_["speedup"][max(s_["speedup"])])
                for s_ in scaling if s_["speedup"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, points in ((ax1, per_step), (ax2, speedups)):
        for model in dict.fromkeys(m for m, _, _ in points):
            ax.scatter([w / 1e6 for m, w, _ in points if m == model], [y for m, _, y in points if m == model],
                       label=model, s=18)
    slope, _ = _slope_and_correlation([w for _, w, _ in per_step], [y for _, _, y in per_step], log_y=True)
    left = (f"ms per dependent step ~ (work per step)^{slope:.2f} over {len(ok)} measurements"
            + ("" if math.isnan(slope) else " (1: work-bound; below 1: a fixed cost per step weighs on small steps)"
               if slope < 0.9 else " (close to work-bound)"))
    right = "speed-up over threads against work per step"
    if len(speedups) > 2:
        _, corr = _slope_and_correlation([w for _, w, _ in speedups], [y for _, _, y in speedups], log_y=False)
        trend = "rises with" if corr > 0.3 else "falls with" if corr < -0.3 else "does not follow"
        right = (f"speed-up {trend} work per step (correlation with log work {corr:+.2f}, {len(speedups)} "
                 "configurations)")
    for ax, ylabel, title in ((ax1, "forward latency per dependent step (ms)", left),
                              (ax2, "speed-up, fewest -> most threads", right)):
        ax.set_xscale("log")
        ax.set_xlabel("MFLOP per dependent step (FLOPs / sequential steps)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax1.set_yscale("log")
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)
    return f"{left}; {right}"


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
    on = [name for name, flag in (("bf16 autocast", "amp"), ("torch.compile", "compile"), ("compiled cell steps", "compile_step"),
                                  ("channels-last", "channels_last"), ("forward+backward timed", "train"))
          if options.get(flag)]
    b = options.get("batch")
    batch = "" if b is None else f" Batch {b}." if not isinstance(b, list) else f" Batches {', '.join(map(str, b))}."
    return f"{batch} Switches: {', '.join(on) or 'none (eager fp32)'}."


def write_all(rows: Sequence[dict], out_dir: str | os.PathLike, *, device: str, options: dict | None = None) -> dict:
    """Write ``profile.csv``, ``profile.json``, ``profile.md`` and ``latency_vs_length.png`` under ``out_dir``; with
    several thread counts also the strong-scaling table (in ``profile.md`` and ``profile.json``) and ``scaling.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fits = fit_slopes(rows)
    meta = {"machine": machine_info(device), "options": options or {}}
    threads = sorted({r["threads"] for r in rows if r.get("threads")})
    if len(threads) > 1:
        meta["machine"]["torch_threads"] = threads
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    scaling = scaling_rows(clean)
    write_csv(clean, out / "profile.csv")
    (out / "profile.json").write_text(json.dumps({"meta": meta, "rows": clean, "fits": fits, "scaling": scaling},
                                                 indent=1))
    m = meta["machine"]
    header = (f"Profile on {m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch threads), device "
              f"{device}{', ' + m['gpu'] if 'gpu' in m else ''}, torch {m['torch']}, {m['date']}, load "
              f"{m.get('load_avg_1_5_15', 'n/a')}.{_switches(options or {})}\n\n")
    text = header + markdown_table(clean)
    if scaling:
        text += ("\n## Strong scaling\n\nLatency at each thread count and the speed-up from the fewest threads "
                 "(one run, same inputs).\n\n" + scaling_markdown(scaling))
        plot_scaling(scaling, out / "scaling.png")
        titles = plot_work_per_step(clean, scaling, out / "work_per_step.png")
        text += f"\nWork per dependent step (work_per_step.png): {titles}.\n"
    (out / "profile.md").write_text(text)
    if any(not r.get("error") for r in rows):
        plot(clean, out / "latency_vs_length.png")
    return fits
