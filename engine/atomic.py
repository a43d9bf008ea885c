"""Atomic writes: temporary name in the target folder, fsync, rename.

A job killed half-way never leaves a file at the final path that looks complete. Files end up
with the permissions any other tool would give them (0666 minus the umask): `mkstemp` creates its
file 0600, and so does safetensors 0.8 for every weights file it saves (it writes through a
temporary file too), which on a shared box kept other users from reading a model converted or
trained for them. `follow_umask` puts that right for a finished output.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success it is fsynced and renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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


def write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json(path: Path, data: Any) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
