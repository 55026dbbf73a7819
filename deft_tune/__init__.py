"""deft-tune: search DEFT training schedules for disentangled VAEs.

Library rooms (data, model, schedules, train, freezing, metrics) are plain PyTorch/NumPy;
only :mod:`deft_tune.search` imports Ray, Optuna or MLflow.

Importing the package asks the OpenMP runtimes loaded after it (torch's, scikit-learn's) to
wait passively instead of spinning (``OMP_WAIT_POLICY=PASSIVE`` unless already set): see
:mod:`deft_tune.threads`. Import deft_tune before torch for it to take effect.
"""

from deft_tune.threads import quiet_pools

__version__ = "0.1.0"

quiet_pools()
