"""A small synthetic curve bank, written as real MLflow runs with the search's tracking writer.

Four trials of one 400-step, two-stage schedule shape (reports at 100, 200, 300, 400; stage 0
ends at step 200), three replicas each, every one run to its end. Trial t0 is engineered to trip
``no_capture``: in two of its three replicas stage 0 never captures anything, so the IFP stopper
(a majority of replicas) ends it at step 200, its stage's last report. It is also the best
schedule, so stopping it costs regret. The fast scores are chosen so that ASHA's cuts
(grace 1 report = 100 steps, halving, rungs at 100 and 200) are worked out by hand in the tests.

One sqlite store per test session holds the good bank and two that cannot be replayed (a
stopped trial; a trial without its final score): creating a store takes MLflow seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import yaml

from deft_tune.training.aggregate import combine

STEPS, INTERVAL, REPLICAS = 400, 100, 3
BANK = "bank"


@dataclass(frozen=True)
class Spec:
    fast: tuple[float, ...]  # the fast MIG at steps 100..400 (every replica alike)
    finals: tuple[float, ...]  # each replica's standard MIG at the end
    empty: int = 0  # how many replicas capture nothing in stage 0


SPECS = {
    "t0": Spec((0.30, 0.35, 0.40, 0.45), (0.4, 0.5, 0.6), empty=2),
    "t1": Spec((0.20, 0.30, 0.35, 0.38), (0.35, 0.40, 0.45)),
    "t2": Spec((0.25, 0.20, 0.22, 0.28), (0.25, 0.30, 0.35)),
    "t3": Spec((0.05, 0.08, 0.09, 0.10), (0.05, 0.10, 0.15)),
}
FINAL = {name: sum(spec.finals) / REPLICAS for name, spec in SPECS.items()}  # the mean


def bank_space(name: str = BANK) -> dict:
    """The bank's space file: every stopper off for recording, random sampling; ASHA's
    settings (grace 1 report, halving) are what a replay of the asha rules uses."""
    return {
        "name": name,
        "data": {"name": "dsprites_full"},
        "objective": {"metric": "metrics/mig", "mode": "max", "metrics": ["mig"]},
        "budget": {"steps_per_trial": STEPS, "num_trials": 4, "max_concurrent": 2,
                   "eval_interval": INTERVAL, "seed": 0, "sampler": "random"},
        "stopping": {"ifp": {"enabled": False},
                     "asha": {"enabled": False, "grace_period": 1, "reduction_factor": 2}},
        "base": {"model": {"encoder_width": 4, "decoder_width": 4},
                 "training": {"batch_size": 16, "replicas": REPLICAS}},
        "params": {"num_stages": 2, "latents_per_group": 1, "lr": 1e-3,
                   "beta_first": {"low": 4, "high": 40}, "beta_last": 1,
                   "stage_frac": 0.5, "lr_scale": 0.1},
    }  # fmt: skip


def replica_report(step: int, captured: bool, fast: float) -> dict[str, float]:
    """One replica's report as the training loop and the trainable make it."""
    stage = 0 if step <= 200 else 1
    gain = 0.5 if captured else 0.0
    return {
        "train/loss": 100.0 - step / 10,
        "train/replicas": float(REPLICAS),
        "train/stage": float(stage),
        "train/stage_progress": (step - 200 * stage) / 200,
        "info/active_captured": float(captured),
        "info/active_gain": gain,
        "info/frozen_gain": 0.0,
        "info/diffusion": 0.0,
        "kl/total": 5.0,
        "kl/group0": 2.0 if captured else 0.0,
        "kl/group1": 2.0 if stage == 1 else 0.0,
        "kl/latent0": 1.0,  # read by nothing that judges: a replay leaves it in MLflow
        "metrics/mig": fast,
    }


def write_trial(search, trial_id: str, spec: Spec, final: bool = True) -> None:
    """One trial's child run: a report per eval interval, then its final scores."""
    from deft_tune.search.tracking.writer import TrialRun

    run = TrialRun.open(search.uri, search.experiment_id, search.parent, trial_id,
                        params={"training": {"replicas": REPLICAS, "seed": 1}})  # fmt: skip
    for i, step in enumerate(range(INTERVAL, STEPS + 1, INTERVAL)):
        per_replica = [
            replica_report(step, not (r < spec.empty and step <= 200), spec.fast[i])
            for r in range(REPLICAS)
        ]
        run.log_metrics({**combine(per_replica), "trial/completed": 0.0}, step=step)
    if final:
        finals = combine([{"final/mig": v} for v in spec.finals], statistics_of=["final/mig"])
        run.log_metrics(finals, step=STEPS, skip_logged=False)
    run.end("FINISHED")


def write_search(
    uri: str, name: str, specs: dict[str, Spec], ends: dict | None = None, space: dict | None = None
) -> str:
    """A search with one child run per spec; ``ends`` overrides a trial's (status, reason);
    ``space`` replaces the bank's space file."""
    from deft_tune.search.tracking.writer import SearchTracking

    search = SearchTracking(uri, name)
    space = space or bank_space(name)
    search.start_parent({"budget": space["budget"]}, {"search_space.yaml": yaml.safe_dump(space)})
    for trial_id, spec in specs.items():
        write_trial(search, trial_id, spec, final=trial_id != "holey")
        status, reason = (ends or {}).get(trial_id, ("FINISHED", "completed"))
        search.finish_trial(trial_id, status, reason)
    search.finish_parent()
    return search.parent


def with_costs(bank, costs, final_cost):
    """``bank`` with each trial's reports costing ``costs`` seconds and its final ``final_cost``:
    recorded costs are real write times, so tests whose answer depends on the interleaving of
    concurrent trials set them."""
    trials = []
    for trial in bank.trials:
        reports = tuple(dataclasses.replace(r, cost_s=c) for r, c in zip(trial.reports, costs))
        final = dataclasses.replace(trial.final, cost_s=final_cost)
        trials.append(dataclasses.replace(trial, reports=reports, final=final))
    return dataclasses.replace(bank, trials=tuple(trials))


@pytest.fixture(scope="session")
def bank_store(tmp_path_factory):
    """The store: experiment ``bank`` (the good bank), ``stopped-bank`` (t1 stopped by ASHA
    while recording) and ``holey-bank`` (a completed trial without its final score)."""
    folder = tmp_path_factory.mktemp("replay-bank")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    parent = write_search(uri, BANK, SPECS)
    write_search(uri, "stopped-bank", SPECS, ends={"t1": ("KILLED", "asha")})
    write_search(uri, "holey-bank", {"t0": SPECS["t0"], "holey": SPECS["t1"]})
    return SimpleNamespace(uri=uri, folder=folder, parent=parent)


@pytest.fixture(scope="session")
def bank(bank_store):
    from deft_tune.search.replay.bank import load_bank

    return load_bank(bank_store.uri, BANK)
