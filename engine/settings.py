"""User settings: a TOML file validated against dataclasses.

A settings file must never stop llmdeck from starting. `load()` returns the settings plus a list
of problems in words ("monitor.interval: expected a number from 0.1 to 60, got 'fast'; using
1.0"); a file that cannot be read or is not TOML at all is renamed aside (so the user's text is
kept) and defaults are used. Every number has a finite range, declared once, in the field's
`metadata["range"]`. `save()` edits the file in place with tomlkit: it changes only the keys
whose value differs from what the file gives, and keeps every other key, unknown keys and
sections, rejected values and comments. The file may hold API keys, so it is written readable
by its owner only. The CLI prints the problems on stderr (`load_for_command`), the TUI shows them.
"""

from __future__ import annotations

import math
import os
import sys
import time
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine import paths
from engine.atomic import atomic_open


def _range(low: float, high: float) -> dict[str, Any]:
    """Field metadata: the value must be a finite number from `low` to `high`."""
    return {"range": (low, high)}


@dataclass
class UISettings:
    theme: str = "llmdeck-dark"
    """Name of the Textual theme; llmdeck ships llmdeck-dark, llmdeck-light, llmdeck-contrast."""
    newline_key: str = "shift+enter"
    """Key that inserts a newline in multi-line inputs (Enter sends)."""
    stream_interval_ms: float = field(default=50.0, metadata=_range(10, 1000))
    """How often streamed chat text is drawn."""
    stream_cpu_percent: float = field(default=4.0, metadata=_range(0.5, 100))
    """While a model on this machine's CPU streams, the share of one core drawing may use."""


@dataclass
class MonitorSettings:
    interval: float = field(default=1.0, metadata=_range(0.1, 60))
    """Seconds between fast GPU/host samples."""
    slow_interval: float = field(default=5.0, metadata=_range(0.5, 600))
    """Seconds between slow samples (process list, PCIe throughput)."""
    history_minutes: float = field(default=10.0, metadata=_range(1, 240))
    """How much per-metric history to keep at full resolution (memory grows with it / interval)."""
    stall_seconds: float = field(default=120.0, metadata=_range(10, 86400))
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
class ModelsSettings:
    folders: list[str] = field(default_factory=list)
    """Folders the model picker searches for models (.gguf files, HF and adapter folders), besides
    run outputs, chat history and the Hugging Face and llama.cpp caches: `folders = ["~/models"]`."""


@dataclass
class SamplerPreset:
    """A named set of sampler values for Chat, saved by the user as `[presets.NAME]`; the
    built-in ones (precise, balanced, creative) are `engine.chat.params.BUILTIN_PRESETS`."""

    temperature: float = field(default=0.7, metadata=_range(0, 5))
    top_p: float = field(default=0.95, metadata=_range(0.01, 1))
    top_k: int = field(default=40, metadata=_range(0, 100_000))
    min_p: float = field(default=0.05, metadata=_range(0, 0.99))
    repetition_penalty: float = field(default=1.0, metadata=_range(0.5, 3))


