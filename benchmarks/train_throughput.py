"""Training throughput: deft-tune's loop against a plain PyTorch DataLoader loop.

Both loops train the same model (the config's grouped VAE with every group open, i.e. DEFT's
last and most expensive stage) with the same loss and Adam, on dSprites, side by side in one
process; rounds alternate so that load from other processes hits both alike.

- plain (tensor): ``DataLoader(TensorDataset(decoded float images), shuffle=True)`` over a
  random subset of dSprites decoded up front (the whole set would be 12 GB as float32),
  ``loss.item()`` each step, the usual way a training loop is written. Its best case.
- plain (rows): the same loop over a map-style ``Dataset`` that decodes one stored row per
  ``__getitem__`` (``data.images([i])``): what a plain loop does over the full set.
- deft-tune: :class:`deft_tune.training.Trainer` (bit-packed rows on the device, seeded index
  gather, on-device decode, losses accumulated on the device), read from its own
  ``train/images_per_sec`` (evaluation time excluded).
- deft-tune, channels_last: the same with ``training.memory_format: channels_last`` (images
  and convolution weights in NHWC); every other loop runs contiguous.

Every loop runs with ``--threads`` torch threads (the trainers apply ``training.threads``).

FLOP utilisation = model FLOPs per image (forward + backward, counted by
``torch.utils.flop_counter.FlopCounterMode``) x images per second / peak. CPU peak = threads x
GHz x FLOPs per cycle per core (64 for fp32 with two AVX-512 FMA units: 2 units x 16 lanes x 2);
the GHz comes from /proc/cpuinfo (or --ghz). On CUDA pass --peak-gflops for the utilisation.

    python benchmarks/train_throughput.py                       # CPU, batch 64
    python benchmarks/train_throughput.py --device cuda --batch-size 256 --peak-gflops 989000
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from deft_tune.config import ObjectiveConfig, load_config
from deft_tune.data import run_dataset
from deft_tune.data.base import GridData
from deft_tune.model import kl_per_latent, objective_loss, reconstruction_loss
from deft_tune.threads import available_cpus
from deft_tune.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- throughput:begin -->", "<!-- throughput:end -->"


# The deft-tune loop with training.memory_format channels_last (the others run contiguous).
CHANNELS_LAST = "deft-tune, channels_last"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "dsprites_deft.yaml")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=30, help="timed steps per round and loop")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPUs)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--subset", type=int, default=16384, help="images decoded for DataLoader")
    p.add_argument("--ghz", type=float, default=None)
    p.add_argument("--flops-per-cycle", type=int, default=64)
    p.add_argument("--peak-gflops", type=float, default=None)
    p.add_argument("--write", type=Path, default=None, help="markdown file to update")
    return p.parse_args()


def bench_config(args: argparse.Namespace, memory_format: str = "contiguous"):
    config = load_config(args.config)
    training = {
        **config.training.__dict__,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "device": args.device,
        "memory_format": memory_format,
        "threads": args.threads or available_cpus(),  # a trainer applies it (process-wide)
        "steps": args.rounds * (args.warmup + args.steps) + 1,
    }
    raw = config.to_dict()
    raw.update(
        objective={"kind": "beta_vae", "beta": 4.0},
        schedule={"stages": []},
        training=training,
        evaluation={"interval": 10**6, "probe_size": 64, "metrics": []},
    )
    return type(config).from_dict(raw)


class RowDataset(Dataset):
    """One decoded observation per index, from the data set's stored rows."""

    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return self.data.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor]:
        return (torch.from_numpy(self.data.images(np.array([index]))[0]),)


