"""Research, not public API: the comparison study, the design ablation and its named variants, the training-recipe
report, and the diagnostics of why the recurrent models learned slowly. Each regenerates its report in ``docs/reports/`` by one
command (``tools/study.py``, ``benchmarks/rcn_diagnostics.py``); names and signatures here may change without notice.
"""
