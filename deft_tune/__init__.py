"""deft-tune: search DEFT training schedules for disentangled VAEs.

Library rooms (data, model, schedules, train, freezing, metrics) are plain PyTorch/NumPy;
only :mod:`deft_tune.search` imports Ray, Optuna or MLflow.
"""

__version__ = "0.1.0"
