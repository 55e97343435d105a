"""Training and evaluation: configs (config.py), the training loop (train.py), checkpoints (checkpoint.py),
distributed set-up (distributed.py), the learning-rate schedule (schedule.py), run logs (logging.py) and
evaluation (evaluate.py). Import the submodule you need; this package imports nothing heavy on its own.
"""
