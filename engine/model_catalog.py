"""Every model llmdeck knows of on this machine, for the model picker (and anyone else who asks).

Where models are: the outputs of runs (conversions, merges, exports, training), the models chat
sessions used, the folders the user lists in the settings (`[models] folders`), the Hugging Face
hub cache and llama.cpp's download cache. A model is a `.gguf` file, an HF model folder
(`config.json` next to weights) or a LoRA adapter folder (`adapter_config.json`).

The scan walks user folders that may be huge (a home directory, a NAS), so it is bounded: a depth
per root, a number of directory entries and a deadline; what it did not finish is said in
`Catalog.incomplete`, never silently dropped. Hidden names are skipped, which also skips the
temporary outputs of running jobs (engine.atomic names them `.NAME.tmp-XXXX`). Reads names and
sizes only: no file is opened except the chat database (read-only).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine import paths

KINDS = ("gguf", "hf", "adapter")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "blobs", "refs"})
"""Folders that never hold a model worth listing (the hub cache's `blobs` are the snapshots' targets)."""


@dataclass(frozen=True)
class FoundModel:
    path: str
    kind: str
    """"gguf", "hf" or "adapter"."""
    source: str
    """Where it was found: "run", "chat", "folder", "huggingface", "llama.cpp", "bundled"."""
    size: int = 0
    """Bytes on disk (a folder: its weight files); 0 when unknown."""
    modified: float = 0.0
    note: str = ""
    """A word on where it came from: the run's name, "used in chat", the hub repo id."""

    @property
    def name(self) -> str:
        hub = self.note if self.source == "huggingface" else ""
        return hub or Path(self.path).name


@dataclass
class Catalog:
    models: list[FoundModel] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    """Roots the scan did not finish, with why ("~/models: stopped after 2.0 s")."""
    seconds: float = 0.0


@dataclass
class _Budget:
    deadline: float
    entries_left: int

    def spent(self) -> bool:
        return self.entries_left <= 0 or time.monotonic() >= self.deadline


def model_kind(path: Path) -> str | None:
    """What `path` is as a model, or None. Looks at names only (one listdir for a folder)."""
    if path.suffix == ".gguf":
        return "gguf" if path.is_file() else None
    try:
        names = os.listdir(path)
    except OSError:
        return None
    if "adapter_config.json" in names:
        return "adapter"
    if "config.json" in names and any(n.endswith(WEIGHT_SUFFIXES) for n in names):
        return "hf"
    return None


def _size(path: Path, kind: str) -> tuple[int, float]:
    try:
        if kind == "gguf":
            stat = path.stat()
            return stat.st_size, stat.st_mtime
        total, newest = 0, 0.0
        for entry in os.scandir(path):
            if entry.name.endswith(WEIGHT_SUFFIXES) or entry.name.endswith(".json"):
                stat = entry.stat()  # follows the hub cache's symlinks into its blobs
                total += stat.st_size
                newest = max(newest, stat.st_mtime)
        return total, newest
    except OSError:
        return 0, 0.0


def _found(path: Path, source: str, note: str = "", kind: str | None = None) -> FoundModel | None:
    kind = kind or model_kind(path)
    if kind is None:
        return None
    size, modified = _size(path, kind)
    return FoundModel(str(path), kind, source, size, modified, note)


def _walk(root: Path, max_depth: int, budget: _Budget) -> Iterator[tuple[Path, str]]:
    """(path, kind) of the models under `root`, breadth first, within the budget. A model
    folder is not entered (its checkpoints would list as models of their own)."""
    level = [root]
    for _depth in range(max_depth + 1):
        following: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            budget.entries_left -= len(entries)
            names = {e.name for e in entries}
            if "adapter_config.json" in names or ("config.json" in names and any(
                    n.endswith(WEIGHT_SUFFIXES) for n in names)):
                yield folder, "adapter" if "adapter_config.json" in names else "hf"
                continue
            for entry in entries:
                if entry.name.startswith(".") or entry.name in SKIP_DIRS:
                    continue
                if entry.name.endswith(".gguf") and entry.is_file():
                    yield Path(entry.path), "gguf"
                elif entry.is_dir(follow_symlinks=True):
                    following.append(Path(entry.path))
            if budget.spent():
                return
        level = following
        if not level:
            return


