import subprocess
import sys

from deft_tune.cli import main


def test_unknown_command_is_one_line_and_exit_2(capsys):
    try:
        code = main(["no-such-command"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice" in err


def test_console_script_runs_as_a_module():
    out = subprocess.run(
        [sys.executable, "-m", "deft_tune", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("deft-tune ")


# Heavy imports that --help and --version must not pay for (seconds on a cold machine).
_HEAVY = ("torch", "sklearn", "scipy", "ray", "optuna", "mlflow", "matplotlib", "pyarrow")


def test_help_and_version_import_no_torch_or_scikit_learn():
    # A fresh interpreter, as a user's shell gives: every command's --help, and --version.
    commands = ["train", "evaluate", "data", "ifp", "search", "inspect", "export", "launch"]
    script = (
        "import contextlib, io, json, sys\n"
        "from deft_tune.cli import main\n"
        f"for argv in [['--help'], ['--version']] + [[c, '--help'] for c in {commands!r}]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as exc:\n"
        "            assert exc.code == 0, (argv, exc.code)\n"
        f"print(json.dumps(sorted(m for m in {list(_HEAVY)!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def _usage(capsys, *command: str) -> str:
    """The --help text of a command, as a user reads it."""
    try:
        main([*command, "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    return capsys.readouterr().out


def test_a_search_is_called_name_in_every_usage_and_document(capsys):
    import re

    from tests import REPO

    # A positional search: NAME, as `deft-tune search --name NAME` and `launch --name NAME` set it.
    for command, shown in (
        (("inspect",), "[NAME]"),
        (("export",), " NAME\n"),
        (("replay",), "[NAME]"),
        (("bank", "export"), "NAME [NAME ...]"),
        (("search",), "--name NAME"),
        (("launch",), "--name NAME"),
    ):
        usage = _usage(capsys, *command).split("\n\n")[0] + "\n"
        assert shown in usage, (command, usage)
        assert not re.search(r"\bEXPERIMENT\b|\[name\]| name\n", usage), (command, usage)
    assert "a search's NAME" in _usage(capsys, "importance")
    docs = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").rglob("*.md"))]
    for doc in docs:
        assert not re.search(r"deft-tune [a-z ]+ .*\bEXPERIMENT\b", doc.read_text()), doc


def test_the_default_tracking_store_is_described_one_way_in_every_help_and_document(capsys):
    import argparse

    from deft_tune.cli import build_parser
    from deft_tune.cli.inspect import DEFAULT_STORE
    from deft_tune.search.tracking import layout
    from tests import REPO

    assert DEFAULT_STORE == layout.DEFAULT_STORE == "sqlite:///<this folder>/mlflow.db"
    assert layout.default_tracking_uri(REPO) == DEFAULT_STORE.replace("<this folder>", str(REPO))

    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    helps = {
        parser.prog: action.help
        for parser in parsers(build_parser())
        for action in parser._actions
        if "--tracking-uri" in action.option_strings
    }
    assert len(helps) == 7, (
        helps
    )  # search, inspect, export, replay, bank export, importance, launch
    for prog, text in helps.items():
        assert f"(default: {DEFAULT_STORE}" in str(text), (prog, text)
    for doc in ("README.md", "docs/search.md"):
        assert DEFAULT_STORE in (REPO / doc).read_text(), doc