def plain_loop(trainer: Trainer, dataset: Dataset, args, generator) -> float:
    """Images per second of the DataLoader loop over the timed steps."""
    model, config = trainer.model, trainer.config
    optimizer = torch.optim.Adam(model.parameters(), lr=config.training.lr)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, generator=generator
    )
    autocast = (
        torch.autocast(trainer.device.type, dtype=torch.bfloat16)
        if args.precision == "bf16"
        else contextlib.nullcontext()
    )
    objective = ObjectiveConfig(kind="beta_vae", beta=4.0)
    if len(loader) < args.warmup + args.steps:
        raise SystemExit(
            f"{len(loader)} batches of --batch-size, fewer than --warmup + --steps: raise --subset"
        )
    running, start = 0.0, None
    for step, (x,) in enumerate(loader):
        if step == args.warmup:
            _sync(trainer.device)
            start = time.perf_counter()
        if step == args.warmup + args.steps:
            break
        x = x.to(trainer.device)
        with autocast:
            output, mean, logvar, z = model(x)
        mean, logvar, z = mean.float(), logvar.float(), z.float()
        recon = reconstruction_loss(output, x, config.model.loss)
        loss = objective_loss(
            objective, recon, kl_per_latent(mean, logvar), z, mean, logvar, beta=4.0, step=step
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running += loss.item()
    _sync(trainer.device)
    assert start is not None  # the loader holds more than warmup + steps batches (checked)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def our_loop(trainer: Trainer, args) -> float:
    trainer.run(until=trainer.step + args.warmup)
    return trainer.run(until=trainer.step + args.steps)["train/images_per_sec"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def flops_per_image(trainer: Trainer, batch: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        output, mean, logvar, _ = trainer.model(batch)
        loss = reconstruction_loss(output, batch, "bernoulli").mean() + mean.sum() + logvar.sum()
        loss.backward()
    trainer.model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(batch)


def cpu_ghz(override: float | None) -> float:
    if override:
        return override
    text = Path("/proc/cpuinfo").read_text()
    mhz = [float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", text)]
    return max(mhz) / 1000 if mhz else float("nan")


def main() -> None:
    args = parse_args()
    config = bench_config(args)
    data = run_dataset(config.data.name, config.data.options)
    if not isinstance(data, GridData):  # the DataLoader arms index a stored grid
        raise SystemExit(f"data set {config.data.name!r} is not a stored grid; use dsprites_full")
    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(data.num_samples, args.subset, replace=False))
    images = torch.from_numpy(data.images(subset))
    plain_trainer = Trainer(config, data=data, hooks=())
    rows_trainer = Trainer(config, data=data, hooks=())
    ours = Trainer(config, data=data, hooks=())
    ours_nhwc = Trainer(bench_config(args, "channels_last"), data=data, hooks=())
    tensors, rows = TensorDataset(images), RowDataset(data)
    generator = torch.Generator().manual_seed(0)
    rates: dict[str, list[float]] = {
        "plain (tensor)": [], "plain (rows)": [], "deft-tune": [], CHANNELS_LAST: []
    }  # fmt: skip
    for _ in range(args.rounds):  # alternate so that machine load hits every loop alike
        rates["plain (tensor)"].append(plain_loop(plain_trainer, tensors, args, generator))
        rates["plain (rows)"].append(plain_loop(rows_trainer, rows, args, generator))
        rates["deft-tune"].append(our_loop(ours, args))
        rates[CHANNELS_LAST].append(our_loop(ours_nhwc, args))
    flops = flops_per_image(ours, images[: args.batch_size].to(ours.device))
    report(args, config, rates, flops)


def report(args, config, rates: dict[str, list[float]], flops: float) -> None:
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = args.peak_gflops * 1e9 if args.peak_gflops else float("nan")
        peak_how = f"{args.peak_gflops:g} GFLOP/s given" if args.peak_gflops else "no peak given"
    else:
        name = f"CPU, {threads} torch threads"
        ghz = cpu_ghz(args.ghz)
        peak = threads * ghz * 1e9 * args.flops_per_cycle
        peak_how = f"{threads} cores x {ghz:.2f} GHz x {args.flops_per_cycle} FLOP/cycle"
    medians = {loop: statistics.median(values) for loop, values in rates.items()}
    mine = medians["deft-tune"]
    m = config.model
    lines = [
        f"- device: {name}; batch {args.batch_size}; {args.precision}; model: {m.groups} groups "
        f"x {m.latents_per_group} latents, encoder width {m.encoder_width}, decoder width "
        f"{m.decoder_width} (all groups open); {args.rounds} rounds of {args.steps} timed "
        f"steps after {args.warmup} warm-up steps",
        f"- model FLOPs per image (forward + backward): {flops / 1e6:.1f} MFLOP; peak "
        f"{peak / 1e9:.0f} GFLOP/s ({peak_how})",
        "",
        "| loop | img/s per round | median img/s | deft-tune / this | this / plain (rows) "
        "| FLOP utilisation |",
        "|---|---|---|---|---|---|",
    ]
    for loop, values in rates.items():
        lines.append(
            f"| {loop} | {', '.join(f'{v:.0f}' for v in values)} | {medians[loop]:.0f} | "
            f"{mine / medians[loop]:.2f}x | {medians[loop] / medians['plain (rows)']:.2f}x | "
            f"{flops * medians[loop] / peak:.1%} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.write:
        update_markdown(args.write, text, f"{name}, batch {args.batch_size}, {args.precision}")


def update_markdown(path: Path, text: str, title: str) -> None:
    """Append the result under a heading inside the throughput block of ``path``."""
    doc = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in doc:
        doc += f"\n{BEGIN}\n{END}\n"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    entry = f"#### {title} ({stamp})\n\n{text}\n\n"
    doc = doc.replace(END, entry + END)
    path.write_text(doc)


if __name__ == "__main__":
    main()
