"""User settings: a TOML file validated against dataclasses.

A settings file must never stop llmdeck from starting. `load()` returns the settings plus a list
of problems in words ("monitor.interval: expected a number > 0, got 'fast'; using 1.0"); a file
that is not TOML at all is renamed aside (so the user's text is kept) and defaults are used.
The file may hold API keys, so it is written readable by its owner only.
"""

from __future__ import annotations

import os
import time
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine import paths
from engine.atomic import atomic_open


def _positive(value: float) -> bool:
    return value > 0


@dataclass
class UISettings:
    theme: str = "llmdeck-dark"
    """Name of the Textual theme; llmdeck ships llmdeck-dark, llmdeck-light, llmdeck-contrast."""
    newline_key: str = "shift+enter"
    """Key that inserts a newline in multi-line inputs (Enter sends)."""
    stream_interval_ms: float = field(default=50.0, metadata={"check": _positive, "rule": "a number > 0"})
    """How often streamed chat text is drawn."""
    stream_cpu_percent: float = field(default=4.0, metadata={"check": _positive, "rule": "a number > 0"})
    """While a model on this machine's CPU streams, the share of one core drawing may use."""


@dataclass
class MonitorSettings:
    interval: float = field(default=1.0, metadata={"check": _positive, "rule": "a number > 0"})
    """Seconds between fast GPU/host samples."""
    slow_interval: float = field(default=5.0, metadata={"check": _positive, "rule": "a number > 0"})
    """Seconds between slow samples (process list, PCIe throughput)."""
    history_minutes: float = field(default=10.0, metadata={"check": _positive, "rule": "a number > 0"})
    """How much per-metric history to keep at full resolution."""
    stall_seconds: float = field(default=120.0, metadata={"check": _positive, "rule": "a number > 0"})
    """A GPU holding memory at 0% utilisation this long while its run is running is a stall."""


@dataclass
class ChatSettings:
    model: str = ""
    """Model to preselect in Chat; empty means the bundled Gemma 3 270M GGUF when installed."""
    backend: str = "auto"
    """auto, llama.cpp, transformers or openai."""
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: str = ""
    """Used when the environment has no OPENAI_API_KEY."""
    system_prompt: str = ""


@dataclass
class Settings:
    ui: UISettings = field(default_factory=UISettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _describe(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        return "a number"
    return "a string"


def from_dict(raw: dict[str, Any]) -> tuple[Settings, list[str]]:
    """Build Settings from parsed TOML, collecting a message for every key that is wrong."""
    settings = Settings()
    problems: list[str] = []
    for name in raw:
        if name not in {f.name for f in fields(Settings)}:
            problems.append(f"{name}: unknown section, ignored")
    for section_field in fields(Settings):
        section = getattr(settings, section_field.name)
        values = raw.get(section_field.name, {})
        if not isinstance(values, dict):
            problems.append(f"{section_field.name}: expected a [{section_field.name}] table; using defaults")
            continue
        known = {f.name: f for f in fields(section)}
        for key, value in values.items():
            where = f"{section_field.name}.{key}"
            spec = known.get(key)
            if spec is None:
                problems.append(f"{where}: unknown key, ignored")
                continue
            default = spec.default if spec.default is not MISSING else getattr(section, key)
            check = spec.metadata.get("check")
            rule = spec.metadata.get("rule", _describe(default))
            if not _type_ok(default, value) or (check is not None and not check(value)):
                problems.append(f"{where}: expected {rule}, got {value!r}; using {default!r}")
                continue
            setattr(section, key, type(default)(value))
    return settings, problems


def _set_aside(path: Path, suffix: str) -> Path:
    aside = path.with_name(f"{path.name}.{suffix}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    return aside


def load(path: Path | None = None) -> tuple[Settings, list[str]]:
    """Read settings; never raises for a bad or missing file (see the module docstring)."""
    path = path or paths.settings_file()
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return Settings(), []
    except (OSError, UnicodeDecodeError) as exc:
        return Settings(), [f"{path}: cannot read settings ({exc}); using defaults"]
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        try:
            aside = _set_aside(path, "corrupt")
            kept = f"kept as {aside.name}"
        except OSError:
            kept = "left in place"
        return Settings(), [f"{path}: not valid TOML ({exc}); using defaults, the file was {kept}"]
    settings, problems = from_dict(raw)
    return settings, problems


def save(settings: Settings, path: Path | None = None) -> Path:
    """Write settings atomically, readable by the owner only (the file may hold API keys)."""
    import tomli_w  # deferred: only needed when something changes

    path = path or paths.settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        tomli_w.dump(settings.to_dict(), handle)
    return path
