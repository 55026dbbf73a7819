"""The seal of a search folder: what `search --resume` trusts before Ray unpickles anything.

Ray restores a Tuner by unpickling files of the experiment folder (``tuner.pkl``, the
searcher's ``searcher-state-*.pkl``, trials inside ``experiment_state-*.json``, a trial's
``error.pkl``): a crafted file there would run code. So when a search ends (finished,
interrupted or failed) deft-tune seals its folder: ``deft_seal.json`` holds an HMAC-SHA256 of
every file Ray reads back (every file at the folder's top level, ``deft_search.json``
included, and every ``*.pkl`` below it), keyed with a per-user secret (``seal.key`` in the
user's deft-tune config folder, 0600, made on first use). ``--resume`` checks, before Ray
starts, that exactly the sealed files are there with their HMACs; anything else is refused.

What resume trusts: the key file (whoever can read it can forge a seal), and, for the moments
between the check and Ray's reads, that nobody else can write the folder (a local folder owned
by another user or writable by all is refused). A driver killed with SIGKILL seals nothing:
its folder cannot be resumed. Trial checkpoints are not sealed: they are read as weights
(``torch.load(weights_only=True)``) and JSON, which run no code.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

import pyarrow.fs

from deft_tune.errors import ConfigError

__all__ = ["KEY_FILE", "SEAL_FILE", "key_path", "seal", "verify"]

SEAL_FILE = "deft_seal.json"
KEY_FILE = "seal.key"


def key_path() -> Path:
    """The per-user secret (honours $XDG_CONFIG_HOME on Linux)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("deft-tune")) / KEY_FILE


def _key(create: bool) -> bytes | None:
    path = key_path()
    if not path.is_file():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:  # O_EXCL: two searches ending together agree on one key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    return path.read_bytes()


def _sealed_files(fs: pyarrow.fs.FileSystem, inner: str) -> list[str]:
    """Paths (relative to the folder) of every file Ray may read back into objects."""
    selector = pyarrow.fs.FileSelector(inner, recursive=True)
    found = []
    for info in fs.get_file_info(selector):
        if info.type != pyarrow.fs.FileType.File:
            continue
        relative = info.path[len(inner) :].lstrip("/")
        if relative == SEAL_FILE:
            continue
        if "/" not in relative or relative.endswith(".pkl"):
            found.append(relative)
    return sorted(found)


def _digest(fs: pyarrow.fs.FileSystem, path: str, key: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(1 << 20):
            mac.update(chunk)
    return mac.hexdigest()


def seal(experiment_path: str) -> None:
    """Record the HMAC of every file Ray reads back (call when the search has stopped)."""
    fs, inner = pyarrow.fs.FileSystem.from_uri(experiment_path)
    key = _key(create=True)
    assert key is not None
    digests = {name: _digest(fs, f"{inner}/{name}", key) for name in _sealed_files(fs, inner)}
    tmp = f"{inner}/.{SEAL_FILE}.{secrets.token_hex(8)}.tmp"
    try:
        with fs.open_output_stream(tmp) as stream:
            stream.write(json.dumps({"hmac_sha256": digests}, indent=1).encode())
        fs.move(tmp, f"{inner}/{SEAL_FILE}")
    except BaseException:  # a full disk: no torn seal left behind
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)
        raise


def verify(experiment_path: str) -> None:
    """ConfigError unless the folder holds exactly the files its seal names, unchanged."""
    fs, inner = pyarrow.fs.FileSystem.from_uri(experiment_path)
    refuse = f"refusing to resume from {experiment_path}"
    if isinstance(fs, pyarrow.fs.LocalFileSystem):
        _check_owner(Path(inner), refuse)
    key = _key(create=False)
    sealed = _read_seal(fs, inner) if key is not None else None
    if key is None or sealed is None:
        raise ConfigError(
            f"{refuse}: it has no seal of yours ({SEAL_FILE}, key {key_path()}), so Ray's "
            "pickles there may run anyone's code (a search killed with SIGKILL seals nothing); "
            "start the search again under another --name"
        )
    found = _sealed_files(fs, inner)
    changed = sorted(set(found) ^ set(sealed))
    changed += [n for n in found if n in sealed and _digest(fs, f"{inner}/{n}", key) != sealed[n]]
    if changed:
        raise ConfigError(
            f"{refuse}: {', '.join(changed[:3])} changed since deft-tune sealed the folder "
            "(its driver was killed, or someone else wrote there), and Ray would unpickle it; "
            "start the search again under another --name"
        )


def _read_seal(fs: pyarrow.fs.FileSystem, inner: str) -> dict[str, str] | None:
    try:
        with fs.open_input_stream(f"{inner}/{SEAL_FILE}") as stream:
            digests = json.loads(stream.read().decode())["hmac_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(digests, dict):
        return None
    return {str(name): str(value) for name, value in digests.items()}


def _check_owner(folder: Path, refuse: str) -> None:
    """Between the check and Ray's reads, nobody else may be able to swap a file."""
    for path in (folder, *(p for p in folder.rglob("*") if p.is_dir())):
        info = path.stat()
        if info.st_uid != os.geteuid() or info.st_mode & stat.S_IWOTH:
            raise ConfigError(
                f"{refuse}: {path} is owned by another user or writable by all, so its files "
                "could be swapped after they are checked; chmod o-w it (as its owner) or start "
                "the search again under another --name"
            )