@dataclass
class Settings:
    ui: UISettings = field(default_factory=UISettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    models: ModelsSettings = field(default_factory=ModelsSettings)
    presets: dict[str, SamplerPreset] = field(default_factory=dict)
    """The user's own sampler presets, by name ([presets.NAME] tables)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_TABLES = ("presets",)
"""Settings fields that are a table of named tables, not one section of keys."""


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, type(default))


def _describe(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        return "a number"
    if isinstance(default, list):
        return "a list of strings"
    return "a string"


def _rule(spec: Any, default: Any) -> tuple[str, Any]:
    """(words for the rule, a check or None) for one settings field."""
    bounds = spec.metadata.get("range")
    if bounds is None:
        return _describe(default), None
    low, high = bounds
    return f"a number from {low:g} to {high:g}", lambda v: math.isfinite(v) and low <= v <= high


def _default(spec: Any, section: Any) -> Any:
    return spec.default if spec.default is not MISSING else getattr(section, spec.name)


def from_dict(raw: dict[str, Any]) -> tuple[Settings, list[str]]:
    """Build Settings from parsed TOML, collecting a message for every key that is wrong."""
    settings = Settings()
    problems: list[str] = []
    for name in raw:
        if name not in {f.name for f in fields(Settings)}:
            problems.append(f"{name}: unknown section, ignored")
    for section_field in fields(Settings):
        values = raw.get(section_field.name, {})
        if not isinstance(values, dict):
            problems.append(f"{section_field.name}: expected a [{section_field.name}] table; using defaults")
            continue
        if section_field.name == "presets":
            for name, preset in values.items():
                if not isinstance(preset, dict):
                    problems.append(f"presets.{name}: expected a [presets.{name}] table, ignored")
                    continue
                settings.presets[name] = SamplerPreset()
                _read_section(settings.presets[name], preset, f"presets.{name}", problems)
            continue
        _read_section(getattr(settings, section_field.name), values, section_field.name, problems)
    return settings, problems


def _read_section(section: Any, values: dict[str, Any], where: str, problems: list[str]) -> None:
    """Set the section's fields from `values`, naming every key that is wrong in `problems`."""
    known = {f.name: f for f in fields(section)}
    for key, value in values.items():
        spec = known.get(key)
        if spec is None:
            problems.append(f"{where}.{key}: unknown key, ignored")
            continue
        default = _default(spec, section)
        rule, check = _rule(spec, default)
        if not _type_ok(default, value) or (check is not None and not check(value)):
            problems.append(f"{where}.{key}: expected {rule}, got {value!r}; using {default!r}")
            continue
        setattr(section, key, type(default)(value))


def _set_aside(path: Path, suffix: str) -> Path:
    aside = path.with_name(f"{path.name}.{suffix}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    return aside


def _set_aside_words(path: Path) -> str:
    try:
        return f"the file was kept as {_set_aside(path, 'corrupt').name}"
    except OSError as exc:
        return f"the file could not be moved aside ({exc.strerror or exc}) and was left in place"


def _read_text(path: Path) -> tuple[str | None, list[str]]:
    """The file's text; None (with the problem, the file moved aside) when it is missing,
    unreadable or not UTF-8: a later save must never write defaults over the user's text."""
    try:
        return path.read_bytes().decode("utf-8"), []
    except FileNotFoundError:
        return None, []
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [f"{path}: cannot read settings ({reason}); using defaults, {_set_aside_words(path)}"]


def load(path: Path | None = None) -> tuple[Settings, list[str]]:
    """Read settings; never raises for a bad or missing file (see the module docstring)."""
    path = path or paths.settings_file()
    text, problems = _read_text(path)
    if text is None:
        return Settings(), problems
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return Settings(), [f"{path}: not valid TOML ({exc}); using defaults, {_set_aside_words(path)}"]
    return from_dict(raw)


_reported: set[str] = set()


def load_for_command(path: Path | None = None) -> Settings:
    """`load()` for a CLI command: each problem is printed once per process as one line on
    stderr (a command may load the settings more than once)."""
    settings, problems = load(path)
    for problem in problems:
        if problem not in _reported:
            _reported.add(problem)
            print(f"llmdeck: settings: {problem}", file=sys.stderr)
    return settings


def _document(path: Path) -> Any:
    """The file as a tomlkit document to edit in place; an empty one when there is no file.
    A file that cannot be read or parsed is moved aside first (it is never overwritten)."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    text, _problems = _read_text(path)
    if text is None:
        return tomlkit.document()
    try:
        return tomlkit.parse(text)
    except ParseError:
        _set_aside_words(path)
        return tomlkit.document()


def _table(doc: Any, where: tuple[str, ...], tomlkit: Any) -> Any:
    """The table at `where` ("chat", or "presets", "mine"), made when missing; a non-table value
    in its place was rejected when loading anyway."""
    node = doc
    for part in where:
        table = node.get(part)
        if not isinstance(table, dict):
            if table is not None:
                del node[part]
            table = tomlkit.table(is_super_table=len(where) > 1 and part == where[0])
            node[part] = table
        node = table
    return node


def save(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings that differ from what the file gives now, and nothing else.

    Keys whose value the file already gives (or, when absent or rejected, whose default equals
    the value) are left as they are, so unknown keys, rejected values and comments survive.
    Atomic, and readable by the owner only (the file may hold API keys)."""
    import tomlkit

    path = path or paths.settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = _document(path)
    current, _problems = from_dict(doc.unwrap())
    changed = False
    sections: list[tuple[tuple[str, ...], Any, Any]] = [
        ((f.name,), getattr(settings, f.name), getattr(current, f.name)) for f in fields(Settings)
        if f.name not in _TABLES
    ]
    sections += [(("presets", name), preset, current.presets.get(name, SamplerPreset()))
                 for name, preset in settings.presets.items()]
    for where, section, in_file in sections:
        for key, value in asdict(section).items():
            if getattr(in_file, key) == value and (len(where) == 1 or where[1] in current.presets):
                continue
            _table(doc, where, tomlkit)[key] = value
            changed = True
    if not changed and path.exists():
        return path
    with atomic_open(path, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(tomlkit.dumps(doc))
    return path
