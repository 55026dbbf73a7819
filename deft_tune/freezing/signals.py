"""Online information signals: what the training loop reports every eval interval.

The tracker is an eval hook of the training loop. It reads the KL per latent and, where the data
has labels, the codes and factors of a fixed probe batch, and derives the numbers the search's
early stopper reads (all keys under ``info/``):

- ``info/active_gain``: nats the active group (the one opened by the current stage) gained since
  the stage began. The group was closed before (mean 0, log-variance 0: KL exactly 0), so its
  baseline is 0.
- ``info/frozen_gain``: nats gained by the groups opened before, each measured from its value
  when the stage began (the training loop measures it at the switch, :meth:`begin_stage`;
  without that, the last evaluation before the stage). Gains are clipped at 0 per group:
  information one frozen group loses does not cancel what another takes in.
- ``info/gain/group{g}``: the same gain for each open group g (the active one and each earlier
  one), so a report says which earlier group the new information went into.
- Gains are measured on each encoder's own output, before a frozen group's projection
  (``encoder_kl_per_latent``): diffusion is new features entering an earlier encoder, and a
  projection (mean * exp(w1), log-variance + w2) can move a frozen group's KL but cannot teach
  its encoder anything. A frozen group's gain is therefore exactly 0; a slowed (lr-scaled)
  encoder that drifts shows its drift.
- ``info/projection/group{g}``: for each earlier group, the nats of KL its projection moves
  (KL after the projection minus before, signed; 0 for a group that is not projected).
- ``info/diffusion``: frozen_gain / (active_gain + frozen_gain), or 0 while the total gain is
  within ``noise`` nats of nothing (the probe KL wobbles by a few thousandths between evals).
- ``info/active_captured``: 1.0 once the active gain exceeded ``capture_threshold`` this stage.
- ``info/freezing_events`` and ``info/last_freezing_beta``: a freezing event is a latent whose
  KL rises past ``event_threshold`` (the IFP threshold of the annealing test); it re-arms when
  the KL falls below half of it. ``last_freezing_beta`` is NaN until the first event.
- With labels, ``info/nmi1/<factor>``, ``info/nmi2/<factor>`` and their means over factors: the
  largest and second largest entropy-normalised mutual information between the factor and any
  latent (NMI2 rising is information diffusing into a second latent). A factor constant on the
  probe batch has no entropy to normalise by and reports NaN; means skip it. A latent whose KL
  is below ``min_kl`` counts as carrying no information (MI 0): equal-width binning is
  scale-free, so the tiny factor-dependent wobble of a collapsed latent's mean would otherwise
  score like a real code, and NMI2 would report diffusion into latents that hold nothing.

Groups with an index above the current stage are treated as not yet open and ignored. The
baselines (beta-VAE and friends) open every group at step 0; for them only the KL, the events
and the NMI signals are meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from deft_tune import report_keys as keys
from deft_tune.metrics import entropies, mutual_info_matrix, normalized_top2

__all__ = ["FreezingEvent", "InformationTracker", "stage_gains"]


class _Context(Protocol):
    """The members of ``deft_tune.training.EvalContext`` the tracker reads (read-only)."""

    @property
    def step(self) -> int: ...
    @property
    def stage(self) -> int: ...
    @property
    def beta(self) -> float: ...
    @property
    def kl_per_latent(self) -> np.ndarray: ...
    # Also read when present: ``encoder_kl_per_latent`` (before projections; None or absent:
    # the same as kl_per_latent).
    @property
    def group_of_latent(self) -> np.ndarray: ...
    @property
    def probe_codes(self) -> np.ndarray: ...
    @property
    def probe_factors(self) -> np.ndarray | None: ...
    @property
    def factor_names(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class FreezingEvent:
    """A latent's KL rose past the event threshold at this evaluation."""

    step: int
    beta: float
    group: int
    latent: int
    stage: int


