"""How much memory a training run needs, estimated from its shapes before anything is allocated.

A run config can ask for sizes no machine has (``training.batch_size: 1e9``, ``encoder_width:
1e5``); allocating them fails deep inside torch, or the operating system kills the process. So
the trainer (and the annealing test) first adds up, in float32 bytes:

- model: every parameter four times (the weights, their gradients and Adam's two moments),
  counted exactly on a model built on the ``meta`` device, which allocates nothing;
- batch: a batch's input images, and every layer's output twice (kept for the backward pass,
  and its gradient), per sample. The outputs of a forward pass are counted with forward hooks on
  a tiny real encoder and decoder (widths 1 and 2): they grow linearly with the width, so the
  count at the run's widths follows exactly, at any width, without building the networks;
- probe: the probe batch of observations, which stays in the host's memory.

and refuses a run whose parts on one memory (the device's, or the host's RAM) add up to more
than that memory holds in total. It is an estimate from below (the allocator's slack, the data
set, the metrics and Python itself come on top): what it refuses cannot run.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from deft_tune.config import RunConfig
from deft_tune.errors import ConfigError
from deft_tune.model.grouped import GroupedVAE
from deft_tune.model.networks import Decoder, Encoder

__all__ = ["check_run_memory", "check_training_memory", "format_bytes", "training_memory"]

FLOAT_BYTES = 4


def training_memory(
    observation_shape: Sequence[int],
    *,
    groups: int,
    latents_per_group: int,
    encoder_width: int,
    decoder_width: int,
    batch_size: int,
    probe_size: int = 0,
) -> dict[str, int]:
    """Bytes of the run's three parts: ``model``, ``batch`` and ``probe`` (see module doc)."""
    shape = tuple(int(n) for n in observation_shape)
    with torch.device("meta"):  # parameters without storage: any width costs nothing
        model = GroupedVAE(shape, groups, latents_per_group, encoder_width, decoder_width)
    parameters = sum(p.numel() for p in model.parameters())
    encoder, decoder = _widths_one_and_two(shape, latents_per_group, groups * latents_per_group)
    outputs = groups * _at(encoder, encoder_width) + _at(decoder, decoder_width)
    image = math.prod(shape)
    return {
        "model": 4 * parameters * FLOAT_BYTES,
        "batch": batch_size * (image + 2 * outputs) * FLOAT_BYTES,
        "probe": probe_size * image * FLOAT_BYTES,
    }


Line = tuple[int, int]  # a count at widths 1 and 2


def _at(line: Line, width: int) -> int:
    """The count at any width: layer outputs grow linearly with the width."""
    one, two = line
    return one + (two - one) * (width - 1)


@functools.cache
def _widths_one_and_two(shape: tuple[int, ...], per_group: int, latents: int) -> tuple[Line, Line]:
    """Layer outputs per sample of one group's encoder and of the decoder, at widths 1 and 2."""
    with torch.random.fork_rng(devices=[]):  # initialising them draws from the global RNG
        encoders = [Encoder(shape[0], per_group, w) for w in (1, 2)]
        decoders = [Decoder(latents, shape[0], w) for w in (1, 2)]
    encoder = (_outputs(encoders[0], shape), _outputs(encoders[1], shape))
    decoder = (_outputs(decoders[0], (latents,)), _outputs(decoders[1], (latents,)))
    return encoder, decoder


def _outputs(network: torch.nn.Module, sample_shape: tuple[int, ...]) -> int:
    """Elements of every layer's output for one sample of ``sample_shape`` (an image for an
    encoder, a code for a decoder), counted on a real forward pass."""
    counted = [0]

    def count(module, inputs, output) -> None:
        for tensor in output if isinstance(output, tuple) else (output,):
            counted[0] += tensor.numel() if isinstance(tensor, torch.Tensor) else 0

    hooks = [m.register_forward_hook(count) for m in network.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            network(torch.zeros((1, *sample_shape)))
    finally:
        for hook in hooks:
            hook.remove()
    return counted[0]


def check_training_memory(
    needed: Mapping[str, int], fields: Mapping[str, str], device: torch.device | str
) -> None:
    """ConfigError when the parts of ``needed`` on one memory add up to more than it holds.

    ``fields`` names what sets each part ("model" -> "model.encoder_width", ...): the message
    names the parts, both totals, and the field of the largest part as the fix. The probe lives
    in the host's RAM; the model and the batch live on ``device`` (the RAM too on a CPU).
    """
    device = torch.device(device)
    on_device = {k: v for k, v in needed.items() if k != "probe" or device.type == "cpu"}
    on_host = {k: v for k, v in needed.items() if k not in on_device}
    for parts, (where, capacity) in ((on_device, _capacity(device)), (on_host, _ram())):
        total = sum(parts.values())
        if capacity is None or total <= capacity:
            continue
        largest = max(parts, key=lambda k: parts[k])
        shown = ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if v)
        raise ConfigError(
            f"this run needs about {format_bytes(total)} of {where} ({shown}), more than the "
            f"{format_bytes(capacity)} there is: lower {fields[largest]}"
        )


def _capacity(device: torch.device) -> tuple[str, int | None]:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        return f"memory on {device} ({properties.name})", int(properties.total_memory)
    if device.type == "cpu":
        return _ram()
    return f"memory on {device}", None  # mps and others: no total to compare with


def _ram() -> tuple[str, int | None]:
    try:
        return "RAM", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): nothing to compare
        return "RAM", None


def format_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def check_run_memory(config: RunConfig, observation_shape: Sequence[int], device: Any) -> None:
    """:func:`check_training_memory` of a run config, naming its fields; each of the run's
    ``training.replicas`` replicas has its own model, batch and probe."""
    m = config.model
    replicas = config.training.replicas
    one = training_memory(
        observation_shape,
        groups=m.groups,
        latents_per_group=m.latents_per_group,
        encoder_width=m.encoder_width,
        decoder_width=m.decoder_width,
        batch_size=config.training.batch_size,
        probe_size=config.evaluation.probe_size,
    )
    needed = {part: count * replicas for part, count in one.items()}
    more = " or training.replicas" if replicas > 1 else ""
    fields = {
        "model": f"model.encoder_width / model.decoder_width{more}",
        "batch": f"training.batch_size{more}",
        "probe": f"evaluation.probe_size{more}",
    }
    check_training_memory(needed, fields, device)
