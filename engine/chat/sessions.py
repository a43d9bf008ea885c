"""Chat sessions in SQLite (`<data>/chat.sqlite3`): list, rename, delete, search, export.

stdlib sqlite3 in WAL mode, one connection guarded by a lock so the UI thread and a generation
worker can both write. The schema version lives in `PRAGMA user_version`; `_migrate` brings an
older file up to date step by step, in one transaction per step, and a file from a newer
llmdeck is refused rather than damaged. Each message keeps its generation stats (TTFT,
tokens/s, counts) and whether it was stopped by the user.

A session is a tree, not a list (schema 2): every message names its parent, the message it
answers or follows. Regenerating an answer adds a sibling answer under the same question, and
sending an edited question adds a sibling question under the same parent; nothing is replaced
or deleted, so every earlier answer and question stays in the session as an alternative to
flip back to. `sessions.leaf_id` is the end of the branch the session shows; `messages()` is
the path from the first message to it. A schema-1 file (a plain list) becomes a single branch:
each message's parent is the one before it.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import paths
from engine.atomic import write_text
from engine.filenames import slugify

SCHEMA_VERSION = 2

_SCHEMA_V1 = """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    backend TEXT NOT NULL DEFAULT '',
    params_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created REAL NOT NULL,
    stopped INTEGER NOT NULL DEFAULT 0,
    stats_json TEXT NOT NULL DEFAULT ''
);
CREATE INDEX messages_by_session ON messages(session_id, id);
"""

# Schema 2: messages form a tree (parent_id), and each session remembers the end of the branch
# it shows (leaf_id). An existing file's messages become one branch, in their order.
_SCHEMA_V2 = """
ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE;
ALTER TABLE sessions ADD COLUMN leaf_id INTEGER;
UPDATE messages SET parent_id = (
    SELECT MAX(p.id) FROM messages p WHERE p.session_id = messages.session_id AND p.id < messages.id
);
UPDATE sessions SET leaf_id = (SELECT MAX(m.id) FROM messages m WHERE m.session_id = sessions.id);
CREATE INDEX messages_by_parent ON messages(session_id, parent_id);
"""

_STEPS: tuple[tuple[int, str], ...] = ((1, _SCHEMA_V1), (2, _SCHEMA_V2))
"""(version, the SQL that brings version - 1 up to it), applied in order."""

_COLUMNS = "m.id, m.session_id, m.role, m.content, m.created, m.stopped, m.stats_json, m.parent_id"


class _Leaf:
    """The default parent of a new message: the end of the branch the session shows."""


LEAF: Any = _Leaf()


class SessionError(Exception):
    """The chat database cannot be used; the text says why and what to do."""


@dataclass
class ChatRecord:
    """One stored message."""

    id: int
    session_id: int
    role: str
    content: str
    created: float
    stopped: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    parent_id: int | None = None
    """The message this one answers or follows; None for a session's first message."""
    alternative: int = 1
    """Its place (1-based, oldest first) among the messages with the same parent and role:
    the answers to one question, or the versions of one question."""
    alternatives: int = 1
    """How many messages share its parent and role (1: no alternatives)."""

    def as_message(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass
class SessionInfo:
    id: int
    title: str
    created: float
    updated: float
    model: str = ""
    backend: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    message_count: int = 0


def default_path() -> Path:
    return paths.data_dir() / "chat.sqlite3"


class SessionStore:
    """All chat sessions of this user. Cheap to open; safe to share between threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        paths.ensure_writable(self.path.parent)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # WAL + NORMAL never corrupts the file; a power cut may lose the last message only,
            # and no fsync sits between Enter and the first token.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise SessionError(f"{self.path} is not a usable chat database ({exc}); "
                               "move it aside to start fresh") from None

    def _migrate(self) -> None:
        """Each step runs in one write transaction that re-reads the version first, so two
        llmdeck processes opening an old file at once migrate it once, and a step that fails
        leaves the file as it was."""
        with self._lock:
            for target, script in _STEPS:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise SessionError(f"{self.path} was written by a newer llmdeck (schema {version} > "
                                       f"{SCHEMA_VERSION}); upgrade llmdeck")
                if version >= target:
                    continue
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if self._db.execute("PRAGMA user_version").fetchone()[0] < target:
                        for statement in _statements(script):
                            self._db.execute(statement)
                        self._db.execute(f"PRAGMA user_version={target}")
                except sqlite3.Error:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- sessions ---------------------------------------------------------------------------
    def create(self, title: str = "New chat", *, model: str = "", backend: str = "",
               params: dict | None = None) -> SessionInfo:
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO sessions(title, created, updated, model, backend, params_json) VALUES (?,?,?,?,?,?)",
                (title, now, now, model, backend, json.dumps(params or {})),
            )
        return self.get(int(cur.lastrowid))

    def _info(self, row: tuple) -> SessionInfo:
        return SessionInfo(
            id=row[0], title=row[1], created=row[2], updated=row[3], model=row[4], backend=row[5],
            params=json.loads(row[6] or "{}"), message_count=row[7],
        )

    _SELECT = (
        "SELECT s.id, s.title, s.created, s.updated, s.model, s.backend, s.params_json,"
        " (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) FROM sessions s"
    )

    def get(self, session_id: int) -> SessionInfo:
        with self._lock:
            row = self._db.execute(self._SELECT + " WHERE s.id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionError(f"no chat session {session_id}")
        return self._info(row)

    def list(self, query: str = "") -> list[SessionInfo]:
        """Sessions, most recently used first; `query` keeps those whose title or any message
        contains it (case-insensitive)."""
        sql, args = self._SELECT, ()
        if query:
            like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            sql += (
                " WHERE s.title LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m"
                " WHERE m.session_id = s.id AND m.content LIKE ? ESCAPE '\\')"
            )
            args = (like, like)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY s.updated DESC, s.id DESC", args).fetchall()
        return [self._info(r) for r in rows]

    search = list

    def rename(self, session_id: int, title: str) -> None:
        title = title.strip()
        if not title:
            raise SessionError("a session title cannot be empty")
        self._update_session(session_id, "title = ?", (title,))

    def _update_session(self, session_id: int, assignment: str, values: tuple) -> None:
        with self._lock:
            cur = self._db.execute(f"UPDATE sessions SET {assignment}, updated = ? WHERE id = ?",
                                   (*values, time.time(), session_id))
        if cur.rowcount == 0:
            raise SessionError(f"no chat session {session_id}")

    def delete(self, session_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # -- messages ---------------------------------------------------------------------------
    def add_message(
        self, session_id: int, role: str, content: str, *, parent_id: int | None = LEAF, stopped: bool = False,
        stats: dict | None = None,
    ) -> ChatRecord:
        """Add a message after `parent_id` (default: the end of the branch the session shows;
        None: a new first message) and show its branch. An answer added under a question that
        has one already is an alternative answer; a question added under the parent of another
        question is a new version of it. Nothing is replaced."""
        now = time.time()
        with self._lock:
            if parent_id is LEAF:
                row = self._db.execute("SELECT leaf_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
                parent_id = row[0] if row else None
            cur = self._db.execute(
                "INSERT INTO messages(session_id, role, content, created, stopped, stats_json, parent_id)"
                " VALUES (?,?,?,?,?,?,?)",
                (session_id, role, content, now, int(stopped), json.dumps(stats) if stats else "", parent_id),
            )
            message_id = int(cur.lastrowid)
            self._db.execute("UPDATE sessions SET updated = ?, leaf_id = ? WHERE id = ?", (now, message_id, session_id))
        return ChatRecord(message_id, session_id, role, content, now, stopped, stats or {}, parent_id)

    def update_message(self, message_id: int, content: str, *, stopped: bool = False,
                       stats: dict | None = None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE messages SET content = ?, stopped = ?, stats_json = ? WHERE id = ?",
                (content, int(stopped), json.dumps(stats) if stats else "", message_id),
            )

    def delete_message(self, message_id: int) -> None:
        """Delete a message and everything after it on every branch; the session then shows
        the branch up to its parent."""
        with self._lock:
            row = self._db.execute("SELECT session_id, parent_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            leaf = self._db.execute("SELECT leaf_id FROM sessions WHERE id = ?", (row[0],)).fetchone()
            if leaf and leaf[0] is not None and not self._exists(leaf[0]):
                self._db.execute("UPDATE sessions SET leaf_id = ? WHERE id = ?", (row[1], row[0]))

    def _exists(self, message_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is not None

    def clear(self, session_id: int) -> None:
        """Delete every message of the session, on every branch."""
        with self._lock:
            self._db.execute("UPDATE sessions SET leaf_id = NULL WHERE id = ?", (session_id,))
            self._db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))

    def _record(self, row: tuple, alternative: int = 1, alternatives: int = 1) -> ChatRecord:
        return ChatRecord(row[0], row[1], row[2], row[3], row[4], bool(row[5]), json.loads(row[6]) if row[6] else {},
                          row[7], alternative, alternatives)

    def messages(self, session_id: int) -> list[ChatRecord]:
        """The branch the session shows, first message first, each with its place among its
        alternatives."""
        with self._lock:
            row = self._db.execute("SELECT leaf_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None or row[0] is None:
                return []
            return self._path(row[0])

    def _path(self, leaf_id: int) -> list[ChatRecord]:
        rows = self._db.execute(
            "WITH RECURSIVE up(id, depth) AS (SELECT ?, 0 UNION ALL"
            " SELECT m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.id WHERE m.parent_id IS NOT NULL)"
            f" SELECT {_COLUMNS},"
            " (SELECT COUNT(*) FROM messages s WHERE s.session_id = m.session_id AND s.parent_id IS m.parent_id"
            "  AND s.role = m.role AND s.id <= m.id),"
            " (SELECT COUNT(*) FROM messages s WHERE s.session_id = m.session_id AND s.parent_id IS m.parent_id"
            "  AND s.role = m.role)"
            " FROM up JOIN messages m ON m.id = up.id ORDER BY up.depth DESC",
            (leaf_id,),
        ).fetchall()
        return [self._record(r[:8], r[8], r[9]) for r in rows]

    def all_messages(self, session_id: int) -> list[ChatRecord]:
        """Every message of the session on every branch, oldest first (export)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages m WHERE m.session_id = ? ORDER BY m.id", (session_id,)
            ).fetchall()
        return [self._record(r) for r in rows]

    def alternatives(self, message_id: int) -> list[ChatRecord]:
        """The message and the others with its parent and role (its alternatives), oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages m JOIN messages o ON o.id = ?"
                " WHERE m.session_id = o.session_id AND m.parent_id IS o.parent_id AND m.role = o.role ORDER BY m.id",
                (message_id,),
            ).fetchall()
        return [self._record(r, i, len(rows)) for i, r in enumerate(rows, start=1)]

    def show(self, session_id: int, message_id: int) -> list[ChatRecord]:
        """Show the branch through `message_id`, down to the newest message below it (the
        branch last added to, so flipping back returns to where that branch was left).
        Returns the session's messages as `messages()` then does."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM messages WHERE id = ? AND session_id = ?",
                                (message_id, session_id)).fetchone() is None:
                raise SessionError(f"no message {message_id} in chat session {session_id}")
            leaf = self._db.execute(
                "WITH RECURSIVE down(id) AS (SELECT ? UNION ALL"
                " SELECT m.id FROM messages m JOIN down ON m.parent_id = down.id WHERE m.session_id = ?)"
                " SELECT MAX(id) FROM down",
                (message_id, session_id),
            ).fetchone()[0]
            self._db.execute("UPDATE sessions SET leaf_id = ? WHERE id = ?", (leaf, session_id))
            return self._path(leaf)

    # -- export -----------------------------------------------------------------------------
    def export_json(self, session_id: int) -> dict[str, Any]:
        info = self.get(session_id)
        return {
            "format": "llmdeck-chat",
            "version": 2,
            "id": info.id,
            "title": info.title,
            "created": info.created,
            "model": info.model,
            "backend": info.backend,
            "params": info.params,
            "messages": [
                {"role": m.role, "content": m.content, "created": m.created, "stopped": m.stopped, "stats": m.stats}
                for m in self.messages(session_id)
            ],
            # every branch (earlier answers, earlier versions of a question): nothing is lost
            "all_messages": [
                {"id": m.id, "parent_id": m.parent_id, "role": m.role, "content": m.content, "created": m.created,
                 "stopped": m.stopped, "stats": m.stats}
                for m in self.all_messages(session_id)
            ],
        }

    def export_markdown(self, session_id: int) -> str:
        info = self.get(session_id)
        lines = [f"# {info.title}", ""]
        if info.model:
            lines += [f"Model: `{info.model}` ({info.backend})", ""]
        names = {"user": "You", "assistant": "Assistant", "system": "System"}
        for m in self.messages(session_id):
            lines.append(f"## {names.get(m.role, m.role)}")
            lines.append("")
            lines.append(m.content + (" *[stopped]*" if m.stopped else ""))
            lines.append("")
            if m.stats.get("tokens_per_s"):
                lines += [f"_{m.stats.get('generated_tokens', 0)} tokens, {m.stats['tokens_per_s']:.1f} tok/s_", ""]
        return "\n".join(lines)

    def export(self, session_id: int, folder: Path | None = None) -> tuple[Path, Path]:
        """Write `<slug>-<id>.md` and `.json` atomically into `folder` (default
        `<data>/exports`); returns both paths. An earlier export is never overwritten: the
        next free `-2`, `-3`... suffix is used for both files."""
        folder = Path(folder) if folder else paths.data_dir() / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        info = self.get(session_id)
        stem = f"{slugify(info.title.lower(), fallback='chat', limit=40)}-{session_id}"
        markdown = self.export_markdown(session_id)
        data = json.dumps(self.export_json(session_id), indent=2, ensure_ascii=False)
        for n in itertools.count(1):
            name = stem if n == 1 else f"{stem}-{n}"
            md, js = folder / f"{name}.md", folder / f"{name}.json"
            # Claim the name with an exclusive create, so a second llmdeck exporting at the same
            # moment takes the next suffix; the content then replaces the empty claim atomically.
            try:
                with md.open("x"):
                    pass
            except FileExistsError:
                continue
            if js.exists():
                md.unlink()
                continue
            break
        write_text(md, markdown)
        write_text(js, data)
        return md, js


def title_from(text: str, limit: int = 48) -> str:
    """A session title from the first user message."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _statements(script: str) -> list[str]:
    """The statements of a migration script (no semicolons inside its strings), to run one by
    one inside the caller's transaction (`executescript` would commit it)."""
    return [part.strip() for part in script.split(";") if part.strip()]
