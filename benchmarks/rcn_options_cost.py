"""What the RCN design options cost: a training step, a clip forward and one streamed frame, off against on.

Figures: docs/guide/performance.md, "What today's defaults cost"; the cost of each candidate default in
docs/reports/how_defaults_were_chosen.md.

Options off and on are timed in one process and interleaved (so the ratio is of one run on one machine state).

    python benchmarks/rcn_options_cost.py                     # every rcn_*_s, today's defaults against the reference
    python benchmarks/rcn_options_cost.py --pairs 'rcn_gru_s:preact_norm=null|rcn_gru_s:preact_norm=batch'
    python benchmarks/rcn_options_cost.py --candidate stem_frames=3,stem_downsample=stride   # a candidate default

A pair is ``A|B`` of variants ``MODEL[:key=value,...]``. Training step: forward + backward of a batch of 16 clips of
16 frames at 32x32 (the study's step); clip forward: batch 1, 16 frames, eval; stream: one frame at batch 1 carrying
the state of 15 frames before it, eval, as ``tools/infer.py`` streams. In eval both models run as ``tools/test.py``
and ``tools/infer.py`` run them, each BatchNorm folded into the convolution before it (``--no-fold``: not folded).
"""

from __future__ import annotations

import torch

from vidrcnn.experiments.variants import Variant
from vidrcnn.layers import fold_batch_norms
from vidrcnn.models import get_model
from vidrcnn.profiling import forward_backward, time_fn
from vidrcnn.profiling.bench_args import parse, parse_variant, stat_ms, timing_parser

MODELS = ("rcn_rnn_s", "rcn_rcl_s", "rcn_gru_s", "rcn_lstm_s", "rcn_mingru_s")


def default_pairs(candidate: str | None = None) -> list[str]:
    """Every rcn_*_s: the reference (every option off) against today's default, and against today's default with
    the ``candidate`` options (``key=value,...``) when given."""
    def off(model: str) -> str:  # every option as it was before the ablations (the reference rows)
        return ",".join(f"{k}={'null' if v is None else str(v).lower()}" for k, v in Variant("", model).options().items())
    pairs = [f"{m}:{off(m)}|{m}" for m in MODELS]
    if candidate:
        pairs += [f"{m}:{off(m)}|{m}:{candidate}" for m in MODELS]
    return pairs


def timings(spec: str, args) -> dict[str, float]:
    name, kwargs = parse_variant(spec)
    torch.manual_seed(0)
    model = get_model(name, num_classes=11, **kwargs)
    train_x = torch.randn(16, 3, 16, 32, 32)
    clip = torch.randn(1, 3, 16, 32, 32)
    model.train()
    step = stat_ms(time_fn(forward_backward(model, train_x), warmup=1, iters=args.iters), args)
    model.eval()
    if args.fold:
        fold_batch_norms(model)
    with torch.no_grad():
        fwd = stat_ms(time_fn(lambda: model(clip), warmup=2, iters=args.iters), args)
        _, state = model.stream(clip[:, :, :15])
        frame = clip[:, :, 15:]
        stream = stat_ms(time_fn(lambda: model.stream(frame, state), warmup=3, iters=5 * args.iters), args)
    return {"train step": step, "clip forward": fwd, "stream frame": stream}


def main(argv: list[str] | None = None) -> int:
    ap = timing_parser(__doc__)
    ap.add_argument("--pairs", nargs="+", help="A|B variant pairs [every rcn_*_s: reference | today's default]")
    ap.add_argument("--candidate", help="key=value,... added to today's default of every rcn_*_s as a second B "
                    "(the reference against a candidate default); ignored with --pairs")
    ap.add_argument("--no-fold", dest="fold", action="store_false",
                    help="time eval with the BatchNorms kept (tools/test.py and tools/infer.py fold them)")
    ap.add_argument("--repeats", type=int, default=3, help="alternations of A and B; the median of each is kept")
    args = parse(ap, argv)
    pairs = args.pairs or default_pairs(args.candidate)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.stat} of {args.iters} calls, "
          f"{args.repeats} alternations\n")
    print("| A | B | train step A -> B (ms) | B/A | clip forward (ms) | B/A | stream frame (ms) | B/A |")
    print("|---|---|---|---|---|---|---|---|")
    for pair in pairs:
        a, _, b = pair.partition("|")
        runs = {a: [], b: []}
        for _ in range(args.repeats):
            for spec in (a, b):
                runs[spec].append(timings(spec, args))
        med = {s: {k: sorted(r[k] for r in rs)[len(rs) // 2] for k in rs[0]} for s, rs in runs.items()}
        cells = [f"{med[a][k]:.1f} -> {med[b][k]:.1f} | {med[b][k] / med[a][k]:.2f}" for k in med[a]]
        print(f"| `{a}` | `{b}` | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
