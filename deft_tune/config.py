"""The run config: one YAML file describes a training run completely.

The same file is what `deft-tune train --config` reads, what a search trial logs to MLflow and
what `deft-tune export` writes. It is validated once here, at the edge; after that the code
trusts it. Every error names the field, the value and the fix.

Example (DEFT with the authors' dSprites betas)::

    data: {name: dsprites_full}
    model: {groups: 4, latents_per_group: 2, loss: bernoulli}
    objective: {kind: deft}
    schedule:
      rule: fixed
      stages:
        - {beta: 70, steps: 1000}
        - {beta: 30, steps: 1000, lr_scale: 0.1}
        - {beta: 12, steps: 1000, lr_scale: 0.1}
        - {beta: 1, lr_scale: 0.1}          # the last stage runs to the end
    training: {steps: 4000, batch_size: 64, lr: 0.0005, seed: 0, threads: 1}
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from deft_tune.errors import ConfigError
from deft_tune.fileio import atomic_write_text
from deft_tune.report_keys import METRIC_KEYS
from deft_tune.validation import check_choice, check_scalar, check_seed

OBJECTIVES = ("deft", "beta_vae", "beta_tcvae", "annealed_vae")

# Upper bounds (docs/reliability.md, "Limits"): past them a run fails deep inside torch or the
# OS (an allocation, an overflowed size, libgomp's per-thread stacks) or never ends; no real run
# comes near them (disentanglement_lib: 10 latents, 32 channels, 300k steps).
MAX_STEPS = 10**9  # about a month at 1 ms a step, this model's fastest on any device
MAX_GROUPS = 64
MAX_LATENTS_PER_GROUP = 1024
MAX_WIDTH = 4096  # channels of the first conv layer; the widest layer has 4x as many
MAX_THREADS = 1024  # libgomp reserves each thread's stack when torch asks for them
MAX_REPLICAS = 1024  # every replica's model, optimiser and outputs live in one process
SWITCH_RULES = ("fixed", "annealed")
EARLIER_MODES = ("scale", "freeze")


@dataclass(frozen=True)
class DataConfig:
    name: str = "dsprites_full"
    # Constructor options of the data set (path, cache_dir, correlation, ...).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    groups: int = 4
    latents_per_group: int = 2
    # Base channel count of each group's conv encoder (disentanglement_lib: 32; the authors'
    # grouped encoders use 8) and of the decoder.
    encoder_width: int = 32
    decoder_width: int = 32
    loss: Literal["bernoulli", "gaussian"] = "bernoulli"

    @property
    def num_latents(self) -> int:
        return self.groups * self.latents_per_group


@dataclass(frozen=True)
class ObjectiveConfig:
    kind: Literal["deft", "beta_vae", "beta_tcvae", "annealed_vae"] = "deft"
    # beta of beta_vae and beta_tcvae (DEFT takes its betas from the schedule).
    beta: float = 4.0
    # AnnealedVAE: capacity rising linearly from 0 to capacity_max nats over capacity_steps,
    # weighted by capacity_weight (Burgess et al.'s gamma).
    capacity_max: float = 25.0
    capacity_steps: int = 30000
    capacity_weight: float = 100.0


@dataclass(frozen=True)
class StageConfig:
    # Fixed rule: the stage's beta. Annealed rule: the threshold at which the stage ends (the
    # last stage may omit it: it runs to the end, as the authors' fifth group does).
    beta: float | None = None
    # Fixed rule: stage length; None on the last stage means "until training ends".
    steps: int | None = None
    # How the groups opened before this stage are treated: "scale" trains them at lr_scale x
    # the base rate (0 stops their updates, 1 leaves them alone); "freeze" (the authors' latest
    # code) stops their gradients, detaches their outputs and passes each frozen latent through
    # a learnable per-latent projection (mean * exp(w1), log-variance + w2) trained at the base
    # rate, so the decoder can rescale a frozen latent but no new information enters it.
    earlier: Literal["scale", "freeze"] = "scale"
    lr_scale: float = 1.0


# The authors' dSprites betas [70, 30, 12, 1], fitted to the default 4,000 steps.
DEFAULT_STAGES = (
    StageConfig(beta=70.0, steps=1000),
    StageConfig(beta=30.0, steps=1000, lr_scale=0.1),
    StageConfig(beta=12.0, steps=1000, lr_scale=0.1),
    StageConfig(beta=1.0, lr_scale=0.1),
)


@dataclass(frozen=True)
class ScheduleConfig:
    rule: Literal["fixed", "annealed"] = "fixed"
    stages: tuple[StageConfig, ...] = DEFAULT_STAGES
    # Annealed rule: beta(t) = max(beta_max * exp(-gamma * t / anneal_steps), 1).
    beta_max: float = 150.0
    gamma: float = 20.0
    anneal_steps: int = 200000


@dataclass(frozen=True)
class TrainingConfig:
    steps: int = 4000
    batch_size: int = 64
    lr: float = 5e-4
    seed: int = 0
    # torch's CPU threads. Part of the run's numbers, not only of its speed: a kernel sums in
    # another order when its work is split another way, so the same config trained with 1 and
    # with 2 threads drifts apart. 1 by default so that a config means the same run on every
    # machine; a search trial records its cpus_per_trial here.
    threads: int = 1
    precision: Literal["fp32", "bf16"] = "fp32"
    device: str = "auto"
    checkpoint_interval: int = 1000
    # Copies of the model trained side by side in one process, replica r with seed `seed + r`
    # (its own initialisation, batch order and noise): the run's scores are over seeds.
    replicas: int = 1
    # Tensor layout of images and convolution weights: it changes the numbers a little, so a
    # run records the one it used; "auto" is resolved by a fixed rule per device
    # (deft_tune.training.resolve_run), never by timing.
    memory_format: Literal["auto", "contiguous", "channels_last"] = "auto"
    # How the replicas train: "threads" steps each replica's own model (on the CPU on Python
    # threads), "stacked" trains all R as one batched computation (deft_tune.training.stacked). They
    # sum in another order, so a run records the one it used; "auto" is resolved per device
    # from measurements (deft_tune.training.device.default_engine).
    engine: Literal["auto", "threads", "stacked"] = "auto"


@dataclass(frozen=True)
class EvaluationConfig:
    # Steps between reports (losses, KL per latent and group, information signals).
    interval: int = 250
    # Size of the fixed probe batch the information signals are measured on.
    probe_size: int = 2048
    # Metrics computed at the end of `deft-tune train` (names of deft_tune.metrics.evaluate).
    metrics: tuple[str, ...] = ("mig",)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def __post_init__(self) -> None:
        _check_run(self)

    @classmethod
    def from_dict(cls, raw: Any) -> RunConfig:
        """Build and validate from plain data (parsed YAML, a Tune config)."""
        if isinstance(raw, dict) and "schedule" not in raw:
            kind = (raw.get("objective") or {}).get("kind", "deft")
            if kind != "deft":  # baselines have no stages; the default schedule is DEFT's
                raw = {**raw, "schedule": {"stages": []}}
        return _build(cls, raw, "")

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def replace(self, **sections: Any) -> RunConfig:
        """A copy with whole sections replaced, validated again."""
        return dataclasses.replace(self, **sections)

    def stage_steps(self) -> tuple[int, ...]:
        """Steps of each stage under the fixed rule (the open last stage gets the rest)."""
        fixed = [s.steps or 0 for s in self.schedule.stages[:-1]]  # validated: all set
        last = self.schedule.stages[-1].steps
        rest = self.training.steps - sum(fixed)
        return (*fixed, last if last is not None else rest)


# --- YAML in and out ------------------------------------------------------------------------


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """The parsed YAML of ``path`` (safe_load: plain data only); ConfigError naming the file
    when it cannot be read, is not UTF-8 text or is not YAML. ``what``: "config", ..."""
    path = Path(path)
    try:
        text = _read_small_file(path, what).decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}): save the {what} as UTF-8"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: fix the syntax") from None


MAX_YAML_BYTES = 1 << 20  # a config or space is a few KiB; PyYAML parses about 1 MiB/s


def _read_small_file(path: Path, what: str) -> bytes:
    """The bytes of a regular file of at most MAX_YAML_BYTES: a FIFO or a device (/dev/zero)
    would block or fill the memory before YAML sees a byte."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {path} is not a regular file: give a YAML file")
    with path.open("rb") as handle:
        data = handle.read(MAX_YAML_BYTES + 1)  # the file may have grown since stat
    if len(data) > MAX_YAML_BYTES:
        raise ConfigError(
            f"{what} {path} is larger than {MAX_YAML_BYTES >> 20} MiB: a {what} is a few KiB "
            "of YAML; give the right file"
        )
    return data


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read and validate a run config YAML file."""
    raw = read_yaml(path, "config")
    if raw is None:
        raw = {}
    # A search space handed to train is a common slip: name it rather than its first odd key.
    if isinstance(raw, dict) and {"params", "budget"} & set(raw) and "schedule" not in raw:
        raise ConfigError(
            f"{path} is a search space (it has params/budget), not a run config: search it with "
            f"`deft-tune search --space {path}`, or export a trial's run config with "
            "`deft-tune export NAME --out best.yaml`"
        )
    try:
        return RunConfig.from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def dump_config(config: RunConfig, path: str | os.PathLike, header: str = "") -> Path:
    """Write ``config`` as YAML atomically; ``header`` lines become leading comments."""
    text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    text += yaml.safe_dump(config.to_dict(), sort_keys=False)
    return atomic_write_text(path, text)


def flatten(mapping: Mapping[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested mappings, and lists of mappings, as one level of joined keys.

    ``{"schedule": {"stages": [{"beta": 70}]}}`` -> ``{"schedule.stages.0.beta": 70}``: the
    names of a run config's MLflow params (``sep="."``) and of the search's Optuna parameters
    (``sep="/"``: ``stage1/beta``). Other values, lists of plain values included, stay as they are.
    """
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, sep, f"{name}{sep}"))
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value):
            flat.update(flatten({str(i): v for i, v in enumerate(value)}, sep, f"{name}{sep}"))
        else:
            flat[name] = value
    return flat


