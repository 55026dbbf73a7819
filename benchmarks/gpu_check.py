"""The GPU check (issue #29): every GPU path of deft-tune in one run, written to one report.

    python benchmarks/gpu_check.py --out gpu-check              # a CUDA machine: <= 8 minutes
    python benchmarks/gpu_check.py --dry-run --out /tmp/check   # the same steps, CPU, toy size

Steps, each timed; a step that fails records its error's last line and the others still run:

1. environment: the installed versions of the packages it uses, the device, CUDA and cuDNN;
2. the CUDA-marked tests (``pytest -m cuda tests/training/test_cuda.py``; they skip without CUDA);
3. the example config (configs/dsprites_deft.yaml, its stages scaled to 500 steps) in fp32 and
   in bf16 autocast: img/s and peak device memory;
4. replica throughput at R = 1, 8, 32, 128 with both engines: img/s per model, peak memory and
   the ratio to R one-replica runs one after another (benchmarks/replica_throughput.py);
5. a 4-trial search with ``--gpus-per-trial 0.25`` on a private local Ray: how many trials ran
   on the GPU at once (nvidia-smi's compute processes, sampled every second);
6. export -> retrain: the best trial's exported config trained twice in the default mode and
   twice with ``torch.use_deterministic_algorithms(True)`` and ``cudnn.deterministic``: how far
   each pair ends apart (final loss, largest weight difference) and what the deterministic
   mode costs in img/s.

It needs no network: dSprites is rendered locally, tracking is a sqlite file under --out, Ray
runs on this machine. It writes ``report.json`` and ``report.md`` under --out and exits 1 if a
step failed. ``--dry-run`` shrinks every step to toy size on the CPU (R = 1, 2; toy model, steps
and data) so that the suite runs it (tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# cuBLAS is deterministic only with a fixed workspace, read when its handle is created: before
# any CUDA work (it changes no result, and the deterministic step needs it).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402
import yaml  # noqa: E402

from deft_tune.config import RunConfig, load_config  # noqa: E402
from deft_tune.data.base import GroundTruthData  # noqa: E402
from deft_tune.data.dsprites import DSprites  # noqa: E402
from deft_tune.tables import markdown_table  # noqa: E402
from deft_tune.training import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "numpy", "ray", "optuna", "mlflow", "pyarrow", "scipy", "scikit-learn",
            "PyYAML", "deft-tune")  # fmt: skip
TOY_SIZES = (3, 2, 3, 4, 4)  # a dSprites grid of 288 images: rendered in milliseconds


class ToyDSprites(DSprites):
    factor_sizes = TOY_SIZES


@dataclasses.dataclass(frozen=True)
class ToyData:
    """A picklable data factory for the dry run's search trials (Ray workers build it)."""

    cache_dir: str

    def __call__(self) -> DSprites:
        return ToyDSprites(cache_dir=self.cache_dir)


@dataclasses.dataclass(frozen=True)
class Sizes:
    steps: int  # example config
    replicas: tuple[int, ...]
    replica_steps: int
    rounds: int
    trial_steps: int
    retrain_steps: int
    small_model: bool


