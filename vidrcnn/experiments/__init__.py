"""Research, not public API: the comparison study, the design ablation and its named variants, the training-recipe
report, the diagnostics of why the recurrent models learned slowly, the model table and the import graph. Each
regenerates its report by one command (``tools/study.py``, ``python -m vidrcnn.experiments.diagnostics_report``,
``python -m vidrcnn.experiments.model_table``, ``python -m vidrcnn.experiments.import_graph``); names and signatures
here may change without notice.
"""
