"""The annealing loop and the supervised/unsupervised tests on a tiny bar data set."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deft_tune.errors import ConfigError, DataError
from deft_tune.freezing.annealing import (
    annealing_runs,
    annealing_test,
    annealing_test_unsupervised,
    run_annealing,
    run_local,
    run_seed,
)
from deft_tune.freezing.loop import AnnealingConfig

TINY = AnnealingConfig(steps=40, batch_size=8, encoder_width=4, decoder_width=4)


def test_beta_schedule_matches_the_formula():
    config = AnnealingConfig()
    assert config.beta_at(0) == 71.0
    assert config.beta_at(8000) == pytest.approx(70 * math.exp(-15) + 1)
    assert config.beta_at(4000) == pytest.approx(70 * math.exp(-7.5) + 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"gamma": -1.0}, "gamma"),
        ({"window": 0}, "window"),
        ({"loss": "l1"}, "loss"),
        ({"threshold": float("nan")}, "threshold"),
    ],
)
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AnnealingConfig(**kwargs)


def test_runs_cover_factors_draws_and_seeds(bars):
    runs = annealing_runs(bars, TINY, draws=2, seeds=2, seed=7)
    assert [(r.factor, r.draw) for r in runs] == [
        ("x", 0),
        ("x", 0),
        ("x", 1),
        ("x", 1),
        ("width", 0),
        ("width", 0),
        ("width", 1),
        ("width", 1),
    ]
    assert len({r.seed for r in runs}) == 8
    assert runs[0].images.shape == (16, 1, 64, 64) and runs[4].images.shape == (4, 1, 64, 64)
    # The view of x holds width fixed at the draw, and its images differ only in position.
    assert set(runs[0].fixed) == {"width"}
    widths = runs[0].images[:, 0, 30].sum(axis=1)
    assert (widths == widths[0]).all()
    assert annealing_runs(bars, TINY, draws=2, seeds=2, seed=7)[3].seed == runs[3].seed
    assert runs[0].seed == run_seed(7, 0, 0, 1)


def test_runs_reject_bad_arguments(bars):
    with pytest.raises(ConfigError, match="not factors"):
        annealing_runs(bars, TINY, factors=["colour"])
    with pytest.raises(ConfigError, match="draws"):
        annealing_runs(bars, TINY, draws=0)
    bars.observation_shape = (1, 32, 32)
    with pytest.raises(DataError, match="64, 64"):
        annealing_runs(bars, TINY)


def test_a_run_is_deterministic_and_leaves_the_global_rng_alone(bars):
    run = annealing_runs(bars, TINY, factors=["x"], draws=1)[0]
    state = torch.random.get_rng_state()
    a, b = run_annealing(run), run_annealing(run)
    assert torch.equal(state, torch.random.get_rng_state())
    np.testing.assert_array_equal(a.curve.kl, b.curve.kl)
    assert a.curve.kl.shape == (40, 1) and a.steps == 40
    np.testing.assert_allclose(a.curve.betas, TINY.beta_at(np.arange(40)))
    assert a.ifp_step == -1 or a.curve.betas[a.ifp_step] == a.ifp


@pytest.mark.slow
def test_process_pool_gives_the_same_results_as_in_process(bars):
    runs = annealing_runs(bars, TINY, draws=1)
    seen = []
    pooled = run_local(runs, seen.append, workers=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: the same kernels, bit for bit
    try:
        serial = run_local(runs, workers=1)
    finally:
        torch.set_num_threads(threads)
    assert sorted(r.factor for r in seen) == ["width", "x"]
    assert [r.factor for r in pooled] == ["x", "width"]
    for p, s in zip(pooled, serial):
        np.testing.assert_array_equal(p.curve.kl, s.curve.kl)


def test_annealing_test_takes_a_runner(bars):
    calls = []

    def runner(runs, on_result):
        calls.append(len(runs))
        return [run_annealing(r) for r in runs]

    results = annealing_test(bars, TINY, factors=["width"], draws=2, runner=runner)
    assert calls == [2] and [r.draw for r in results] == [0, 1]


def test_unsupervised_reports_every_latent(bars):
    freezings, curve = annealing_test_unsupervised(bars, latents=3, config=TINY, seed=1)
    assert sorted(f.latent for f in freezings) == [0, 1, 2]
    assert curve.kl.shape == (40, 3)
    finite = [f.ifp for f in freezings if math.isfinite(f.ifp)]
    assert finite == sorted(finite, reverse=True)
    with pytest.raises(ConfigError, match="latents"):
        annealing_test_unsupervised(bars, latents=0, config=TINY)
