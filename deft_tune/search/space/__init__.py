"""The search-space language: YAML in, a validated :class:`SearchSpace` out, compiled for Optuna.

>>> space = load_space("search_spaces/quick.yaml")          # ConfigError if anything is off
>>> fn = define_by_run(space)                               # OptunaSearch(space=fn, ...)
>>> config = run_config_from_params(space, trial_params, seed=7)

- :mod:`.schema`: the file format (frozen dataclasses) and the parsing of its sections;
- :mod:`.params`: one searchable parameter (a value, a range or choices);
- :mod:`.start`: starting points written as schedules, turned into Optuna's names;
- :mod:`.ifp_betas`: stage-beta candidates from an annealing-test table;
- :mod:`.sampling`: the define-by-run function and the run config of one trial;
- :mod:`.loading`: load and validate a file, test-compiling it at both ends of every range.

Nothing here imports Ray or Optuna: a bad space is refused before a cluster is touched.
"""

from deft_tune.search.space.loading import largest_run, load_space, space_from_dict
from deft_tune.search.space.sampling import (
    TRIAL_NUMBER,
    define_by_run,
    points_to_evaluate,
    run_config_from_params,
    trial_seed,
    trial_threads,
)
from deft_tune.search.space.schema import (
    METHODS,
    ASHAStopping,
    Budget,
    IFPStopping,
    Objective,
    SearchSpace,
    StoppingConfig,
    param_domains,
)

__all__ = [
    "METHODS",
    "TRIAL_NUMBER",
    "ASHAStopping",
    "Budget",
    "IFPStopping",
    "Objective",
    "SearchSpace",
    "StoppingConfig",
    "define_by_run",
    "largest_run",
    "load_space",
    "param_domains",
    "points_to_evaluate",
    "run_config_from_params",
    "space_from_dict",
    "trial_seed",
    "trial_threads",
]
