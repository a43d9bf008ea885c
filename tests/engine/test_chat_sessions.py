"""Chat sessions in real SQLite: persistence across restarts, search, rename, delete, export."""

from __future__ import annotations

import json
import sqlite3

import pytest

from engine import paths
from engine.chat.sessions import SCHEMA_VERSION, SessionError, SessionStore, title_from


def test_persists_across_restarts() -> None:
    store = SessionStore()
    assert store.path == paths.data_dir() / "chat.sqlite3"
    s = store.create("First", model="gemma.gguf", backend="llama.cpp", params={"temperature": 0.2})
    store.add_message(s.id, "user", "What is 2+2?")
    a = store.add_message(s.id, "assistant", "4", stats={"ttft_s": 0.1, "tokens_per_s": 50.0, "generated_tokens": 2})
    store.update_message(a.id, "4, of course", stopped=True, stats={"generated_tokens": 4})
    store.close()

    again = SessionStore()
    [info] = again.list()
    assert (info.title, info.model, info.backend, info.params, info.message_count) == ("First", "gemma.gguf", "llama.cpp", {"temperature": 0.2}, 2)
    msgs = again.messages(s.id)
    assert [m.as_message() for m in msgs] == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4, of course"},
    ]
    assert msgs[1].stopped and msgs[1].stats == {"generated_tokens": 4}
    assert again.schema_version == SCHEMA_VERSION


def test_list_rename_delete_search_order() -> None:
    store = SessionStore()
    a = store.create("Cooking")
    b = store.create("Rust questions")
    store.add_message(a.id, "user", "How long to boil an egg?")
    store.add_message(b.id, "user", "What is a 100% borrow_checker?")
    assert [s.id for s in store.list()] == [b.id, a.id]  # most recent first
    assert [s.id for s in store.list("EGG")] == [a.id]  # message content, case-insensitive
    assert [s.id for s in store.list("rust")] == [b.id]  # title
    assert [s.id for s in store.list("100%")] == [b.id]  # LIKE wildcards are literal
    assert [s.id for s in store.list("w_c")] == [b.id]  # "_" is not a one-character wildcard
    assert store.list("w%c") == []
    store.rename(a.id, "  Eggs  ")
    assert store.get(a.id).title == "Eggs"
    with pytest.raises(SessionError, match="cannot be empty"):
        store.rename(a.id, " ")
    store.delete(a.id)
    assert [s.id for s in store.list()] == [b.id]
    assert store.messages(a.id) == []  # cascade
    with pytest.raises(SessionError, match="no chat session"):
        store.get(a.id)


def test_export_markdown_and_json(tmp_path) -> None:
    store = SessionStore()
    s = store.create("My Chat: about code!", model="m.gguf", backend="llama.cpp")
    store.add_message(s.id, "user", "Write hello world")
    store.add_message(s.id, "assistant", "```python\nprint('hi')\n```", stopped=True,
                      stats={"tokens_per_s": 42.0, "generated_tokens": 7})
    md, js = store.export(s.id, tmp_path)
    assert md.name == f"my-chat-about-code-{s.id}.md"
    text = md.read_text()
    assert text.startswith("# My Chat: about code!") and "## You" in text and "```python" in text
    assert "*[stopped]*" in text and "42.0 tok/s" in text
    data = json.loads(js.read_text())
    assert data["format"] == "llmdeck-chat" and [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["stopped"] is True
    default_md, _ = store.export(s.id)
    assert default_md.parent == paths.data_dir() / "exports"


def test_newer_schema_is_refused_and_garbage_is_reported(tmp_path) -> None:
    path = tmp_path / "chat.sqlite3"
    SessionStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(SessionError, match="newer llmdeck"):
        SessionStore(path)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(SessionError, match="not a usable chat database"):
        SessionStore(junk)


def test_store_is_shared_between_threads() -> None:
    import threading

    store = SessionStore()
    s = store.create("threads")
    threads = [threading.Thread(target=lambda i=i: store.add_message(s.id, "user", f"m{i}")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.messages(s.id)) == 8


def test_title_from() -> None:
    assert title_from("  hello\n world ") == "hello world"
    assert len(title_from("x" * 100)) == 48 and title_from("x" * 100).endswith("…")
