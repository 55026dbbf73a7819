"""`deft-tune replay`: read the bank, replay every rule (and sweep value), print, plot, log.

Order of work: the options are checked (no MLflow yet), then the bank is read and refused if it
cannot be replayed, then the replays run (seconds), then the outputs are written: the table on
stdout, ``anytime.png`` and ``replay.md`` in ``--out``, one MLflow run in the experiment
``<NAME>-replay`` and, with ``--write-doc``, the ``stopper-replay`` block of that document.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from deft_tune.fileio import atomic_write_text
from deft_tune.search.replay.bank import CurveBank, load_bank
from deft_tune.search.replay.options import DOC_BLOCK, ReplayOptions, check_options
from deft_tune.search.replay.render import FIGURES, markdown, text
from deft_tune.search.replay.rules import make_judge, with_ifp_field
from deft_tune.search.replay.simulate import replay_many, replay_orders
from deft_tune.search.replay.summary import ReplayResult, SweepPoint, rule_summary, spread
from deft_tune.search.space import SearchSpace
from deft_tune.search.stopping import logger as _stopping_log
from deft_tune.search.tracking.layout import default_tracking_uri

__all__ = ["DOC_BLOCK", "command_line", "replay_bank", "run_replay"]

TABLE = "replay.md"


def command_line(options: ReplayOptions, concurrency: int) -> str:
    """The command that reproduces these replays (the bank aside)."""
    source = ["--bank", *options.banks] if options.banks else [str(options.experiment)]
    parts = [
        "deft-tune replay",
        *source,
        "--rules",
        ",".join(options.rules),
        "--concurrency",
        str(concurrency),
        "--replays",
        str(options.replays),
        "--seed",
        str(options.seed),
    ]
    if options.trials is not None:
        parts += ["--trials", str(options.trials)]
    if options.sweep is not None:
        parts += ["--sweep", options.sweep.text]
    return " ".join(parts)


def _rules(
    bank: CurveBank, space: SearchSpace, rules: tuple[str, ...], orders: list, n: int
) -> dict:
    def judges(rule: str) -> Callable:
        return lambda: make_judge(space, rule)

    return {rule: replay_many(bank, judges(rule), orders, n, rule) for rule in rules}


@contextmanager
def _quiet_stopper() -> Iterator[None]:
    """A replay stops trials thousands of times: the stopper's line per stop stays unsaid."""
    level = _stopping_log.level
    _stopping_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        _stopping_log.setLevel(level)


def replay_bank(bank: CurveBank, options: ReplayOptions) -> ReplayResult:
    """Every rule of ``options`` (and every sweep value) replayed on ``bank``; pure compute."""
    with _quiet_stopper():
        return _replay_bank(bank, options)


def _replay_bank(bank: CurveBank, options: ReplayOptions) -> ReplayResult:
    concurrency = options.concurrency or bank.space.budget.max_concurrent
    orders = replay_orders(len(bank.trials), options.replays, options.seed, options.trials)
    runs = _rules(bank, bank.space, options.rules, orders, concurrency)
    sweep: list[SweepPoint] = []
    if options.sweep is not None:
        swept = tuple(r for r in options.rules if "ifp" in r.split("+"))
        for value in options.sweep.values:
            space = with_ifp_field(bank.raw_space, options.sweep.field, value, bank.budget)
            for rule, found in _rules(bank, space, swept, orders, concurrency).items():
                sweep.append(SweepPoint(value, rule_summary(rule, found, options.seed)))
    return ReplayResult(
        bank=bank,
        command=command_line(options, concurrency),
        concurrency=concurrency,
        orders=tuple(tuple(order) for order in orders),
        runs=runs,
        summaries=tuple(rule_summary(rule, runs[rule], options.seed) for rule in options.rules),
        spread=spread(bank),
        sweep_field=options.sweep.name if options.sweep else None,
        sweep=tuple(sweep),
    )