FULL = Sizes(500, (1, 8, 32, 128), 10, 2, 200, 300, False)
DRY = Sizes(6, (1, 2), 2, 1, 8, 6, True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for report.json and .md")
    p.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, toy size")
    p.add_argument("--skip", nargs="*", default=[], help="steps to leave out (by name)")
    return p.parse_args(argv)


# --- steps ----------------------------------------------------------------------------------


def environment(ctx: Context) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "packages": versions,
        "device": torch.cuda.get_device_name()
        if cuda
        else f"CPU ({os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()})",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cpus": os.cpu_count(),
        "dry_run": ctx.dry_run,
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def cuda_tests(ctx: Context) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/training/test_cuda.py",
               "-q", "-rs", "-p", "no:cacheprovider"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    if done.returncode not in (0, 5):  # 5: nothing collected
        raise RuntimeError(f"the CUDA tests failed: {lines[-1] if lines else done.stderr[-300:]}")
    return {"summary": lines[-1] if lines else "", "returncode": done.returncode}


def example_config(ctx: Context) -> dict[str, Any]:
    rows = []
    for precision in ("fp32", "bf16"):
        config = ctx.example(precision=precision)
        trainer = Trainer(config, data=ctx.data)
        trainer.run(until=2)  # warm-up: allocations, kernel choice
        seconds, memory, last = ctx.measure(trainer.run)
        images = (config.training.steps - 2) * config.training.batch_size
        rows.append({"precision": precision, "steps": config.training.steps,
                     "img/s": round(images / seconds), "peak memory": ctx.bytes(memory),
                     "final loss": round(last["train/loss"], 3),
                     "engine": trainer.config.training.engine})  # fmt: skip
    return {"rows": rows}


def replica_throughput(ctx: Context) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import replica_throughput as bench
    from train_throughput import flops_per_image

    argv = ["--device", ctx.device.type, "--threads", str(torch.get_num_threads()),
            "--steps", str(ctx.sizes.replica_steps), "--rounds", str(ctx.sizes.rounds)]  # fmt: skip
    args = bench.parse_args(argv + (["--quick"] if ctx.sizes.small_model else []))
    probe = Trainer(bench.bench_config(args, 1), data=ctx.data)
    batch = torch.rand(probe.config.training.batch_size, 1, 64, 64, device=probe.device)
    flops = flops_per_image(probe, batch)
    rows = []
    for replicas in ctx.sizes.replicas:
        rates, memory = bench.measure(args, ctx.data, replicas)
        rows.append(bench.row(replicas, rates, memory, flops, bench._peak(args, args.threads)))
        ctx.log(f"replicas {replicas}: {rows[-1]}")
    return {"rows": rows, "flops_per_image": flops}


def search(ctx: Context) -> dict[str, Any]:
    from deft_tune.search.options import SearchOptions
    from deft_tune.search.runner import run_search

    space = ctx.out / "space.yaml"
    space.write_text(yaml.safe_dump(ctx.space()))
    gpus = 0.25 if ctx.cuda else 0.0
    options = SearchOptions(space=str(space), storage=str(ctx.out / "runs"),
                            tracking_uri=ctx.tracking_uri, gpus_per_trial=gpus)  # fmt: skip
    sampler = GpuProcesses() if ctx.cuda else None
    factory = None if ctx.cuda else ToyData(str(ctx.out / "cache"))
    try:
        outcome = run_search(options, data_factory=factory, out=ctx.log)
    finally:
        most = sampler.stop() if sampler else None
    ctx.search_name = outcome.name
    return {"gpus_per_trial": gpus, "trials": outcome.trials, "completed": outcome.completed,
            "errors": outcome.errors, "first_error": outcome.first_error,
            "best_value": outcome.best_value,
            "most GPU processes at once": most}  # fmt: skip


def export_retrain(ctx: Context) -> dict[str, Any]:
    from deft_tune.cli import main as cli

    exported = ctx.out / "best.yaml"
    argv = ["export", ctx.search_name or "gpu-check", "--tracking-uri", ctx.tracking_uri,
            "--out", str(exported)]  # fmt: skip
    if cli(argv) != 0:
        raise RuntimeError(f"deft-tune {' '.join(argv)} failed")
    config = _scale_stages(load_config(exported).to_dict(), ctx.sizes.retrain_steps)
    out = {}
    for mode in ("default", "deterministic"):
        runs = [_retrain(ctx, config, deterministic=mode == "deterministic") for _ in range(2)]
        (loss_a, weights_a, rate_a), (loss_b, weights_b, rate_b) = runs
        out[mode] = {
            "final loss": [loss_a, loss_b],
            "loss difference": abs(loss_a - loss_b),
            "largest weight difference": max(
                float((a - b).abs().max()) for a, b in zip(weights_a, weights_b)
            ),
            "img/s": round((rate_a + rate_b) / 2),
        }
    out["deterministic cost"] = out["default"]["img/s"] / max(out["deterministic"]["img/s"], 1)
    return out


def _retrain(ctx: Context, config: RunConfig, *, deterministic: bool):
    """(final train/loss, weights, img/s) of one training of ``config``."""
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False
    try:
        trainer = Trainer(config, data=ctx.data)
        seconds, _, last = ctx.measure(trainer.run)
        weights = [p.detach().cpu().clone() for p in trainer.model.parameters()]
        rate = config.training.steps * config.training.batch_size / seconds
        return float(last["train/loss"]), weights, rate
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


STEPS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "environment": environment,
    "cuda tests": cuda_tests,
    "example config": example_config,
    "replica throughput": replica_throughput,
    "search": search,
    "export -> retrain": export_retrain,
}


# --- the run's context: sizes, data, measurement --------------------------------------------


