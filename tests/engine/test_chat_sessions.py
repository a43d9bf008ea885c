"""Chat sessions in real SQLite: persistence across restarts, search, rename, delete, export."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

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
    assert (info.title, info.model, info.backend, info.params, info.message_count) == (
        "First", "gemma.gguf", "llama.cpp", {"temperature": 0.2}, 2)
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


def test_a_second_export_never_overwrites_the_first(tmp_path) -> None:
    tmp_path = tmp_path / "exports"
    store = SessionStore()
    s = store.create("twice")
    store.add_message(s.id, "user", "first version")
    md1, js1 = store.export(s.id, tmp_path)
    store.add_message(s.id, "assistant", "an answer")
    md2, js2 = store.export(s.id, tmp_path)
    md3, js3 = store.export(s.id, tmp_path)
    assert (md1.name, md2.name, md3.name) == (f"twice-{s.id}.md", f"twice-{s.id}-2.md", f"twice-{s.id}-3.md")
    assert (js2.stem, js3.stem) == (md2.stem, md3.stem)
    assert "an answer" not in md1.read_text() and "an answer" in md2.read_text()
    assert len(json.loads(js1.read_text())["messages"]) == 1 and len(json.loads(js2.read_text())["messages"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (md1, js1, md2, js2, md3, js3))


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


FIXTURE_V1 = Path(__file__).resolve().parent.parent / "fixtures_chat" / "chat-v1.sqlite3"
"""Written by llmdeck's schema-1 SessionStore (a plain list of messages per session)."""


def _raw_rows(path: Path) -> tuple[list[tuple], list[tuple]]:
    db = sqlite3.connect(path)
    sessions = db.execute("SELECT id, title, created, updated, model, backend, params_json"
                          " FROM sessions ORDER BY id").fetchall()
    messages = db.execute("SELECT id, session_id, role, content, created, stopped, stats_json"
                          " FROM messages ORDER BY id").fetchall()
    db.close()
    return sessions, messages


def test_a_schema_1_database_from_the_old_code_migrates_and_loses_nothing(tmp_path) -> None:
    path = tmp_path / "chat.sqlite3"
    shutil.copy(FIXTURE_V1, path)
    sessions_before, messages_before = _raw_rows(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1

    store = SessionStore(path)
    assert store.schema_version == SCHEMA_VERSION == 2
    sessions_after, messages_after = _raw_rows(path)
    assert sessions_after == sessions_before and messages_after == messages_before  # every column, every row
    by_title = {s.title: s for s in store.list()}
    assert {t: s.message_count for t, s in by_title.items()} == {"Capitals": 4, "Ünïcödé ✓ session": 3, "empty one": 0}
    capitals = store.messages(by_title["Capitals"].id)
    assert [(m.role, m.content) for m in capitals] == [
        ("user", "What is the capital of France?"), ("assistant", "Paris."),
        ("user", "And of Italy?"), ("assistant", "Rome, the capit"),
    ]
    assert capitals[1].stats["tokens_per_s"] == 41.5 and capitals[3].stopped and not capitals[2].stopped
    assert [m.parent_id for m in capitals] == [None, capitals[0].id, capitals[1].id, capitals[2].id]
    assert all((m.alternative, m.alternatives) == (1, 1) for m in capitals)
    assert [m.content for m in store.messages(by_title["Ünïcödé ✓ session"].id)] == ["Be brief.", "Say hi 👋", "hi 👋"]
    assert store.messages(by_title["empty one"].id) == []
    # the migrated file keeps working: a new answer continues the migrated branch
    store.add_message(by_title["Capitals"].id, "user", "And of Spain?")
    store.close()
    again = SessionStore(path)  # opening it again migrates nothing twice
    assert again.schema_version == 2
    assert [m.content for m in again.messages(by_title["Capitals"].id)][-2:] == ["Rome, the capit", "And of Spain?"]


def test_a_failed_migration_leaves_the_old_file_as_it_was(tmp_path, monkeypatch) -> None:
    import engine.chat.sessions as sessions

    path = tmp_path / "chat.sqlite3"
    shutil.copy(FIXTURE_V1, path)
    before = _raw_rows(path)
    broken = (2, sessions._SCHEMA_V2 + ";SELECT no_such_function()")
    monkeypatch.setattr(sessions, "_STEPS", (sessions._STEPS[0], broken))
    with pytest.raises(SessionError):
        SessionStore(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "parent_id" not in [c[1] for c in db.execute("PRAGMA table_info(messages)")]
    db.close()
    assert _raw_rows(path) == before


def test_regenerated_answers_and_edited_questions_are_kept_as_alternatives() -> None:
    store = SessionStore()
    s = store.create("branches")
    q1 = store.add_message(s.id, "user", "Capital of Italy?")
    a1 = store.add_message(s.id, "assistant", "Rome.")
    # regenerate: a second answer to the same question
    a2 = store.add_message(s.id, "assistant", "It is Rome.", parent_id=q1.id)
    shown = store.messages(s.id)
    assert [m.content for m in shown] == ["Capital of Italy?", "It is Rome."]
    assert (shown[1].alternative, shown[1].alternatives) == (2, 2)
    assert [m.id for m in store.alternatives(a1.id)] == [a1.id, a2.id]
    # flip back to the first answer; the second is still there
    shown = store.show(s.id, a1.id)
    assert [m.content for m in shown] == ["Capital of Italy?", "Rome."] and shown[1].alternative == 1
    # a follow-up, then an edited first question: a new branch from the root
    store.add_message(s.id, "user", "And France?")
    store.add_message(s.id, "assistant", "Paris.")
    q1b = store.add_message(s.id, "user", "Capital of Spain?", parent_id=q1.parent_id)
    store.add_message(s.id, "assistant", "Madrid.")
    shown = store.messages(s.id)
    assert [m.content for m in shown] == ["Capital of Spain?", "Madrid."]
    assert (shown[0].alternative, shown[0].alternatives) == (2, 2)
    # back to the first version: its newest branch (the follow-up) comes back whole
    shown = store.show(s.id, q1.id)
    assert [m.content for m in shown] == ["Capital of Italy?", "Rome.", "And France?", "Paris."]
    assert store.get(s.id).message_count == 7
    store.close()
    # the branch shown is stored: a restart shows the same one
    assert [m.content for m in SessionStore().messages(s.id)] == ["Capital of Italy?", "Rome.", "And France?", "Paris."]
    assert [m.content for m in SessionStore().alternatives(q1b.id)] == ["Capital of Italy?", "Capital of Spain?"]
    exported = SessionStore().export_json(s.id)
    assert len(exported["messages"]) == 4 and len(exported["all_messages"]) == 7
    assert {m["parent_id"] for m in exported["all_messages"] if m["content"] == "Capital of Spain?"} == {None}


def test_delete_message_takes_its_branch_and_clear_takes_all() -> None:
    store = SessionStore()
    s = store.create("prune")
    q = store.add_message(s.id, "user", "q")
    store.add_message(s.id, "assistant", "a1")
    a2 = store.add_message(s.id, "assistant", "a2", parent_id=q.id)
    store.add_message(s.id, "user", "follow-up")
    store.delete_message(a2.id)
    assert [m.content for m in store.messages(s.id)] == ["q"]
    assert [m.content for m in store.all_messages(s.id)] == ["q", "a1"]
    store.clear(s.id)
    assert store.messages(s.id) == [] and store.all_messages(s.id) == []
    store.add_message(s.id, "user", "fresh start")
    assert [m.parent_id for m in store.messages(s.id)] == [None]
