"""`deft-tune export`: the chosen trial's run config (and optionally a narrowed space).

The config is the trial's own (seed, threads, device and precision included), so
`deft-tune train --config` on it trains the trial again to the same numbers on the same kind of
machine; the header says where that cannot hold.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import yaml

from deft_tune import __version__
from deft_tune.cli import RenamedOption
from deft_tune.cli.inspect import add_tracking_uri, objective_metric, tracking_uri
from deft_tune.config import RunConfig, dump_config
from deft_tune.errors import ConfigError
from deft_tune.fileio import atomic_write_text, check_output_file
from deft_tune.results import report
from deft_tune.results.refine import refine_space

SPAN = 5  # --space-out narrows around this many best trials unless --span says otherwise


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write the best trial's run config (train it with deft-tune train)"
    )
    parser.add_argument(
        "name", metavar="NAME", help="the search's name, as `deft-tune inspect` lists it"
    )
    add_tracking_uri(parser)
    parser.add_argument("--metric", help="rank by this metric (default: the search objective)")
    parser.add_argument(
        "--rank", type=int, default=1, metavar="K", help="export the K-th best trial (default 1)"
    )
    parser.add_argument(
        "--seeds-robust",
        action="store_true",
        help="rank schedules by mean - std over the seeds they ran with",
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="the run config YAML to write")
    parser.add_argument(
        "--space-out",
        type=Path,
        metavar="FILE",
        help="also write a search space narrowed around the best trials (--span of them)",
    )
    parser.add_argument(
        "--span",
        type=int,
        metavar="K",
        help=f"--space-out narrows around the K best trials (default {SPAN})",
    )
    # Its name until 0.1 (it read as inspect's --top, which shows the K best trials).
    parser.add_argument("--top", type=int, dest="span", action=RenamedOption, new="--span")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing --out or --space-out file"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deft_tune.search.tracking import reader as experiments

    if args.out is None and args.space_out is None:
        raise ConfigError("give --out FILE (the best run config) and/or --space-out FILE")
    for flag, path in (("--out", args.out), ("--space-out", args.space_out)):
        if path is not None:
            check_output_file(path, flag, replace=args.force)
    if args.span is not None and args.space_out is None:
        raise ConfigError(
            "--span K sets how many best trials --space-out FILE narrows around: "
            "add --space-out FILE, or drop --span"
        )
    span = SPAN if args.span is None else args.span
    if span < 1:
        raise ConfigError(f"--span == {span}, must be >= 1 (the best trials to narrow around)")
    uri = tracking_uri(args)
    search = experiments.load_search(uri, args.name)
    metric = objective_metric(search, args.metric)
    if args.out is not None:
        trial, why = report.choose_trial(
            search.trials, metric, search.mode, args.rank, args.seeds_robust
        )
        config = RunConfig.from_dict(yaml.safe_load(experiments.run_config_text(uri, trial.run_id)))
        config, notes = _recorded_threads(config, trial, search)
        paths = carried_paths(config)
        notes += [paths] if paths else []
        header = provenance(search, trial, metric, why, uri, config, notes)
        dump_config(config, args.out, header=header)
        print(
            f"wrote {args.out}: trial {trial.trial_id} ({why}); "
            f"train it with: deft-tune train --config {args.out}"
        )
        if paths:
            print(f"note: {paths}")
    if args.space_out is not None:
        top = report.ranked(search.trials, metric, search.mode)[:span]
        if not top:
            raise ConfigError(f"no finished trial logged {metric!r}: nothing to narrow around")
        if not search.space:
            raise ConfigError(f"search {search.experiment!r} logged no search_space.yaml")
        write_space(
            refine_space(search.space, top),
            args.space_out,
            f"narrowed around the top {len(top)} trials of {search.experiment} by {metric}",
        )
        print(f"wrote {args.space_out}: run it with: deft-tune search --space {args.space_out}")
    return 0


def _recorded_threads(config: RunConfig, trial, search) -> tuple[RunConfig, list[str]]:
    """A trial recorded before training.threads existed ran its whole CPUs: write that."""
    if "training.threads" in trial.params:
        return config, []
    from deft_tune.search.space import trial_threads  # pure Python: no Ray

    cpus = float((search.space.get("budget") or {}).get("cpus_per_trial", 1.0))
    threads = trial_threads(cpus)
    training = dataclasses.replace(config.training, threads=threads)
    note = (
        f"the trial's record predates training.threads: it ran {threads} torch threads "
        f"(budget.cpus_per_trial {cpus:g}), written here"
    )
    return config.replace(training=training), [note]


def reproduction_notes(trial, config: RunConfig, metric: str) -> list[str]:
    """When retraining the file gives the trial's numbers back, and when it cannot."""
    t = config.training
    lines = [
        "exact only as the trial ran: deft-tune train --config THIS_FILE repeats its numbers with",
        f"  training.threads {t.threads} (torch CPU threads; --threads N gives other numbers), "
        f"precision {t.precision},",
        f"  training.device {t.device} (auto: cuda where a GPU is visible, else cpu, as on the "
        "trial's node),",
        "  the same torch build and kind of CPU or GPU (code version above). Another thread count,",
        "  device, CPU type or torch build trains the same schedule to other numbers; a GPU run",
        "  need not repeat exactly even on the same GPU (nondeterministic kernels).",
    ]
    if trial.stop_reason != "completed":
        lines.append(
            f"this trial was stopped ({trial.stop_reason}) at step {trial.steps}: the file "
            f"trains all {t.steps} steps, so its final {metric} is not the trial's"
        )
    return lines