class InformationTracker:
    """Eval hook deriving freezing, gain and diffusion signals; see the module docstring.

    ``bins`` is the number of equal-width bins per latent for the mutual information (the
    authors use 20); ``min_kl`` (nats) is the KL below which a latent's MI is taken as 0.
    """

    def __init__(
        self,
        num_groups: int,
        factor_names: Sequence[str] | None = None,
        *,
        event_threshold: float = 0.1,
        capture_threshold: float = 0.1,
        noise: float = 0.01,
        bins: int = 20,
        min_kl: float = 0.01,
    ) -> None:
        if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1:
            raise ValueError(f"num_groups == {num_groups!r}, must be an integer >= 1")
        for name, value in (
            ("event_threshold", event_threshold),
            ("capture_threshold", capture_threshold),
            ("noise", noise),
            ("min_kl", min_kl),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} == {value!r}, must be a number >= 0")
        self.num_groups = num_groups
        self.factor_names = tuple(factor_names) if factor_names is not None else None
        self.event_threshold = float(event_threshold)
        self.capture_threshold = float(capture_threshold)
        self.noise = float(noise)
        self.bins = bins
        self.min_kl = float(min_kl)
        self._reset()

    def _reset(self) -> None:
        self._stage: int | None = None
        self._baseline = np.zeros(self.num_groups)  # group KL when the current stage began
        self._last_group_kl: np.ndarray | None = None  # group KL at the previous evaluation
        self._captured = False
        self._armed: np.ndarray | None = None  # per latent: may fire an event
        self._events: list[FreezingEvent] = []

    @property
    def events(self) -> tuple[FreezingEvent, ...]:
        """Freezing events so far, oldest first."""
        return tuple(self._events)

    def __call__(self, ctx: _Context) -> dict[str, float]:
        kl = np.asarray(ctx.kl_per_latent, dtype=np.float64)
        groups = np.asarray(ctx.group_of_latent, dtype=np.int64)
        encoder_kl = getattr(ctx, "encoder_kl_per_latent", None)
        encoder_kl = kl if encoder_kl is None else np.asarray(encoder_kl, dtype=np.float64)
        if kl.ndim != 1 or groups.shape != kl.shape or encoder_kl.shape != kl.shape:
            raise ValueError(
                f"kl_per_latent {kl.shape}, encoder_kl_per_latent {encoder_kl.shape} and "
                f"group_of_latent {groups.shape} must be 1-D of the same length"
            )
        if groups.size and (groups.min() < 0 or groups.max() >= self.num_groups):
            raise ValueError(f"group_of_latent must lie in [0, {self.num_groups})")
        group_kl = np.bincount(groups, weights=encoder_kl, minlength=self.num_groups)
        stage = int(ctx.stage)
        if stage != self._stage:  # nobody said when the stage began: the last measurement
            before = self._last_group_kl if self._last_group_kl is not None else group_kl
            self.begin_stage(stage, before)
        self._last_group_kl = group_kl
        self._detect_events(ctx, kl, groups)
        out = self._gains(stage, group_kl)
        projected = np.bincount(groups, weights=kl, minlength=self.num_groups)
        for g in range(max(min(stage, self.num_groups), 0)):
            out[keys.projection_group(g)] = float(projected[g] - group_kl[g])
        out[keys.FREEZING_EVENTS] = float(len(self._events))
        out[keys.LAST_FREEZING_BETA] = self._events[-1].beta if self._events else math.nan
        if getattr(ctx, "probe_factors", None) is not None:
            out.update(self._nmi(ctx, kl))
        return out

    def begin_stage(self, stage: int, encoder_group_kl: np.ndarray) -> None:
        """Stage ``stage`` begins now; ``encoder_group_kl`` is each group's KL before any
        projection at this moment, the baseline of the stage's gains. Called by the training
        loop at the switch; a tracker not told takes its last measurement before the stage."""
        if np.shape(encoder_group_kl) != (self.num_groups,):
            raise ValueError(f"encoder_group_kl must have {self.num_groups} values")
        self._baseline = np.array(encoder_group_kl, dtype=np.float64)
        if 0 <= stage < self.num_groups:
            self._baseline[stage] = 0.0  # the newly opened group had exactly 0 KL while closed
        self._stage = stage
        self._captured = False

    def _gains(self, stage: int, group_kl: np.ndarray) -> dict[str, float]:
        gains = np.maximum(group_kl - self._baseline, 0.0)
        active = float(gains[stage]) if 0 <= stage < self.num_groups else 0.0
        opened = max(min(stage, self.num_groups), 0)
        frozen = float(gains[:opened].sum())
        total = active + frozen
        self._captured = self._captured or active > self.capture_threshold
        out = {
            keys.ACTIVE_GAIN: active,
            keys.FROZEN_GAIN: frozen,
            keys.DIFFUSION: frozen / total if total > self.noise else 0.0,
            keys.ACTIVE_CAPTURED: float(self._captured),
        }
        out.update(
            {keys.gain_group(g): float(gains[g]) for g in range(min(opened + 1, self.num_groups))}
        )
        return out

    def _detect_events(self, ctx: _Context, kl: np.ndarray, groups: np.ndarray) -> None:
        if self._armed is None or self._armed.shape != kl.shape:
            self._armed = np.ones(kl.shape, dtype=bool)
        fired = self._armed & (kl > self.event_threshold)
        for latent in np.flatnonzero(fired):
            self._events.append(
                FreezingEvent(
                    step=int(ctx.step),
                    beta=float(ctx.beta),
                    group=int(groups[latent]),
                    latent=int(latent),
                    stage=int(ctx.stage),
                )
            )
        self._armed = (self._armed & ~fired) | (kl < self.event_threshold / 2)

    def _nmi(self, ctx: _Context, kl: np.ndarray) -> dict[str, float]:
        codes = np.asarray(ctx.probe_codes, dtype=np.float64)
        factors = np.asarray(ctx.probe_factors)
        names = self.factor_names or tuple(ctx.factor_names)
        if len(names) != factors.shape[1]:
            raise ValueError(
                f"probe_factors has {factors.shape[1]} columns but there are "
                f"{len(names)} factor names"
            )
        h = entropies(factors)
        nmi1 = np.full(len(names), math.nan)
        nmi2 = np.full(len(names), math.nan)
        varied = h > 0
        if varied.any():
            mi = mutual_info_matrix(codes, factors[:, varied], bins=self.bins)
            mi[:, kl < self.min_kl] = 0.0
            nmi1[varied], nmi2[varied] = normalized_top2(mi, h[varied])
        out = {}
        for name, a, b in zip(names, nmi1, nmi2):
            out[keys.nmi1(name)] = float(a)
            out[keys.nmi2(name)] = float(b)
        out[keys.NMI1_MEAN] = float(np.nanmean(nmi1)) if varied.any() else math.nan
        out[keys.NMI2_MEAN] = float(np.nanmean(nmi2)) if varied.any() else math.nan
        return out

    # --- checkpointing: plain Python data, so torch.save and JSON both take it --------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "stage": self._stage,
            "baseline": self._baseline.tolist(),
            "last_group_kl": None if self._last_group_kl is None else self._last_group_kl.tolist(),
            "captured": self._captured,
            "armed": None if self._armed is None else self._armed.tolist(),
            "events": [asdict(e) for e in self._events],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        baseline = np.asarray(state["baseline"], dtype=np.float64)
        if baseline.shape != (self.num_groups,):
            raise ValueError(f"state has {baseline.size} groups, the tracker {self.num_groups}")
        self._stage = state["stage"]
        self._baseline = baseline
        last = state["last_group_kl"]
        self._last_group_kl = None if last is None else np.asarray(last, dtype=np.float64)
        self._captured = bool(state["captured"])
        armed = state["armed"]
        self._armed = None if armed is None else np.asarray(armed, dtype=bool)
        self._events = [FreezingEvent(**e) for e in state["events"]]


def stage_gains(history: Sequence[dict[str, float]]) -> list[dict[str, Any]]:
    """Per stage of a run's reports: its last report's step, the nats its active group took in,
    the nats that entered each earlier group's encoder (``info/gain/group{g}`` at the stage's
    last report; gains are measured from the stage's start, before projections) and the nats
    of KL each earlier group's projection moved (``info/projection/group{g}``)."""
    last: dict[int, dict[str, float]] = {}
    for report in history:
        if keys.STAGE in report:
            last[int(report[keys.STAGE])] = report
    out = []
    for stage, report in sorted(last.items()):
        earlier = {f"group{g}": report.get(keys.gain_group(g), math.nan) for g in range(stage)}
        moved = {f"group{g}": report.get(keys.projection_group(g), 0.0) for g in range(stage)}
        out.append({
            "stage": stage,
            "last_step": int(report.get(keys.STEP, -1)),
            "active_gain": report.get(keys.ACTIVE_GAIN, math.nan),
            "entered_earlier": earlier,
            "entered_earlier_total": float(sum(earlier.values())) if earlier else 0.0,
            "projection_moved": moved,
        })  # fmt: skip
    return out
