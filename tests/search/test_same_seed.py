"""The same space and search seed on one machine give the same search: trials, stops and best.

Two real searches (local Ray, sqlite MLflow store) of the tiny space, one trial at a time, with
ASHA and the IFP stopper on. Trial ids are Tune's random draws, so the searches are compared
trial by trial in the order they ran; everything else must be equal, to the last bit.
"""

from __future__ import annotations

import math

import pytest

from deft_tune.report_keys import IMAGES_PER_SEC
from tests.doubles import SmallGridDSprites, tiny_space


def _search(folder, ray_session):
    from deft_tune.search.options import SearchOptions
    from deft_tune.search.runner import run_search
    from deft_tune.search.tracking.reader import load_search

    folder.mkdir()
    space = tiny_space(folder / "tiny.yaml", trials=3, concurrent=1, name="same")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    options = SearchOptions(space=str(space), storage=str(folder / "runs"), tracking_uri=uri)
    outcome = run_search(
        options, data_factory=SmallGridDSprites(str(folder / "cache")), out=lambda line: None
    )
    trials = sorted(load_search(uri, "same").trials, key=lambda t: t.start_time)
    return outcome, trials


def _seen(trial) -> tuple:
    """What a trial was and did: its id and its speed aside (NaN as None: NaN != NaN)."""
    numbers = {
        k: None if math.isnan(v) else v for k, v in trial.metrics.items() if k != IMAGES_PER_SEC
    }
    return (trial.params, trial.stop_reason, trial.steps, numbers)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_trials_stops_and_best(tmp_path, ray_session):
    first, trials = _search(tmp_path / "first", ray_session)
    again, trials_again = _search(tmp_path / "again", ray_session)
    assert len(trials) == len(trials_again) == 3
    for one, other in zip(trials, trials_again):
        assert _seen(one) == _seen(other), (one.trial_id, other.trial_id)
    # Seeds come from the trial's ordinal in the search: three different ones, not the ids'.
    assert len({t.params["training.seed"] for t in trials}) == 3
    best = [t.trial_id for t in trials].index(first.best_trial_id)
    assert trials_again[best].trial_id == again.best_trial_id
    assert first.best_value == again.best_value and first.completed == again.completed