def provenance(
    search,
    trial,
    metric: str,
    why: str,
    uri: str,
    config: RunConfig,
    notes: Sequence[str] = (),
) -> str:
    """The comment block that says where an exported config came from."""
    values = {
        k: v for k, v in sorted(trial.metrics.items()) if k.startswith(("metrics/", "final/"))
    }
    training = config.training
    seeds = ", ".join(str(training.seed + r) for r in range(training.replicas))
    lines = [
        f"exported by deft-tune {__version__} from search {search.experiment!r}",
        f"tracking uri: {uri}",
        f"experiment id: {search.experiment_id}; parent run: {search.parent_run_id}",
        f"trial: {trial.trial_id}; run id: {trial.run_id}; status: {trial.status}; "
        f"stop reason: {trial.stop_reason}; steps run: {trial.steps}",
        f"chosen: {why}",
        f"objective {metric} = {report.objective_value(trial, metric)!r} "
        f"({report.objective_setting(trial, metric)} setting)"
        + (f"; over replicas {report.objective_spread(trial, metric)}"
           if training.replicas > 1 else ""),
        f"replicas: {training.replicas} (seeds {seeds}), each trained as the trial trained it",
        *(f"  {k} = {v:.6g}" for k, v in values.items()),
        f"code version: {search.versions or 'not recorded'}",
        *notes,
        *reproduction_notes(trial, config, metric),
        "train it with: deft-tune train --config THIS_FILE",
    ]  # fmt: skip
    return "\n".join(lines)


def carried_paths(config: RunConfig) -> str:
    """A line naming the data paths an exported config carries ("" when none): the file holds
    no code, but training from it reads and writes there."""
    from deft_tune.data.cache import PATH_OPTIONS

    found = [f"data.options.{k} = {v}" for k, v in config.data.options.items() if k in PATH_OPTIONS]
    if not found:
        return ""
    return (
        f"it carries paths that training reads and writes ({'; '.join(found)}): check them on "
        "the machine that trains it; relative ones lie in that machine's cache folder"
    )


def write_space(space: dict, path: Path, header: str) -> None:
    from deft_tune.search.space import space_from_dict

    space_from_dict(space, source=str(path))  # refuse to write a space the search would refuse
    atomic_write_text(path, f"# {header}\n" + yaml.safe_dump(space, sort_keys=False))
