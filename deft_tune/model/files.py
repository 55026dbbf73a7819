"""Building a run's model and the model file: written by `deft-tune train`, read by `deft-tune
evaluate` and anyone who wants the trained encoder.

The file is a ``torch.save`` of plain data: ``{"format": 2, "config": <run config as a dict>,
"model": <state dict>, "observation_shape": [C, H, W], "replica": r, "stage": s, "freeze":
bool}``. ``stage`` and ``freeze`` are the encoder's state as the run ended (its open groups, and
whether the earlier ones ran frozen behind their projections): the model the run scored, which
:func:`load_model` restores. A file of format 1 (no ``format`` key) predates them: it loads with
every group open and none frozen, and one warning says so. It loads with ``weights_only=True``,
so opening a model file never runs code. A one-replica run writes ``model.pt``; a run of R
replicas ``model-replica{r}.pt`` for each r.

:func:`place_model` and :func:`run_autocast` put a model on a device as its run trained it
(memory format, precision): the trainer's replicas and `deft-tune evaluate` both use them, so
that evaluate encodes exactly as the run did.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from deft_tune.config import RunConfig
from deft_tune.errors import ConfigError, DataError
from deft_tune.fileio import atomic_write
from deft_tune.model.grouped import GroupedVAE

__all__ = [
    "FORMAT",
    "MODEL_FILE",
    "build_model",
    "load_model",
    "load_torch_file",
    "model_file",
    "model_files",
    "place_model",
    "run_autocast",
    "save_model",
]

log = logging.getLogger(__name__)

FORMAT = 2  # 2: the encoder's stage state is recorded; 1 (no "format" key): it is not

MODEL_FILE = "model.pt"  # a one-replica run's model; replica r of several: model-replica{r}.pt


def model_file(folder: str | os.PathLike, replica: int, replicas: int) -> Path:
    """Where `deft-tune train` writes replica ``replica`` of a run of ``replicas``."""
    name = MODEL_FILE if replicas == 1 else f"model-replica{replica}.pt"
    return Path(folder) / name


def model_files(folder: str | os.PathLike) -> list[Path]:
    """The model files of a run folder, replica 0 first (empty when there are none)."""
    folder = Path(folder)
    replicas = sorted(folder.glob("model-replica*.pt"), key=_replica_number)
    if replicas:
        return replicas
    return [folder / MODEL_FILE] if (folder / MODEL_FILE).is_file() else []


def _replica_number(path: Path) -> int:
    digits = path.stem.removeprefix("model-replica")
    return int(digits) if digits.isdigit() else 1 << 30


def build_model(
    config: RunConfig, observation_shape: Sequence[int], seed: int | None = None
) -> GroupedVAE:
    """The run's VAE, initialised from ``seed`` (default: the run's; replica r of a run uses the
    run's seed + r) without touching the caller's global RNG."""
    m = config.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.training.seed if seed is None else seed)
        return GroupedVAE(
            observation_shape, m.groups, m.latents_per_group, m.encoder_width, m.decoder_width
        )


def place_model(model: GroupedVAE, config: RunConfig, device: torch.device) -> GroupedVAE:
    """``model`` on ``device`` in the memory format its run trained in (the layout changes the
    numbers a little)."""
    model = model.to(device)
    if config.training.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def run_autocast(config: RunConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context the run's forward passes ran in (bf16 or none)."""
    if config.training.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def save_model(
    path: str | os.PathLike,
    config: RunConfig,
    model: GroupedVAE,
    observation_shape: Sequence[int],
    replica: int = 0,
) -> Path:
    """Write the model file atomically: the run's config, the weights (on the CPU), the
    observation shape, which replica of the run (seed ``training.seed + replica``) it is and
    the encoder's stage state as it is now."""
    # clone: a stacked run's weights are views of all replicas' storage, which torch.save
    # would write whole
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "model": state,
        "observation_shape": [int(n) for n in observation_shape],
        "replica": int(replica),
        "stage": int(model.encoder.stage),
        "freeze": bool(model.encoder.freeze),
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), durable=True)


def load_model(path: str | os.PathLike) -> tuple[RunConfig, GroupedVAE]:
    """The config and the model (on the CPU, eval mode, in the stage state the run ended in) of
    a model file; DataError if not one."""
    path = Path(path)
    saved = _read(path)
    try:
        config = RunConfig.from_dict(saved["config"])
    except ConfigError as exc:
        raise DataError(f"{path}: its config is invalid ({exc})") from None
    shape = saved.get("observation_shape")
    if shape is None:  # written before the shape was stored: ask the data set
        from deft_tune.data import run_dataset

        shape = run_dataset(config.data.name, config.data.options).observation_shape
    model = build_model(config, shape)  # the weights replace the initialisation
    try:
        _load_weights(model, saved["model"])
    except (RuntimeError, TypeError) as exc:
        raise DataError(
            f"{path}: the weights do not match the model in its config ({exc})"
        ) from None
    _restore_stage(model, saved, path)
    return config, model.eval()


def _restore_stage(model: GroupedVAE, saved: dict[str, Any], path: Path) -> None:
    """Open and freeze the groups as the run ended; a format-1 file keeps every group open."""
    version = saved.get("format", 1)
    if type(version) is not int or not 1 <= version <= FORMAT:
        raise DataError(
            f"{path} has model file format {version!r}, which this deft-tune does not read "
            f"(formats 1 to {FORMAT}): a newer deft-tune wrote it, or it is damaged"
        )
    if version == 1:
        log.warning(
            "%s predates the stage state in model files: it loads with every group open and "
            "none frozen, which is not the model its run scored if the run froze groups or "
            "ended before its last stage (retrain it to score that model)",
            path,
        )
        return
    stage, freeze = saved.get("stage"), saved.get("freeze")
    groups = model.encoder.groups
    if type(stage) is not int or not 0 <= stage < groups or not isinstance(freeze, bool):
        raise DataError(
            f"{path}: its stage state (stage {stage!r}, freeze {freeze!r}) does not fit its "
            f"model of {groups} groups"
        )
    model.encoder.set_stage(stage, freeze=freeze)


def _load_weights(model: GroupedVAE, state: dict[str, Any]) -> None:
    """Load ``state``; a file written before frozen groups had projections lacks them, and
    their identity initialisation is what such a model computed."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(".projections." not in key for key in missing):
        raise RuntimeError(f"missing keys {missing}, unexpected keys {unexpected}")


def load_torch_file(path: str | os.PathLike, what: str) -> Any:
    """The content of a ``torch.save`` file, loaded with ``weights_only=True``: tensors and plain
    data only, so that opening a file never runs code. DataError "<path> is not a <what> (why)"
    when it is missing, not a torch file, or refers to any Python object (a pickled class or
    function: refused, never imported)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file: it should be a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the restricted unpickler refuses
        raise DataError(f"{path} is not a {what} ({_why_not_loaded(exc)})") from None


def _why_not_loaded(exc: Exception) -> str:
    # torch's own message advises weights_only=False, the very thing not to do: not shown.
    code = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if code:
        return f"it refers to Python code, {code.group(1)}, which is never loaded"
    if isinstance(exc, EOFError) or not str(exc).strip():
        return "it is empty or cut short"
    if "zip archive" in str(exc):
        return "a truncated or damaged torch file"
    return "not a torch file of tensors and plain data"


def _read(path: Path) -> dict[str, Any]:
    saved = load_torch_file(path, "deft-tune model file")
    if not isinstance(saved, dict) or not {"config", "model"} <= saved.keys():
        raise DataError(f"{path} is not a deft-tune model file (no config and weights in it)")
    return saved