def run_replay(options: ReplayOptions, out: Callable[[str], None] = print) -> ReplayResult:
    """The whole command: check, read, replay, then print and write every output."""
    check_options(options)
    uri = options.tracking_uri or default_tracking_uri()
    if options.banks:
        from deft_tune.search.replay.bankfile import read_banks

        bank = read_banks(options.banks)
    else:
        bank = load_bank(uri, str(options.experiment))
    result = replay_bank(bank, options)
    out(text(result))
    written = _write_outputs(result, options)
    if options.log_mlflow:
        run_id = _log(result, options, uri, written)
        out(f"logged run {run_id} in experiment {result.bank.experiment}-replay ({uri})")
    if options.write_doc:
        doc = Path(options.write_doc)
        folder = os.path.relpath(options.out_dir.resolve(), doc.resolve().parent)
        from deft_tune.tables import write_block

        written_doc = write_block(doc, DOC_BLOCK, markdown(result, folder), strict=True)
        out(f"wrote {written_doc} ({DOC_BLOCK} block)")
    for path in written:
        out(f"wrote {path}")
    return result


def _write_outputs(result: ReplayResult, options: ReplayOptions) -> list[Path]:
    from deft_tune.plots import save_figure
    from deft_tune.search.replay.figure import anytime_figure, sweep_figure

    folder = options.out_dir.resolve()
    written = [save_figure(anytime_figure(result), folder / FIGURES[0])]
    if result.sweep:
        written.append(save_figure(sweep_figure(result), folder / FIGURES[1]))
    written.append(atomic_write_text(folder / TABLE, markdown(result) + "\n"))
    return written


def _log(result: ReplayResult, options: ReplayOptions, uri: str, files: list[Path]) -> str:
    from deft_tune.search.tracking.layout import (
        BANK_TAG,
        ROLE_REPLAY,
        ROLE_TAG,
        replay_experiment,
    )
    from deft_tune.search.tracking.writer import log_finished_run

    params = {
        "experiment": result.bank.experiment,
        "banks": ",".join(options.banks),
        "bank_parent_run": result.bank.parent_run_id,
        "rules": ",".join(options.rules),
        "concurrency": result.concurrency,
        "replays": options.replays,
        "seed": options.seed,
        "trials": options.trials or len(result.bank.trials),
        "sweep": options.sweep.text if options.sweep else "",
        "command": result.command,
    }
    return log_finished_run(
        uri,
        replay_experiment(result.bank.experiment),
        tags={ROLE_TAG: ROLE_REPLAY, BANK_TAG: result.bank.parent_run_id},
        params=params,
        metrics=summary_metrics(result),
        files=files,
        run_name=f"replay-{result.bank.experiment}",
    )


def summary_metrics(result: ReplayResult) -> dict[str, float]:
    """The summary as MLflow metrics: ``<rule>/<quantity>_<statistic>`` (``+`` becomes ``_``:
    MLflow refuses it in names), the bank's spread, the sweep's savings and regret."""
    metrics: dict[str, float] = {}

    def put(prefix: str, summary) -> None:
        for name in ("trial_steps", "savings", "wall_s", "best", "regret"):
            stat = getattr(summary, name)
            if stat is not None:
                metrics[f"{prefix}/{name}_median"] = stat.median
                metrics[f"{prefix}/{name}_iqm"] = stat.iqm
        metrics[f"{prefix}/stopped_median"] = summary.stopped

    for summary in result.summaries:
        put(summary.rule.replace("+", "_"), summary)
    for point in result.sweep:
        put(f"sweep/{point.value}/{point.summary.rule.replace('+', '_')}", point.summary)
    if result.spread is not None:
        for name in ("between", "within", "noise_of_mean", "f_ratio"):
            metrics[f"bank/{name}"] = float(getattr(result.spread, name))
    return {k: v for k, v in metrics.items() if math.isfinite(v)}
