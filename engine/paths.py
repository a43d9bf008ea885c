"""Where llmdeck keeps things.

platformdirs picks the per-user folders; `LLMDECK_HOME` moves all of them under one folder
(tests and CI point it at a temporary directory). Nothing is created at import time: the
functions that write create what they need.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "llmdeck"
HOME_ENV = "LLMDECK_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    home = _home()
    if home:
        return home / "config"
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False)


def data_dir() -> Path:
    home = _home()
    if home:
        return home / "data"
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def cache_dir() -> Path:
    home = _home()
    if home:
        return home / "cache"
    from platformdirs import user_cache_path

    return user_cache_path(APP_NAME, appauthor=False)


def runs_dir() -> Path:
    return data_dir() / "runs"


def settings_file() -> Path:
    return config_dir() / "settings.toml"


def ensure_writable(path: Path) -> Path:
    """Create `path` (a folder) and prove it is writable, or raise OSError with a clear text."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(
            f"cannot write to {path} ({reason}); fix its permissions or set {HOME_ENV} to a writable folder"
        ) from None
    return path


def engine_root() -> str:
    """The folder holding the `engine` package: put first on PYTHONPATH, it makes a worker, a rank
    or a node's process import this same llmdeck code."""
    return str(Path(__file__).resolve().parent.parent)