# --- building dataclasses from plain data, with named errors -------------------------------


def _build(cls: type, raw: Any, where: str) -> Any:
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {_show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(fields)}"
        raise ConfigError(f"unknown key {_join(where, key)!r}: {hint}")
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], raw[name], _join(where, name)) for name in raw}
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        missing = str(exc).split("argument")[-1].strip(": '")
        raise ConfigError(f"{where or 'config'} is missing {missing!r}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} == {_show(value)}, must be one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {_show(value)}")
        return tuple(_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {_show(value)}")
        return dict(value)
    return _scalar(hint, value, where)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # PyYAML reads "5e-4" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if (
        hint is Any
        or (isinstance(value, hint) and not isinstance(value, bool))
        or (hint is bool and isinstance(value, bool))
    ):
        return value
    raise ConfigError(f"{where} == {_show(value)}, must be {hint.__name__}")


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(item) for item in obj]
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    return obj


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, (dict, list)) else type(value).__name__


# --- value checks ---------------------------------------------------------------------------


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_run(config: RunConfig) -> None:
    _check_model(config.model)
    _check_objective(config.objective)
    _check_training(config.training)
    _check_evaluation(config.evaluation)
    if config.objective.kind == "deft":
        _check_schedule(config.schedule, config.model.groups, config.training.steps)
    else:
        _require(
            not config.schedule.stages,
            f"schedule.stages is set but objective.kind == {config.objective.kind!r}: "
            "stages belong to objective.kind 'deft'; remove the schedule section",
        )


