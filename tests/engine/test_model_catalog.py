"""engine.model_catalog: where the model picker finds models, and the bounds on its scan."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from engine.chat.sessions import SessionStore
from engine.model_catalog import matches, model_kind, scan
from engine.runs import RunStore


def gguf(path: Path, size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + bytes(size - 4))
    return path


def hf(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(bytes(100))
    return folder


def adapter(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(bytes(10))
    return folder


def only(tmp_path: Path, **kwargs):
    """A scan that sees only what the test made (no real caches, no bundled model)."""
    defaults = {"runs_dir": tmp_path / "runs", "chat_db": tmp_path / "chat.sqlite3", "hub": tmp_path / "hub",
                "llama": tmp_path / "llama", "include_bundled": False}
    return scan(**{**defaults, **kwargs})


def test_kinds_by_name(tmp_path: Path) -> None:
    assert model_kind(gguf(tmp_path / "a.gguf")) == "gguf"
    assert model_kind(hf(tmp_path / "m")) == "hf"
    assert model_kind(adapter(tmp_path / "ad")) == "adapter"
    (tmp_path / "cfg-only").mkdir()
    (tmp_path / "cfg-only" / "config.json").write_text("{}")
    assert model_kind(tmp_path / "cfg-only") is None  # a config with no weights is not a model
    assert model_kind(tmp_path / "missing.gguf") is None


def test_every_source_once(tmp_path: Path) -> None:
    models = tmp_path / "models"
    listed = gguf(models / "deep" / "q4.gguf")
    merged = hf(models / "merged")
    gguf(merged / "inside.gguf")  # a model folder is not entered
    gguf(models / ".out.gguf.tmp-abcdef12")  # a running job's temporary output
    store = RunStore(tmp_path / "runs")
    conversion = gguf(tmp_path / "outputs" / "conv.gguf")
    run = store.create("convert.quantize", {"output": str(conversion)}, name="quantize it")
    store.update(run.id, status="succeeded")
    trained = adapter(run.dir / "out" / "adapter")
    failed = store.create("convert.quantize", {"output": str(gguf(tmp_path / "outputs" / "half.gguf"))})
    store.update(failed.id, status="failed")
    chatted = gguf(tmp_path / "elsewhere" / "chat.gguf")
    sessions = SessionStore(tmp_path / "chat.sqlite3")
    sessions.create("hi", model=str(chatted))
    sessions.create("again", model=str(listed))  # also in a folder: listed once
    sessions.create("gone", model=str(tmp_path / "deleted.gguf"))
    sessions.close()
    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc123"
    blobs = tmp_path / "hub" / "models--org--tiny" / "blobs"
    hf(blobs.parent / "blobdata")
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        os.symlink(blobs.parent / "blobdata" / name, snapshot / name)
    cached = gguf(tmp_path / "llama" / "org_repo_model-Q8_0.gguf")

    catalog = only(tmp_path, folders=[str(models)])

    found = {m.path: m for m in catalog.models}
    assert set(found) == {str(conversion), str(trained), str(chatted), str(listed), str(merged), str(snapshot),
                          str(cached)}, found
    assert found[str(conversion)].source == "run" and "quantize it" in found[str(conversion)].note
    assert found[str(trained)].kind == "adapter"
    assert found[str(listed)].source == "chat"  # the first source that finds it names it
    assert found[str(merged)].kind == "hf" and found[str(merged)].size > 100
    assert found[str(snapshot)].source == "huggingface" and found[str(snapshot)].name == "org/tiny"
    assert found[str(cached)].source == "llama.cpp"
    assert catalog.incomplete == []


def test_the_chat_database_is_only_read(tmp_path: Path) -> None:
    database = tmp_path / "chat.sqlite3"
    only(tmp_path)
    assert not database.exists()  # no history: none is created
    sqlite3.connect(database).close()  # an empty file, no tables: nothing found, nothing raised
    assert only(tmp_path).models == []


def test_a_scan_is_bounded_and_says_what_it_did_not_finish(tmp_path: Path) -> None:
    deep = tmp_path / "big"
    folder = deep
    for level in range(6):
        folder = folder / f"level{level}"
    gguf(folder / "far.gguf")
    near = gguf(deep / "near.gguf")
    catalog = only(tmp_path, folders=[str(deep)], max_depth=3)
    assert [m.path for m in catalog.models] == [str(near)]  # deeper than max_depth is not walked

    wide = tmp_path / "wide"
    for n in range(300):
        (wide / f"d{n:03}").mkdir(parents=True)
    gguf(wide / "d299" / "last.gguf")
    started = time.monotonic()
    catalog = only(tmp_path, folders=[str(wide)], max_entries=100)
    assert time.monotonic() - started < 5
    assert catalog.models == []
    assert any("stopped after 100 entries" in line for line in catalog.incomplete), catalog.incomplete
    assert any("not scanned" in line for line in catalog.incomplete)  # the sources after it

    catalog = only(tmp_path, folders=[str(wide)], seconds=0.0)
    assert catalog.models == [] and f"{wide}: not scanned (time or entry budget spent)" in catalog.incomplete


def test_matching_every_word(tmp_path: Path) -> None:
    model = only(tmp_path, folders=[str(gguf(tmp_path / "m" / "Llama-3-Q4_K_M.gguf").parent)]).models[0]
    assert matches(model, "llama q4")
    assert matches(model, "gguf")
    assert not matches(model, "llama q8")
