"""Atomic writes: temporary name in the target folder, fsync, rename.

A job killed half-way never leaves a file at the final path that looks complete. Every
temporary output is a hidden sibling named `.NAME.tmp-XXXXXX` (a file, or a folder for a model),
made only here: `atomic_open` for one file written in one go, `staged` + `commit` for outputs
filled by a long job (a conversion, a merge, a trained model).

A temporary name is announced to the current *temp ledger* before anything is created under it,
and withdrawn once it is renamed into place or removed. A detached run's worker installs a
ledger that records the names in its run.json (`engine.runs.RunTemps`), so when the worker dies
without cleaning up (kill -9, the OOM killer, `runs cancel --force`) whoever finds the run ended
removes what it left. Outside a run (the TUI's own threads, tests) there is no ledger.

Files end up with the permissions any other tool would give them (0666 minus the umask): a
temporary file is created 0600, and so does safetensors 0.8 for every weights file it saves (it
writes through a temporary file too), which on a shared box kept other users from reading a model
converted or trained for them. `follow_umask` puts that right for a finished output.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

_TEMP_NAME = re.compile(r"^\..+\.tmp-[0-9a-f]{6,}$")


class TempLedger(Protocol):
    """Somewhere to note temporary paths that must not outlive a crash of this process."""

    def add(self, path: Path) -> None: ...

    def discard(self, path: Path) -> None: ...


_ledger: TempLedger | None = None


def use_ledger(ledger: TempLedger | None) -> None:
    """Install the ledger every later temporary output of this process is announced to."""
    global _ledger
    _ledger = ledger


def temp_sibling(final: Path) -> Path:
    """A fresh hidden temporary name next to `final` (not created)."""
    return final.parent / f".{final.name}.tmp-{secrets.token_hex(4)}"


def is_temp_name(path: Path) -> bool:
    """Whether `path` is named like a temporary output of this module; nothing else is ever
    removed on the word of a run.json (which a user or a bug may have edited)."""
    return bool(_TEMP_NAME.match(Path(path).name))


def remove_path(path: Path) -> None:
    """Remove a file or folder if it is there (a symlink itself, never its target)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def _announced(final: Path, *, record: bool) -> Iterator[Path]:
    """A temporary name for `final`, on the ledger while the block runs; removed afterwards if
    it still exists (the caller renamed it into place on success)."""
    tmp = temp_sibling(final)
    ledger = _ledger if record else None
    if ledger is not None:
        ledger.add(tmp)
    try:
        yield tmp
    finally:
        if os.path.lexists(tmp):
            remove_path(tmp)
        if ledger is not None:
            ledger.discard(tmp)


@contextlib.contextmanager
def atomic_open(
    path: Path, mode: str = "w", encoding: str | None = "utf-8", *, record: bool = True
) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success it is fsynced and renamed over `path`.

    `record=False` keeps the temporary name off the ledger: only for the run's own run.json,
    which the ledger itself rewrites."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _announced(path, record=record) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


def current_umask() -> int:
    """This process's umask, read without changing it (Linux: /proc/self/status; elsewhere the
    classic set-and-restore, which is not thread-safe but only runs where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give `path` (a file, or a folder and everything in it) the permissions the umask gives a
    new file or folder; only the permission bits of files we own, links left alone."""
    path = Path(path)
    mask = current_umask()
    items = [path] if not path.is_dir() else [path, *path.rglob("*")]
    for item in items:
        if item.is_symlink():
            continue
        wanted = (0o777 if item.is_dir() else 0o666) & ~mask
        try:
            if (item.stat().st_mode & 0o7777) != wanted:
                os.chmod(item, wanted)
        except OSError:
            continue


def write_text(path: Path, text: str, *, record: bool = True) -> None:
    with atomic_open(path, "w", record=record) as handle:
        handle.write(text)


def write_json(path: Path, data: Any, *, record: bool = True) -> None:
    with atomic_open(path, "w", record=record) as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")


@contextlib.contextmanager
def staged(final: Path, *, directory: bool) -> Iterator[Path]:
    """Yield a temporary path next to `final` (an empty folder when `directory`); the caller
    fills it, then calls `commit`.

    Whatever happens (exception, cancel), the temporary path is removed on the way out unless
    it was committed; `final` is only ever touched by `commit`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _announced(final, record=True) as tmp:
        if directory:
            tmp.mkdir()
        yield tmp


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp: Path, final: Path) -> None:
    """Move the finished `tmp` to `final`, replacing whatever was there (already allowed by
    --force). A directory is swapped via a second hidden name so there is never a moment
    where `final` holds a mix of old and new files. Permissions follow the umask."""
    follow_umask(tmp)
    if tmp.is_file():
        _fsync(tmp)
        if final.is_dir():
            remove_path(final)
        os.replace(tmp, final)
        return
    for path in tmp.rglob("*"):
        if path.is_file():
            _fsync(path)
    if not final.exists():
        os.replace(tmp, final)
        return
    # The old output steps aside under a name that is NOT on the ledger: should the process die
    # between the two renames, housekeeping removes the new copy, never the user's old one.
    old = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
    os.replace(final, old)
    os.replace(tmp, final)
    remove_path(old)
