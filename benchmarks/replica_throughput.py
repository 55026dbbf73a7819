"""Replicas in one process, by both engines, against the same number of single-model runs one
after another.

For R in --replicas, one process trains a run of ``training.replicas`` R (replica r seed + r)
with each engine: ``threads`` steps the replicas side by side (on the CPU on Python threads with
one torch thread each, elsewhere in turn), ``stacked`` trains them as one vmapped computation
with every thread (deft_tune.training.stacked); the baseline trains R one-replica runs one after
another with every thread. All train the same model (the config's grouped VAE, all groups open:
DEFT's last and most expensive stage) for the same number of steps per model. Rounds alternate the
three so that load from other processes hits them alike; the table gives img/s per model
(images trained per second of wall time, divided by R), each engine's ratio to sequential,
stacked / threads (what ``training.engine: auto`` is chosen from), the FLOP utilisation of the
stacked run against the peak (as benchmarks/train_throughput.py computes it) and, on CUDA,
each engine's peak memory.

    python benchmarks/replica_throughput.py --write docs/training.md                 # CPU
    python benchmarks/replica_throughput.py --quick --write docs/training.md   # quick.yaml model
    python benchmarks/replica_throughput.py --device cuda --replicas 1 8 32 128 --peak-gflops P
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from train_throughput import cpu_ghz, flops_per_image

from deft_tune.config import RunConfig, load_config
from deft_tune.data import get_dataset
from deft_tune.tables import markdown_table, write_block
from deft_tune.threads import available_cpus
from deft_tune.training import Trainer
from deft_tune.training.memory import format_bytes

ROOT = Path(__file__).resolve().parents[1]
# The model a search_spaces/quick.yaml trial trains (widths 8, batch 32, 2 groups x 2 latents).
QUICK = {"groups": 2, "latents_per_group": 2, "encoder_width": 8, "decoder_width": 8}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "dsprites_deft.yaml")
    p.add_argument("--quick", action="store_true", help="the quick.yaml trial model, batch 32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=available_cpus(),
                   help="training.threads of every run (default: this process's CPUs)")  # fmt: skip
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--steps", type=int, default=20, help="timed steps per model and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--sequential-max", type=int, default=8,
                   help="time at most this many one-replica runs; R of them take R / this "
                        "times as long (each its own data copy on the device)")  # fmt: skip
    p.add_argument("--memory-format", default="auto", choices=["auto", "contiguous",
                                                               "channels_last"])  # fmt: skip
    p.add_argument("--flops-per-cycle", type=int, default=64)
    p.add_argument("--peak-gflops", type=float, default=None)
    p.add_argument("--write", type=Path, default=None, help="markdown file to update")
    return p.parse_args(argv)


def bench_config(args: argparse.Namespace, replicas: int, engine: str = "threads") -> RunConfig:
    """The config's model with every group open (a beta-VAE loss), ``replicas`` seeds."""
    raw = load_config(args.config).to_dict()
    if args.quick:
        raw["model"].update(QUICK)
    raw.update(objective={"kind": "beta_vae", "beta": 4.0}, schedule={"stages": []},
               evaluation={"interval": 10**6, "probe_size": 64, "metrics": []})  # fmt: skip
    raw["training"].update(
        device=args.device, replicas=replicas, memory_format=args.memory_format,
        threads=args.threads, engine=engine,
        batch_size=32 if args.quick else raw["training"]["batch_size"], steps=10**7,
    )  # fmt: skip
    return RunConfig.from_dict(raw)


def _timed(trainers: list[Trainer], steps: int) -> float:
    """Seconds to train ``steps`` more steps with each trainer in turn."""
    start = time.perf_counter()
    for trainer in trainers:
        trainer.run(until=trainer.step + steps)
    if trainers[0].device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


ENGINES = ("threads", "stacked")
SEQUENTIAL = "sequential"


def _peak_memory(device: torch.device, fn) -> int | None:
    """Peak device memory (bytes) allocated while ``fn`` runs; None off CUDA."""
    if device.type != "cuda":
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    return torch.cuda.max_memory_allocated()


