"""Stopping rules judged on recorded curves: `deft-tune replay`.

A stopping rule only reads a trial's reports, so a search recorded with every stopper off (a
curve bank) can be replayed under any rule, many times, in simulated time: each replay runs the
bank's trials in a seeded random order, N at a time, each report costing the time it took when
recorded, and hands every report to the live IFP stopper and Ray's ASHA scheduler as Tune would.
What a rule saves (trial-steps) and what it loses (the regret of the trial it would have
returned) is then measured over hundreds of replays in seconds, not one live search per arm.

- :mod:`.options`: what was asked, checked before any work (no MLflow, no Ray);
- :mod:`.bank`: a recorded search read back from MLflow as report sequences with costs;
- :mod:`.rules`: a rule's stopper and scheduler, built and driven as the live search does;
- :mod:`.simulate`: one replay in simulated time;
- :mod:`.summary`: medians, IQMs and bootstrap intervals over replays; the bank's seed spread;
- :mod:`.render`, :mod:`.figure`: tables and the anytime figure;
- :mod:`.command`: the command's order of work, its MLflow run and its doc block.

Only :mod:`.options` is light; the others import Ray's scheduler (through the stopper) and
MLflow when reading a bank.
"""

from deft_tune.search.replay.options import RULES, ReplayOptions, Sweep, parse_rules, parse_sweep

__all__ = ["RULES", "ReplayOptions", "Sweep", "parse_rules", "parse_sweep"]
