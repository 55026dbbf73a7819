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
