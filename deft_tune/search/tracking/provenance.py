"""Where a record came from: the package's commit, the package versions and the machine.

A search's parent run records these (next to its space and seeds), and every file of evidence
(curve banks, campaign units) carries them, so that a number read back later names the code and
hardware that produced it. Nothing here imports Ray, Optuna or MLflow.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["commit", "machine", "package_versions"]

PACKAGES = ("deft-tune", "torch", "ray", "optuna", "mlflow", "numpy")
_SOURCE = Path(__file__).resolve().parents[3]  # the checkout that holds deft_tune/


def package_versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "missing"
    return found


def commit() -> str:
    """The checkout's commit (``<sha>-dirty`` with uncommitted changes to tracked files), or
    "unknown" when the package is not run from a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(_SOURCE), "describe", "--always", "--dirty", "--abbrev=40"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        if found:
            return found.group(1).strip()
    return platform.processor() or "unknown CPU"


def machine() -> dict[str, str | int]:
    """CPU model, logical CPUs, the CPUs this process may use, and the OS."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count() or 0,
        "usable_cpus": usable or 0,
        "system": f"{platform.system()} {platform.machine()}",
    }
