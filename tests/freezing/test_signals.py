"""The online information signals on hand-made evaluation contexts with known answers."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from deft_tune.freezing import InformationTracker

GROUPS = np.array([0, 0, 1, 1, 2, 2])  # three groups of two latents


def ctx(step, stage, kl, beta=10.0, codes=None, factors=None, names=(), encoder_kl=None):
    return SimpleNamespace(
        encoder_kl_per_latent=None if encoder_kl is None else np.asarray(encoder_kl, dtype=float),
        step=step,
        stage=stage,
        beta=beta,
        kl_per_latent=np.asarray(kl, dtype=float),
        group_of_latent=GROUPS,
        num_groups=3,
        probe_codes=codes,
        probe_factors=factors,
        factor_names=names,
        factor_sizes=(),
    )


def test_diffusion_is_zero_when_only_the_active_group_gains():
    tracker = InformationTracker(3)
    tracker(ctx(100, 0, [2.0, 0.5, 0, 0, 0, 0]))
    out = tracker(ctx(200, 1, [2.0, 0.5, 0.75, 0.5, 0, 0]))
    assert out["info/active_gain"] == 1.25
    assert out["info/frozen_gain"] == 0.0
    assert out["info/diffusion"] == 0.0
    assert out["info/active_captured"] == 1.0


def test_diffusion_is_one_when_only_frozen_groups_gain():
    tracker = InformationTracker(3)
    tracker(ctx(100, 0, [2.0, 0.5, 0, 0, 0, 0]))
    tracker(ctx(200, 1, [2.0, 0.5, 1.0, 0, 0, 0]))  # last measurement before stage 2
    out = tracker(ctx(300, 2, [2.5, 0.5, 1.0, 0.25, 0, 0]))
    assert out["info/active_gain"] == 0.0
    assert out["info/frozen_gain"] == 0.75  # 0.5 in group 0, 0.25 in group 1
    assert [out[f"info/gain/group{g}"] for g in range(3)] == [0.5, 0.25, 0.0]
    assert out["info/diffusion"] == 1.0
    assert out["info/active_captured"] == 0.0


def test_only_the_projection_moving_a_frozen_group_is_no_gain():
    # Group 0 frozen in stage 1: its encoder's output (encoder_kl) stays at 2.0 nats while its
    # projection scales the KL the decoder sees from 2.0 to 3.25; group 1 takes in 0.75.
    tracker = InformationTracker(3)
    tracker(ctx(100, 0, [1.5, 0.5, 0, 0, 0, 0]))
    tracker.begin_stage(1, np.array([2.0, 0.0, 0.0]))
    out = tracker(ctx(200, 1, [2.5, 0.75, 0.5, 0.25, 0, 0], encoder_kl=[1.5, 0.5, 0.5, 0.25, 0, 0]))
    assert out["info/gain/group0"] == 0.0
    assert out["info/frozen_gain"] == 0.0
    assert out["info/diffusion"] == 0.0
    assert out["info/active_gain"] == 0.75
    assert out["info/projection/group0"] == 1.25  # 3.25 after the projection - 2.0 before
    assert "info/projection/group1" not in out  # the active group is not projected


def test_the_stage_baseline_is_taken_at_the_switch_when_the_loop_gives_it():
    # The encoder of group 0 moved from 2.0 to 2.25 between the last evaluation and the switch
    # (still stage 0); only what it takes in after the switch counts as diffusion.
    tracker = InformationTracker(3)
    tracker(ctx(100, 0, [1.5, 0.5, 0, 0, 0, 0]))
    tracker.begin_stage(1, np.array([2.25, 0.0, 0.0]))
    out = tracker(ctx(200, 1, [1.75, 0.75, 0.5, 0.5, 0, 0]))
    assert out["info/gain/group0"] == 0.25
    assert out["info/active_gain"] == 1.0
    assert out["info/diffusion"] == 0.2


def test_mixed_gains_and_losses_do_not_cancel():
    tracker = InformationTracker(3)
    tracker(ctx(100, 1, [2.0, 0, 1.0, 0, 0, 0]))
    # Stage 2: group 0 loses 1 nat, group 1 gains 1, the active group 2 gains 3.
    out = tracker(ctx(200, 2, [1.0, 0, 2.0, 0, 1.5, 1.5]))
    assert (out["info/active_gain"], out["info/frozen_gain"]) == (3.0, 1.0)
    assert [out[f"info/gain/group{g}"] for g in range(3)] == [0.0, 1.0, 3.0]  # loss clipped
    assert out["info/diffusion"] == 0.25


def test_gains_within_noise_give_no_diffusion_and_capture_is_sticky():
    tracker = InformationTracker(3, noise=0.01, capture_threshold=0.1)
    tracker(ctx(100, 0, [1.0, 0, 0, 0, 0, 0]))
    out = tracker(ctx(200, 1, [1.005, 0, 0, 0, 0, 0]))
    assert out["info/frozen_gain"] == pytest.approx(0.005)
    assert out["info/diffusion"] == 0.0
    assert out["info/active_captured"] == 0.0
    assert tracker(ctx(300, 1, [1.0, 0, 0.2, 0, 0, 0]))["info/active_captured"] == 1.0
    # The group later loses what it took: the flag stays up for the rest of the stage.
    assert tracker(ctx(400, 1, [1.0, 0, 0.0, 0, 0, 0]))["info/active_captured"] == 1.0
    assert tracker(ctx(500, 2, [1.0, 0, 0.0, 0, 0, 0]))["info/active_captured"] == 0.0


def test_freezing_events_fire_once_per_rise_and_rearm_below_half():
    tracker = InformationTracker(3, event_threshold=0.1)
    out = tracker(ctx(100, 0, [0.0] * 6, beta=70))
    assert out["info/freezing_events"] == 0.0 and math.isnan(out["info/last_freezing_beta"])
    out = tracker(ctx(200, 0, [0.5, 0, 0, 0, 0, 0], beta=50))
    assert (out["info/freezing_events"], out["info/last_freezing_beta"]) == (1.0, 50.0)
    assert tracker(ctx(300, 0, [0.8, 0, 0, 0, 0, 0], beta=40))["info/freezing_events"] == 1.0
    tracker(ctx(400, 1, [0.07, 0, 0, 0, 0, 0], beta=30))  # below 0.1 but not below 0.05
    assert tracker(ctx(500, 1, [0.5, 0, 0, 0, 0, 0], beta=20))["info/freezing_events"] == 1.0
    tracker(ctx(600, 1, [0.01, 0, 0, 0, 0, 0], beta=15))  # re-armed
    out = tracker(ctx(700, 1, [0.5, 0, 0, 0.3, 0, 0], beta=12))
    assert (out["info/freezing_events"], out["info/last_freezing_beta"]) == (3.0, 12.0)
    steps_groups = [(e.step, e.beta, e.group, e.latent) for e in tracker.events]
    assert steps_groups == [(200, 50.0, 0, 0), (700, 12.0, 0, 0), (700, 12.0, 1, 3)]


def test_state_dict_resumes_identically():
    calls = [
        ctx(100, 0, [0.5, 0, 0, 0, 0, 0]),
        ctx(200, 1, [0.6, 0, 0.2, 0, 0, 0]),
        ctx(300, 1, [0.9, 0, 0.4, 0.3, 0, 0]),
        ctx(400, 2, [0.9, 0.2, 0.4, 0.3, 1, 0]),
    ]
    whole = InformationTracker(3)
    expected = [whole(c) for c in calls]
    first = InformationTracker(3)
    for c in calls[:2]:
        first(c)
    resumed = InformationTracker(3)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    got = [resumed(c) for c in calls[2:]]
    assert got == expected[2:]
    assert resumed.events == whole.events


def test_nmi_top1_and_top2_on_exact_codes():
    # A full product grid: factors a and b are exactly independent in the empirical joint.
    a, b = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    factors = np.stack([a.ravel(), b.ravel(), np.zeros(20, dtype=int)], axis=1)
    factors = np.tile(factors, (3, 1))
    codes = np.stack(
        [factors[:, 0], factors[:, 0], factors[:, 1], np.zeros(60), np.zeros(60), np.zeros(60)],
        axis=1,
    ).astype(float)
    tracker = InformationTracker(3)
    kl = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    out = tracker(ctx(100, 0, kl, codes=codes, factors=factors, names=("a", "b", "c")))
    assert out["info/nmi1/a"] == pytest.approx(1.0) and out["info/nmi2/a"] == pytest.approx(1.0)
    assert out["info/nmi1/b"] == pytest.approx(1.0) and out["info/nmi2/b"] == pytest.approx(0.0)
    assert math.isnan(out["info/nmi1/c"])  # constant on the probe: no entropy
    assert out["info/nmi1_mean"] == pytest.approx(1.0)
    assert out["info/nmi2_mean"] == pytest.approx(0.5)


def test_latents_without_kl_carry_no_mutual_information():
    # Code 1 copies factor a but its KL is below min_kl: a collapsed latent's wobble.
    a = np.repeat(np.arange(4), 10)
    factors = a[:, None]
    codes = np.stack([a, a * 1e-4] + [np.zeros(40)] * 4, axis=1).astype(float)
    tracker = InformationTracker(3, min_kl=0.01)
    out = tracker(ctx(1, 0, [1.0, 0.005, 0, 0, 0, 0], codes=codes, factors=factors, names=("a",)))
    assert out["info/nmi1/a"] == pytest.approx(1.0) and out["info/nmi2/a"] == 0.0
    out = tracker(ctx(2, 0, [1.0, 0.02, 0, 0, 0, 0], codes=codes, factors=factors, names=("a",)))
    assert out["info/nmi2/a"] == pytest.approx(1.0)


def test_no_labels_no_nmi_keys():
    out = InformationTracker(3)(ctx(100, 0, [0.0] * 6))
    assert not any(key.startswith("info/nmi") for key in out)
    assert set(out) == {
        "info/active_gain",
        "info/frozen_gain",
        "info/diffusion",
        "info/active_captured",
        "info/freezing_events",
        "info/last_freezing_beta",
        "info/gain/group0",
    }


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_groups"):
        InformationTracker(0)
    with pytest.raises(ValueError, match="event_threshold"):
        InformationTracker(2, event_threshold=-1)
    with pytest.raises(ValueError, match="group_of_latent"):
        InformationTracker(2)(ctx(1, 0, [0.0] * 6))
