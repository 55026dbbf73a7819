"""What `deft-tune replay` was asked, checked before any work (no MLflow, no Ray).

Bad input (an unknown rule, a sweep field the stopper does not have, a value the space schema
refuses, fewer than one replay or concurrent trial, an output path that cannot be written) is one
ConfigError line here, before the bank is read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deft_tune.errors import ConfigError
from deft_tune.fileio import check_output_dir, check_output_file
from deft_tune.search.space.schema import MAX_TRIALS, IFPStopping, parse_stopping
from deft_tune.tables import check_block
from deft_tune.validation import check_choice, check_scalar, check_seed

__all__ = [
    "DOC_BLOCK",
    "RULES",
    "SWEEP_PREFIX",
    "ReplayOptions",
    "Sweep",
    "parse_rules",
    "parse_sweep",
]

# none: every trial runs to its end; ifp: the IFP stopper; asha: Ray's ASHA; ifp+asha: both,
# the stopper consulted first as Tune does.
RULES = ("none", "ifp", "asha", "ifp+asha")
SWEEP_PREFIX = "stopping.ifp."
DOC_BLOCK = "stopper-replay"  # the generated block's name in docs/search.md
# 100 replays take seconds (each replays every rule over the whole bank); 10,000 take minutes.
MAX_REPLAYS = 10_000


@dataclass(frozen=True)
class Sweep:
    """One stopping.ifp field and the values a sweep sets it to, in the order given."""

    field: str
    values: tuple[Any, ...]

    @property
    def name(self) -> str:
        return f"{SWEEP_PREFIX}{self.field}"

    @property
    def text(self) -> str:
        """As the command line writes it: ``stopping.ifp.FIELD=v1,v2``."""
        return f"{self.name}={','.join(yaml_text(v) for v in self.values)}"


@dataclass(frozen=True)
class ReplayOptions:
    experiment: str | None  # a recorded search in MLflow, or None with bank files
    rules: tuple[str, ...] = RULES
    concurrency: int | None = None  # None: the bank's budget.max_concurrent
    replays: int = 100
    seed: int = 0
    trials: int | None = None  # trials per replay (a random subset); None: all of the bank's
    tracking_uri: str | None = None
    sweep: Sweep | None = None
    out: str | None = None  # None: replay-<experiment> in the working folder
    write_doc: str | None = None
    log_mlflow: bool = True
    banks: tuple[str, ...] = ()  # curve bank files (deft-tune bank export), merged as parts

    @property
    def source(self) -> str:
        """What the replay reads, as a name: the experiment, or the first bank file's stem."""
        return self.experiment or Path(self.banks[0]).stem

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"replay-{self.source}")


def parse_rules(text: str) -> tuple[str, ...]:
    """``"none,ifp"`` -> ("none", "ifp"); each checked against :data:`RULES`, repeats dropped."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"--rules == {text!r}, must name at least one of {list(RULES)}")
    return tuple(dict.fromkeys(check_choice(name, "--rules", RULES) for name in names))


def parse_sweep(text: str) -> Sweep:
    """``stopping.ifp.FIELD=v1,v2`` -> Sweep; each value checked by the space schema, as a value
    written in a space file would be (YAML scalars: ``null``, ``true``, numbers)."""
    field, sep, values = text.partition("=")
    field = field.strip()
    fields = [f.name for f in dataclasses.fields(IFPStopping) if f.name != "enabled"]
    if not sep or not field.startswith(SWEEP_PREFIX):
        raise ConfigError(
            f"--sweep {text!r} is not '{SWEEP_PREFIX}FIELD=v1,v2,...' "
            f"(e.g. {SWEEP_PREFIX}diffusion_threshold=0.3,0.5,0.7)"
        )
    name = check_choice(field.removeprefix(SWEEP_PREFIX), "--sweep field", fields)
    parsed = tuple(_scalar(v.strip()) for v in values.split(",") if v.strip())
    if not parsed:
        raise ConfigError(f"--sweep {text!r} gives no values after '='")
    for value in parsed:
        try:
            parse_stopping({"ifp": {name: value}})
        except ConfigError as exc:
            raise ConfigError(f"--sweep: {exc}") from None
    return Sweep(name, parsed)


def yaml_text(value: Any) -> str:
    """A sweep value as a space file (and the command line) writes it: null, true, 0.5."""
    if value is None or isinstance(value, bool):
        return yaml.safe_dump(value).split("\n")[0]
    return str(value)


def _scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # the schema names it


def check_options(options: ReplayOptions) -> ReplayOptions:
    """Every option checked (ConfigError, one line); the options back as they are."""
    if (options.experiment is None) == (not options.banks):
        raise ConfigError(
            "replay needs exactly one source: a recorded search's NAME, or --bank "
            "FILE.parquet [FILE ...]"
        )
    for rule in options.rules:
        check_choice(rule, "--rules", RULES)
    if not options.rules:
        raise ConfigError(f"--rules must name at least one of {list(RULES)}")
    check_scalar(options.replays, "--replays", int, min_val=1, max_val=MAX_REPLAYS)
    check_seed(options.seed, "--seed")
    if options.concurrency is not None:
        check_scalar(options.concurrency, "--concurrency", int, min_val=1, max_val=MAX_TRIALS)
    if options.trials is not None:
        check_scalar(options.trials, "--trials", int, min_val=1)
    if options.sweep is not None and not any("ifp" in r.split("+") for r in options.rules):
        raise ConfigError(
            f"--sweep {options.sweep.name} needs a rule with the IFP stopper in --rules "
            "(ifp or ifp+asha)"
        )
    check_output_dir(options.out_dir, "--out")
    if options.write_doc is not None:
        check_output_file(options.write_doc, "--write-doc")
        check_block(options.write_doc, DOC_BLOCK, "--write-doc")  # never appended to a doc
    return options
