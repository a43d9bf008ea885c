"""Chat sessions in SQLite (`<data>/chat.sqlite3`): list, rename, delete, search, export.

stdlib sqlite3 in WAL mode, one connection guarded by a lock so the UI thread and a generation
worker can both write. The schema version lives in `PRAGMA user_version`; `_migrate` brings an
older file up to date step by step, and a file from a newer llmdeck is refused rather than
damaged. Each message keeps its generation stats (TTFT, tokens/s, counts) and whether it was
stopped by the user.
"""

from __future__ import annotations

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

SCHEMA_VERSION = 1

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
            raise SessionError(f"{self.path} is not a usable chat database ({exc}); move it aside to start fresh") from None

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SessionError(
                    f"{self.path} was written by a newer llmdeck (schema {version} > {SCHEMA_VERSION}); upgrade llmdeck"
                )
            if version < 1:
                self._db.executescript("BEGIN;" + _SCHEMA_V1 + "PRAGMA user_version=1; COMMIT;")
            # future: if version < 2: ALTER TABLE ...; PRAGMA user_version=2

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- sessions ---------------------------------------------------------------------------
    def create(self, title: str = "New chat", *, model: str = "", backend: str = "", params: dict | None = None) -> SessionInfo:
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
            cur = self._db.execute(f"UPDATE sessions SET {assignment}, updated = ? WHERE id = ?", (*values, time.time(), session_id))
        if cur.rowcount == 0:
            raise SessionError(f"no chat session {session_id}")

    def delete(self, session_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # -- messages ---------------------------------------------------------------------------
    def add_message(
        self, session_id: int, role: str, content: str, *, stopped: bool = False, stats: dict | None = None
    ) -> ChatRecord:
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO messages(session_id, role, content, created, stopped, stats_json) VALUES (?,?,?,?,?,?)",
                (session_id, role, content, now, int(stopped), json.dumps(stats) if stats else ""),
            )
            self._db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now, session_id))
        return ChatRecord(int(cur.lastrowid), session_id, role, content, now, stopped, stats or {})

    def update_message(self, message_id: int, content: str, *, stopped: bool = False, stats: dict | None = None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE messages SET content = ?, stopped = ?, stats_json = ? WHERE id = ?",
                (content, int(stopped), json.dumps(stats) if stats else "", message_id),
            )

    def delete_message(self, message_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def clear(self, session_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))

    def messages(self, session_id: int) -> list[ChatRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, session_id, role, content, created, stopped, stats_json FROM messages"
                " WHERE session_id = ? ORDER BY id",
                (session_id,),
            ).fetchall()
        return [ChatRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), json.loads(r[6]) if r[6] else {}) for r in rows]

    # -- export -----------------------------------------------------------------------------
    def export_json(self, session_id: int) -> dict[str, Any]:
        info = self.get(session_id)
        return {
            "format": "llmdeck-chat",
            "version": 1,
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
        `<data>/exports`); returns both paths."""
        folder = Path(folder) if folder else paths.data_dir() / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        info = self.get(session_id)
        slug = slugify(info.title.lower(), fallback="chat", limit=40)
        md = folder / f"{slug}-{session_id}.md"
        js = folder / f"{slug}-{session_id}.json"
        write_text(md, self.export_markdown(session_id))
        write_text(js, json.dumps(self.export_json(session_id), indent=2, ensure_ascii=False))
        return md, js


def title_from(text: str, limit: int = 48) -> str:
    """A session title from the first user message."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