class Context:
    """What every step shares: sizes, the device, the data, the search's name."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.dry_run = args.dry_run
        self.sizes = DRY if args.dry_run else FULL
        self.cuda = torch.cuda.is_available() and not args.dry_run
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.out: Path = args.out
        self.tracking_uri = f"sqlite:///{(self.out / 'mlflow.db').resolve()}"
        self.search_name: str | None = None
        self.data: GroundTruthData
        if self.dry_run:
            self.data = ToyData(str(self.out / "cache"))()
        else:
            from deft_tune.data import get_dataset

            self.data = get_dataset("dsprites_full")  # rendered once: trials read the cache

    def log(self, line: str) -> None:
        print(f"[gpu-check] {line}", flush=True)

    def measure(self, fn: Callable[[], Any]) -> tuple[float, int | None, Any]:
        """(seconds, peak device memory in bytes or None off CUDA, fn's result)."""
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        result = fn()
        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        return seconds, torch.cuda.max_memory_allocated() if self.cuda else None, result

    def bytes(self, count: int | None) -> str:
        from deft_tune.training.memory import format_bytes

        return "n/a (CPU)" if count is None else format_bytes(count)

    def example(self, precision: str) -> RunConfig:
        """configs/dsprites_deft.yaml for sizes.steps steps, stages scaled to fit."""
        raw = load_config(ROOT / "configs" / "dsprites_deft.yaml").to_dict()
        steps = self.sizes.steps
        raw["training"].update(precision=precision, device=self.device.type,
                               threads=torch.get_num_threads(),
                               checkpoint_interval=10**6)  # fmt: skip
        raw["evaluation"].update(interval=steps, metrics=[])
        if self.sizes.small_model:
            raw["model"].update(encoder_width=4, decoder_width=4)
            raw["training"]["batch_size"] = 16
            raw["evaluation"]["probe_size"] = 64
        return _scale_stages(raw, steps)

    def space(self) -> dict[str, Any]:
        """A DEFT space of 4 trials, all at once (a quarter GPU each)."""
        small = self.sizes.small_model
        return {
            "name": "gpu-check",
            "data": {"name": "dsprites_full"},
            "objective": {"metric": "metrics/mig", "mode": "max", "metrics": ["mig"]},
            "budget": {
                "steps_per_trial": self.sizes.trial_steps,
                "num_trials": 4,
                "max_concurrent": 4,
                "eval_interval": self.sizes.trial_steps // 2,
                "seed": 0,
                "cpus_per_trial": 0.5 if small else 2,
            },
            "stopping": {"ifp": {"enabled": False}, "asha": {"enabled": False}},
            "base": {
                "model": {
                    "encoder_width": 4 if small else 8,
                    "decoder_width": 4 if small else 32,
                },
                "training": {"batch_size": 16 if small else 64, "device": self.device.type},
                "evaluation": {"probe_size": 64 if small else 512},
            },
            "params": {
                "num_stages": 2,
                "latents_per_group": 1,
                "lr": 1e-3,
                "beta_first": {"low": 4, "high": 40},
                "beta_last": 1,
                "stage_frac": 0.3,
                "lr_scale": 0.1,
            },
        }


def _scale_stages(raw: dict[str, Any], steps: int) -> RunConfig:
    """The run config ``raw`` for ``steps`` steps, its fixed stage lengths scaled alike."""
    old = raw["training"]["steps"]
    stages = [dict(s) for s in raw["schedule"]["stages"]]
    for stage in stages[:-1]:
        stage["steps"] = max(1, stage["steps"] * steps // old)
    if stages and stages[-1].get("steps"):
        stages[-1]["steps"] = None  # the last stage runs to the end
    training = {**raw["training"], "steps": steps}
    return RunConfig.from_dict({**raw, "training": training,
                                "schedule": {**raw["schedule"], "stages": stages}})  # fmt: skip


class GpuProcesses:
    """The most compute processes nvidia-smi lists at once, sampled every second."""

    def __init__(self) -> None:
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        query = ["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"]
        while not self._stop.wait(1.0):
            try:
                done = subprocess.run(query, capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                return
            pids = {line.strip() for line in done.stdout.splitlines() if line.strip()}
            self.most = max(self.most, len(pids) - 1)  # less this process

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=15)
        return self.most


# --- the report -----------------------------------------------------------------------------


def run_steps(ctx: Context, skip: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, step in STEPS.items():
        if name in skip:
            continue
        ctx.log(f"{name} ...")
        start = time.perf_counter()
        try:
            result = {"ok": True, **step(ctx)}
        except Exception as exc:  # a failed step is a finding: record it, run the rest
            traceback.print_exc()
            line = (str(exc).strip().splitlines() or [repr(exc)])[-1]
            result = {"ok": False, "error": f"{type(exc).__name__}: {line[:300]}"}
        result["seconds"] = round(time.perf_counter() - start, 1)
        report[name] = result
        ctx.log(f"{name}: {'ok' if result['ok'] else result['error']} ({result['seconds']} s)")
    return report


def markdown(report: dict[str, Any]) -> str:
    env = report.get("environment", {})
    lines = [f"# GPU check{' (dry run: CPU, toy size)' if env.get('dry_run') else ''}", "",
             f"Device: {env.get('device')}; CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}; "
             f"Python {env.get('python')}.", "",
             "Packages: " + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items()),
             ""]  # fmt: skip
    for name, result in report.items():
        if name == "environment":
            continue
        state = "ok" if result["ok"] else f"FAILED: {result['error']}"
        lines += [f"## {name} ({state}, {result['seconds']} s)", ""]
        rows = result.get("rows")
        if rows:
            lines += [markdown_table(rows), ""]
        rest = {k: v for k, v in result.items() if k not in ("rows", "ok", "seconds", "error")}
        lines += [f"- {k}: {v}" for k, v in rest.items()] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        torch.set_num_threads(1)
    ctx = Context(args)
    started = time.perf_counter()
    report = run_steps(ctx, args.skip)
    report["total seconds"] = {"ok": True, "seconds": round(time.perf_counter() - started, 1)}
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (args.out / "report.md").write_text(markdown(report))
    ctx.log(f"report: {args.out / 'report.md'}")
    return 0 if all(r["ok"] for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