def measure(args, data, replicas: int) -> tuple[dict[str, list[float]], dict[str, int | None]]:
    """img/s per model of an R-replica run by each engine and of R one-replica runs, per
    round; and the peak memory (CUDA) of each."""
    runs = {engine: [Trainer(bench_config(args, replicas, engine), data=data)]
            for engine in ENGINES}  # fmt: skip
    timed = min(replicas, args.sequential_max)
    runs[SEQUENTIAL] = [Trainer(bench_config(args, 1), data=data) for _ in range(timed)]
    device = runs[SEQUENTIAL][0].device
    # warm up each (first-step allocations, kernel choice), measuring its peak memory
    memory = {name: _peak_memory(device, lambda t=trainers: _timed(t, 2))
              for name, trainers in runs.items()}  # fmt: skip
    images = args.steps * runs[SEQUENTIAL][0].config.training.batch_size
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, trainers in runs.items():
            # every model trains `images` images; a side's wall time covers all its R models
            seconds = _timed(trainers, args.steps) * replicas / len(trainers)  # R of them
            rates[name].append(images / seconds)
    return rates, memory


def _rounds(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def row(replicas: int, rates: dict[str, list[float]], memory: dict[str, int | None],
        flops: float, peak: float) -> dict[str, str | int]:  # fmt: skip
    """One table row: rounds, medians' ratios, utilisation and (CUDA) memory."""
    median = {name: statistics.median(values) for name, values in rates.items()}
    out: dict[str, str | int] = {"replicas R": replicas}
    for name in (*ENGINES, SEQUENTIAL):
        out[f"{name}: img/s per model (rounds)"] = _rounds(rates[name])
    for name in ENGINES:
        out[f"{name} / sequential"] = f"{median[name] / median[SEQUENTIAL]:.2f}x"
    out["stacked / threads"] = f"{median['stacked'] / median['threads']:.2f}x"
    out["FLOP utilisation (stacked)"] = f"{flops * median['stacked'] * replicas / peak:.1%}"
    if memory[SEQUENTIAL] is not None:
        for name in (*ENGINES, SEQUENTIAL):
            out[f"{name}: peak memory"] = format_bytes(memory[name] or 0)
    return out


def main(argv: list[str] | None = None) -> list[dict[str, str | int]]:
    args = parse_args(argv)
    args.command = " ".join(sys.argv[1:] if argv is None else argv)
    data = get_dataset("dsprites_full")
    threads = args.threads
    rows: list[dict[str, str | int]] = []
    flops, config = None, None
    for replicas in args.replicas:
        rates, memory = measure(args, data, replicas)
        if flops is None:
            probe = Trainer(bench_config(args, 1), data=data)
            batch = torch.rand(probe.config.training.batch_size, 1, 64, 64, device=probe.device)
            flops, config = flops_per_image(probe, batch), probe.config
        rows.append(row(replicas, rates, memory, flops, _peak(args, threads)))
        print(rows[-1], flush=True)
    text = _describe(args, config, flops, threads) + "\n\n" + markdown_table(rows)
    print(text)
    if args.write:
        name = "replica-throughput-quick" if args.quick else "replica-throughput"
        write_block(args.write, f"{name}-{args.device}", text)
    return rows


def _peak(args, threads: int) -> float:
    if args.device.startswith("cuda"):
        return args.peak_gflops * 1e9 if args.peak_gflops else float("nan")
    return threads * cpu_ghz(None) * 1e9 * args.flops_per_cycle


def _describe(args, config: RunConfig | None, flops: float | None, threads: int) -> str:
    assert config is not None and flops is not None
    m, t = config.model, config.training
    device = (torch.cuda.get_device_name() if args.device.startswith("cuda")
              else f"CPU ({threads} threads: threads steps R > 1 on {threads} workers with 1 "
                   f"thread each, stacked and the sequential runs use all {threads})")  # fmt: skip
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f"Measured {stamp} by `nice -n 5 python benchmarks/replica_throughput.py "
        f"{args.command}` on {device}: model {m.groups} groups x "
        f"{m.latents_per_group} latents, encoder width {m.encoder_width}, decoder width "
        f"{m.decoder_width}, batch {t.batch_size}, {t.precision}, memory format "
        f"{t.memory_format}; {args.rounds} rounds of {args.steps} timed steps per model after "
        f"2 warm-up steps; {flops / 1e6:.1f} MFLOP per image (forward + backward); sequential "
        f"beyond R = {args.sequential_max}: {args.sequential_max} runs timed, scaled to R."
    )


if __name__ == "__main__":
    main()