def _check_model(model: ModelConfig) -> None:
    bounds = {
        "groups": MAX_GROUPS,
        "latents_per_group": MAX_LATENTS_PER_GROUP,
        "encoder_width": MAX_WIDTH,
        "decoder_width": MAX_WIDTH,
    }
    for name, most in bounds.items():
        check_scalar(getattr(model, name), f"model.{name}", int, min_val=1, max_val=most)


def _check_objective(objective: ObjectiveConfig) -> None:
    check_scalar(objective.beta, "objective.beta", min_val=0)
    check_scalar(objective.capacity_max, "objective.capacity_max", min_val=0)
    check_scalar(objective.capacity_steps, "objective.capacity_steps", int, min_val=1)
    check_scalar(objective.capacity_weight, "objective.capacity_weight", min_val=0)


def _check_training(training: TrainingConfig) -> None:
    for name in ("batch_size", "checkpoint_interval"):
        check_scalar(getattr(training, name), f"training.{name}", int, min_val=1)
    bounds = {"steps": MAX_STEPS, "threads": MAX_THREADS, "replicas": MAX_REPLICAS}
    for name, most in bounds.items():
        check_scalar(getattr(training, name), f"training.{name}", int, min_val=1, max_val=most)
    check_scalar(training.lr, "training.lr", min_val=0, include_boundaries="neither")
    check_seed(training.seed, "training.seed")
    _require(
        training.engine != "stacked" or training.memory_format != "channels_last",
        "training.engine == 'stacked' with training.memory_format == 'channels_last': the "
        "stacked engine trains in the contiguous layout; use memory_format 'contiguous' or 'auto'",
    )
    check_device(training.device, "training.device")


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(value: str, name: str) -> str:
    """A torch device name deft-tune runs on (``training.device``, ``evaluate --device``)."""
    _require(
        isinstance(value, str) and _DEVICE.fullmatch(value) is not None,
        f"{name} == {value!r}, must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'",
    )
    return value