def hub_cache() -> Path:
    """The Hugging Face hub cache, where huggingface_hub puts it (HF_HUB_CACHE, HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def llama_cache() -> Path:
    """llama.cpp's download cache (`llama-cli -hf ...`): LLAMA_CACHE, else ~/.cache/llama.cpp."""
    if os.environ.get("LLAMA_CACHE"):
        return Path(os.environ["LLAMA_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "llama.cpp"


def _hub_models(root: Path, budget: _Budget) -> Iterator[FoundModel]:
    """The hub cache's layout: models--ORG--NAME/snapshots/REVISION/ (files are symlinks into blobs/)."""
    try:
        repos = sorted(p for p in root.iterdir() if p.name.startswith("models--"))
    except OSError:
        return
    for repo in repos:
        repo_id = repo.name.removeprefix("models--").replace("--", "/")
        for snapshot, kind in _walk(repo / "snapshots", 2, budget):
            found = _found(snapshot, "huggingface", repo_id, kind)
            if found:
                yield found
        if budget.spent():
            return


def _run_models(store_dir: Path, budget: _Budget) -> Iterator[FoundModel]:
    """Outputs of runs that succeeded: the `output` their spec named, and what is in their
    `out/` folder (a training run's adapter or model, its checkpoints)."""
    from engine.runs import RunStore

    try:
        runs = RunStore(store_dir).list()
    except OSError:
        return
    for run in runs:
        if run.status != "succeeded":
            continue
        label = f"run {run.label} ({run.kind})"
        seen: set[str] = set()
        output = run.spec.get("output")
        if isinstance(output, str) and output:
            found = _found(Path(output).expanduser(), "run", label)
            if found:
                seen.add(found.path)
                yield found
        for path, kind in _walk(run.dir / "out", 2, budget):
            if str(path) not in seen:
                found = _found(path, "run", label, kind)
                if found:
                    yield found
        if budget.spent():
            return


def _chat_models(database: Path) -> Iterator[FoundModel]:
    """Models chat sessions used that are still on disk (the database opened read-only: a scan
    never creates or migrates it)."""
    if not database.is_file():
        return
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.5) as db:
            rows = db.execute("SELECT model, max(updated) FROM sessions WHERE model != '' GROUP BY model").fetchall()
    except sqlite3.Error:
        return
    for model, _updated in rows:
        found = _found(Path(model).expanduser(), "chat", "used in chat")
        if found:
            yield found


def _bundled() -> Iterator[FoundModel]:
    """The demo Gemma, where engine.chat.default_model puts it once assembled (never assembled
    here: that writes 240 MB)."""
    import importlib

    from engine.chat import default_model

    if not default_model.installed():
        return
    name = importlib.import_module(default_model.PACKAGE).MODEL_NAME
    for folder in (Path.home() / ".cache" / default_model.PACKAGE, paths.cache_dir() / "models"):
        found = _found(folder / name, "bundled", "bundled demo model")
        if found:
            yield found


def scan(
    folders: Iterable[str | Path] = (),
    *,
    runs_dir: Path | None = None,
    chat_db: Path | None = None,
    hub: Path | None = None,
    llama: Path | None = None,
    include_bundled: bool = True,
    seconds: float = 2.0,
    max_depth: int = 3,
    max_entries: int = 50_000,
) -> Catalog:
    """Every model llmdeck knows of, each path once (the first source to find it names it:
    runs, chat, the user's folders, the hub cache, llama.cpp's cache, the bundled model)."""
    started = time.monotonic()
    budget = _Budget(started + seconds, max_entries)
    catalog = Catalog()
    seen: set[str] = set()

    def add(models: Iterable[FoundModel], where: str) -> None:
        for model in models:
            key = os.path.realpath(model.path)
            if key not in seen:
                seen.add(key)
                catalog.models.append(model)
        if budget.spent():
            why = f"stopped after {seconds:g} s" if time.monotonic() >= budget.deadline else \
                f"stopped after {max_entries} entries"
            catalog.incomplete.append(f"{where}: {why}")

    def walked(root: Path) -> Iterator[FoundModel]:
        for path, kind in _walk(root, max_depth, budget):
            found = _found(path, "folder", str(root), kind)
            if found:
                yield found

    sources: list[tuple[str, Callable[[], Iterable[FoundModel | None]]]] = [
        ("runs", lambda: _run_models(runs_dir or paths.runs_dir(), budget)),
        ("chat history", lambda: _chat_models(chat_db or paths.data_dir() / "chat.sqlite3")),
        *((str(folder), lambda f=folder: walked(Path(f).expanduser())) for folder in folders),
        ("Hugging Face cache", lambda: _hub_models(hub or hub_cache(), budget)),
        ("llama.cpp cache", lambda: (_found(p, "llama.cpp", "llama.cpp cache", k)
                                     for p, k in _walk(llama or llama_cache(), 1, budget))),
    ]
    if include_bundled:
        sources.append(("bundled", _bundled))
    for where, source in sources:
        if budget.spent():
            catalog.incomplete.append(f"{where}: not scanned (time or entry budget spent)")
            continue
        add((m for m in source() if m is not None), where)
    catalog.seconds = time.monotonic() - started
    return catalog


def matches(model: FoundModel, query: str) -> bool:
    """Every word of `query` is in the model's path, name, kind, source or note (any case)."""
    haystack = f"{model.path} {model.name} {model.kind} {model.source} {model.note}".lower()
    return all(word in haystack for word in query.lower().split())
