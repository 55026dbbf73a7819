"""The reproduction of the DEFT paper's claims: runs through the CLI, report from MLflow.

One module per experiment (``e1_methods`` ... ``e5_stopper``) owns everything about it: the
names of the MLflow experiments it writes, its run steps (``run(ctx)``), reading them back
(``collect``), its claims (the verdict functions) and its report section and figure
(``render(store, docs, written)``); ``KEY`` is its ``--only`` choice and ``NAME`` its name in
the report. Shared: ``pipeline`` (budgets, search spaces, CLI steps, searches, retrains),
``tracking`` (the MLflow store, written and read; the only importer of deft-tune's tracking
code), ``markdown`` (formatting, tables, figures), ``report`` (header, summary, assembly) and
``driver`` (the command line). Run it with ``python benchmarks/reproduce/run.py`` or
``python -m benchmarks.reproduce``.
"""
