"""Latency against sequence length: where the sequential bottleneck of recurrent models shows.

``profile_models`` measures one row per (model, T); ``write_all`` writes ``profile.csv``, ``profile.json``,
``profile.md`` and ``latency_vs_length.png``; ``summary`` fits how latency grows with T.
"""

from vidrcnn.profiling.measure import (
                                       StepCounter,
                                       Timing,
                                       count_flops,
                                       count_steps,
                                       forward_backward,
                                       held_for_backward,
                                       peak_memory,
                                       synchronize,
                                       tensor_peak_memory,
                                       time_fn,
)
from vidrcnn.profiling.report import COLUMNS, fit_slopes, machine_info, markdown_table, summary, write_all
from vidrcnn.profiling.run import DEFAULT_LENGTHS, DEFAULT_MODELS, ProfileOptions, profile_model, profile_models

__all__ = [
    "COLUMNS", "DEFAULT_LENGTHS", "DEFAULT_MODELS", "ProfileOptions", "StepCounter", "Timing", "count_flops",
    "count_steps",
    "fit_slopes", "forward_backward", "held_for_backward", "machine_info", "markdown_table", "peak_memory", "profile_model", "profile_models", "summary",
    "synchronize", "tensor_peak_memory", "time_fn", "write_all",
]
