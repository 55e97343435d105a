"""Latency against clip length: ``python tools/profile.py [--models a,b] [--lengths 4,8,16,32,64] [--out DIR]``.

Writes DIR/profile.csv, profile.json, profile.md and latency_vs_length.png, and prints how latency grows with T.
"""

from __future__ import annotations


def _int_list(text: str, flag: str, what: str) -> list[int]:
    """Comma-separated integers >= 1, sorted and without repeats."""
    from vidrcnn.errors import ConfigError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(flag, f"expected comma-separated {what}, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(flag, f"{what} must be >= 1, got {text!r}")
    return sorted(set(values))


def _lengths(text: str) -> list[int]:
    return _int_list(text, "--lengths", "frame counts")


def _builder(opts):
    """Build ``MODEL`` or ``MODEL+key=int`` (a builder option, e.g. ``checkpoint_every=8``)."""
    from vidrcnn.models import get_model

    def build(label: str):
        name, _, option = label.partition("+")
        key, _, value = option.partition("=")
        return get_model(name, num_classes=opts.num_classes, **({key: int(value)} if key else {}))
    return build


def _parser(prog: str | None):
    import argparse

    from vidrcnn.profiling import DEFAULT_LENGTHS, DEFAULT_MODELS

    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help=f"comma-separated registered model names [{','.join(DEFAULT_MODELS)}]")
    ap.add_argument("--lengths", default=",".join(map(str, DEFAULT_LENGTHS)), help="clip lengths T")
    ap.add_argument("--batch", default="1", help="batch size(s), comma-separated [%(default)s]")
    ap.add_argument("--size", type=int, default=None, help="frame side (default: each model's natural input)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", help="torch CPU thread count(s), comma-separated; with several, profile.md gains the "
                                      "strong-scaling table and scaling.png [1 and all cores]")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10, help="timed calls per (model, T)")
    ap.add_argument("--equal-work", type=int, metavar="N",
                    help="instead: latency at equal work, N = batch x T frames per call while T sweeps 1, 2, 4, ..., N, "
                         "the sweep run 3 times "
                         "(--size default 32; with --train, forward + backward too); writes equal_work.md/.json/.png")
    ap.add_argument("--work-span", action="store_true",
                    help="instead: count the work and the span (the longest chain of dependent operators) of one clip "
                         "per --lengths T, in FLOPs and kernel launches (--size default 32); writes "
                         "work_span.md/.json/.png")
    ap.add_argument("--train", action="store_true", help="also time forward + backward")
    ap.add_argument("--checkpoint-every", type=int, metavar="K",
                    help="also profile each recurrent conv model (rcn_*) with model.kwargs.checkpoint_every=K, as "
                         "MODEL+checkpoint_every=K rows (with --train: memory and time of backward with and without)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast")
    ap.add_argument("--compile", action="store_true", help="torch.compile each model (slow start on CPU)")
    ap.add_argument("--compile-step", action="store_true",
                    help="torch.compile each recurrent cell's step only, not the unrolled loop: one compile per layer "
                         "and shape, however long the clip (vidrcnn.layers.compile_steps)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--no-stream", action="store_true", help="skip the streaming cost of causal models")
    ap.add_argument("--out", default="outputs/profile", help="output folder")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace profile files in --out that an earlier profile did not write")
    return ap


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    import os

    import torch

    from vidrcnn.errors import ConfigError
    from vidrcnn.models import list_models
    from vidrcnn.outputs import check_output_dir, check_output_file, is_json_with, is_own_png
    from vidrcnn.profiling import DEFAULT_MODELS, ProfileOptions, profile_models, summary, write_all
    from vidrcnn.profiling.run import CPU_AMP_TRAIN

    args = _parser(prog).parse_args(argv)

    if args.models is None:  # the defaults that this installation registers
        models = [m for m in DEFAULT_MODELS if m in list_models()]
    else:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(list_models()))
    if not models or unknown:
        raise ConfigError("--models", f"unknown model(s) {', '.join(unknown) or '(none given)'}; known: "
                          f"{', '.join(list_models())}")
    if args.checkpoint_every is not None:
        if args.checkpoint_every < 1:
            raise ConfigError("--checkpoint-every", f"must be >= 1, got {args.checkpoint_every}")
        models += [f"{m}+checkpoint_every={args.checkpoint_every}" for m in models if m.startswith("rcn_")]
    lengths = _lengths(args.lengths)
    batches = _int_list(args.batch, "--batch", "batch sizes")
    threads = _int_list(args.threads or f"1,{os.cpu_count() or 1}", "--threads", "thread counts")
    if args.iters < 1 or args.warmup < 0 or (args.size is not None and args.size < 8):
        raise ConfigError(None, "--iters must be >= 1, --warmup >= 0, --size >= 8")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device", "cuda requested but torch sees no GPU")
    if args.train and args.amp and args.device == "cpu":
        raise ConfigError("--amp --train", CPU_AMP_TRAIN)
    # A file or an unwritable place as --out, or files there that an earlier profile did not write: refused now,
    # not after the profiling.
    out = check_output_dir(args.out, overwrite=True)
    if args.equal_work is not None:  # its own files, checked there
        return _equal_work(args, models, out)
    if args.work_span:
        return _work_span(args, models, lengths, batches[0], out)
    if out.is_dir():
        earlier = is_json_with(("meta", "rows", "fits"))(out / "profile.json")
        for name in ("profile.json", "profile.csv", "profile.md", "latency_vs_length.png", "scaling.png",
                     "work_per_step.png"):
            check_output_file(out / name, overwrite=args.overwrite,
                              replaceable=is_own_png if name.endswith(".png") else lambda _: earlier)
    out.mkdir(parents=True, exist_ok=True)
    rows, threads_before = [], torch.get_num_threads()
    try:
        for n in threads:  # every thread count and batch in one run: the speed-ups compare like with like
            torch.set_num_threads(n)
            for batch in batches:
                opts = ProfileOptions(batch=batch, device=args.device, size=args.size, warmup=args.warmup,
                                      iters=args.iters, train=args.train, amp=args.amp, compile=args.compile,
                                      compile_step=args.compile_step, channels_last=args.channels_last,
                                      stream=not args.no_stream)
                where = f"{n} thread(s), batch {batch}"
                rows += [{**r, "threads": n} for r in profile_models(
                    models, lengths, opts, build=_builder(opts),
                    progress=lambda name, where=where: print(f"profiling {name} ({where}) ...", flush=True))]
        options = {**vars(args), "lengths": lengths, "batch": batches[0] if len(batches) == 1 else batches,
                   "threads": threads[0] if len(threads) == 1 else threads}
        fits = write_all(rows, args.out, device=args.device, options=options)  # its meta: the last thread count
    finally:  # called in-process (tests, notebooks), the caller keeps its thread count
        torch.set_num_threads(threads_before)
    print(summary(rows, fits))
    print(f"wrote {args.out}/profile.csv, profile.json, profile.md, latency_vs_length.png"
          + (", scaling.png, work_per_step.png" if len(threads) > 1 else ""))
    return 0


