"""The comparison study: train every family on the synthetic dataset over 3 seeds and write docs/results.md.

    python tools/study.py                                   # what `make study` runs (about 45 minutes on 2 CPU cores)
    python tools/study.py --models rcn_gru_s,frame_avg_s --seeds 0 --doc /tmp/results.md   # a subset
    python tools/study.py --ablation                        # the RCN design choices: docs/ablation.md
    python tools/study.py --ablation --sizes 32 --variants gru,gru+preact_norm=batch --seeds 0
    python tools/study.py --recipe                          # Mixup, CutMix, EMA, repeats: docs/recipe.md
    python tools/study.py --recipe --report-only            # the report from the runs done so far, training nothing

Generates the dataset into OUT/synthetic when it is not there, trains each (model, seed) into OUT/<model>/seed<k>
with configs/synthetic_<model>.yaml, and writes the report with its plots (next to it, in img/). Each run's result is
kept, so running the command again continues a stopped study; delete OUT to start afresh.
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.study import main

__all__ = ["main", "run_tool"]  # `vidrcnn study` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