def _check_evaluation(evaluation: EvaluationConfig) -> None:
    check_scalar(evaluation.interval, "evaluation.interval", int, min_val=1)
    check_scalar(
        evaluation.probe_size,
        "evaluation.probe_size",
        int,
        min_val=20,
        hint="the information signals bin codes into 20 bins",
    )
    for i, name in enumerate(evaluation.metrics):  # computed after training: checked before
        check_choice(name, f"evaluation.metrics[{i}]", METRIC_KEYS)


def _check_schedule(schedule: ScheduleConfig, groups: int, steps: int) -> None:
    stages = schedule.stages
    _require(
        len(stages) >= 1,
        "schedule.stages is empty: objective 'deft' needs one stage per encoder group",
    )
    _require(
        len(stages) == groups,
        f"schedule.stages has {len(stages)} stages but model.groups == {groups}: "
        "DEFT opens one group per stage, so make them equal",
    )
    for i, stage in enumerate(stages):
        _check_stage(stage, i, last=i == len(stages) - 1, rule=schedule.rule)
    _check_earlier_modes(stages)
    betas = [s.beta for s in stages if s.beta is not None]  # only an annealed last may lack one
    if schedule.rule == "fixed":
        _check_fixed_lengths(stages, steps)
        _require(
            all(a >= b for a, b in zip(betas, betas[1:])),
            f"schedule.stages betas {betas} rise under the fixed rule, must not: DEFT lowers "
            "the pressure stage by stage so that each new group takes in what the lower beta "
            "lets through; sort them from high to low",
        )
    else:
        _check_annealed(schedule, betas)


def _check_stage(stage: StageConfig, i: int, *, last: bool, rule: str) -> None:
    where = f"schedule.stages[{i}]"
    if stage.beta is None:
        _require(
            rule == "annealed" and last,
            f"{where}.beta is missing: every stage needs its beta"
            + (
                ""
                if rule == "fixed"
                else " (only the last stage under the annealed rule may omit its threshold)"
            ),
        )
    else:
        check_scalar(stage.beta, f"{where}.beta", min_val=0)
    check_scalar(
        stage.lr_scale,
        f"{where}.lr_scale",
        min_val=0,
        max_val=1,
        hint="0 stops the earlier groups' updates, 1 leaves them alone",
    )
    _require(
        stage.earlier == "scale" or stage.lr_scale == 1.0,
        f"{where}.lr_scale == {stage.lr_scale} with earlier: freeze: lr_scale applies to "
        "earlier: scale (frozen groups get no gradient); remove lr_scale",
    )


def _check_earlier_modes(stages: tuple[StageConfig, ...]) -> None:
    frozen = [i for i, s in enumerate(stages) if i > 0 and s.earlier == "freeze"]
    for i in range(frozen[0] + 1, len(stages)) if frozen else ():
        _require(
            stages[i].earlier == "freeze",
            f"schedule.stages[{i}].earlier == 'scale' after stage {frozen[0]} froze the "
            "earlier groups: their projections would be dropped; use earlier: freeze for "
            "every later stage",
        )


def _check_fixed_lengths(stages: tuple[StageConfig, ...], steps: int) -> None:
    for i, stage in enumerate(stages[:-1]):
        _require(
            stage.steps is not None,
            f"schedule.stages[{i}].steps == None, must be >= 1 "
            "(only the last stage may omit steps)",
        )
        check_scalar(
            stage.steps,
            f"schedule.stages[{i}].steps",
            int,
            min_val=1,
            hint="only the last stage may omit steps",
        )
    lengths = [s.steps for s in stages if s.steps is not None]
    total = sum(lengths)
    last_open = stages[-1].steps is None
    _require(
        total < steps if last_open else total == steps,
        f"schedule stage steps sum to {total} but training.steps == {steps}: "
        + (
            "leave room for the last stage"
            if last_open
            else "make them add up, or omit the last stage's steps"
        ),
    )


def _check_annealed(schedule: ScheduleConfig, betas: list[float]) -> None:
    check_scalar(schedule.beta_max, "schedule.beta_max", min_val=1)
    check_scalar(schedule.gamma, "schedule.gamma", min_val=0, include_boundaries="neither")
    check_scalar(schedule.anneal_steps, "schedule.anneal_steps", int, min_val=1)
    _require(
        all(a > b for a, b in zip(betas, betas[1:])),
        f"schedule.stages betas {betas} must decrease under the annealed rule "
        "(each is the threshold at which its stage ends)",
    )