def _check_own_files(out, stem: str, overwrite: bool) -> None:
    """Refuse, before any work, ``stem``.json/.md/.png in ``out`` that an earlier run of this mode did not write."""
    from vidrcnn.outputs import check_output_file, is_json_with, is_own_png

    if out.is_dir():
        earlier = is_json_with((stem, "rows"))(out / f"{stem}.json")
        for name in (f"{stem}.json", f"{stem}.md", f"{stem}.png"):
            check_output_file(out / name, overwrite=overwrite,
                              replaceable=is_own_png if name.endswith(".png") else lambda _: earlier)


def _work_span(args, models: list[str], lengths: list[int], batch: int, out) -> int:
    """``--work-span``: :mod:`vidrcnn.profiling.work_span` for every model and length, one table and plot."""
    import json

    from vidrcnn.models import get_model
    from vidrcnn.profiling import work_span

    _check_own_files(out, "work_span", args.overwrite)
    size = args.size or 32
    rows = []
    for name in models:
        print(f"work and span: {name} (T = {', '.join(map(str, lengths))}, {size}x{size}) ...", flush=True)
        rows += work_span.sweep(name, get_model(name, num_classes=10), lengths, size=size, batch=batch)
    out.mkdir(parents=True, exist_ok=True)
    table = work_span.markdown(rows)
    (out / "work_span.json").write_text(json.dumps({"work_span": True, "size": size, "rows": rows}, indent=1))
    (out / "work_span.md").write_text(f"# Work and span\n\n{table}\n")
    work_span.plot(rows, out / "work_span.png")
    print(table)
    print(f"wrote {out}/work_span.md, work_span.json, work_span.png")
    return 0


def _equal_work(args, models: list[str], out) -> int:
    """``--equal-work N``: the sweep of :mod:`vidrcnn.profiling.equal_work` for every model, one table and plot."""
    import json

    from vidrcnn.errors import ConfigError
    from vidrcnn.models import get_model
    from vidrcnn.profiling.equal_work import equal_work, markdown, plot

    if args.equal_work < 2:
        raise ConfigError("--equal-work", f"frames per call must be >= 2, got {args.equal_work}")
    _check_own_files(out, "equal_work", args.overwrite)
    size = args.size or 32
    rows = []
    for name in models:
        print(f"equal work: {name} ({args.equal_work} frames per call, {size}x{size}) ...", flush=True)
        rows += equal_work(name, get_model(name, num_classes=10), frames=args.equal_work, size=size,
                           device=args.device, warmup=args.warmup, iters=args.iters, train=args.train)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    (out / "equal_work.json").write_text(json.dumps({"equal_work": args.equal_work, "size": size, "rows": rows},
                                                    indent=1))
    (out / "equal_work.md").write_text(f"# Latency at equal work\n\n{table}\n")
    plot(rows, out / "equal_work.png")
    print(table)
    print(f"wrote {out}/equal_work.md, equal_work.json, equal_work.png")
    return 0
