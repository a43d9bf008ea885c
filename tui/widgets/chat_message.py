"""One message in the transcript: a title line (who; which of its alternatives it is, "◀ 2/3 ▶";
for answers how they ended and the speed figures) and a Markdown body. Answers stream into the
body through Textual's MarkdownStream, which merges fragments when rendering falls behind.
The title wraps rather than cut: what matters most (stopped, 2/3) comes first."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static

from engine.chat.base import ENDINGS, GenerationStats
from tui.widgets.transcript_markdown import TranscriptMarkdown

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System", "note": "llmdeck"}


class ChatMessageView(Vertical):
    DEFAULT_CSS = """
    ChatMessageView { height: auto; margin: 0 0 1 0; padding: 0 1; }
    ChatMessageView.-user { background: $boost; }
    ChatMessageView.-note { color: $text-muted; }
    ChatMessageView .chat-title { color: $text-muted; height: auto; }
    ChatMessageView.-editing { border-left: thick $warning; }
    ChatMessageView.-user .chat-title { color: $primary; }
    ChatMessageView.-assistant .chat-title { color: $secondary; }
    ChatMessageView.-stopped .chat-title { color: $warning; }
    ChatMessageView.-error .chat-title { color: $error; }
    ChatMessageView Markdown { margin: 0; padding: 0; }
    """

    def __init__(self, role: str, content: str = "", *, record_id: int | None = None, stats: dict | None = None,
                 stopped: bool = False, parent_id: int | None = None, alternative: int = 1,
                 alternatives: int = 1) -> None:
        super().__init__(classes=f"-{role}")
        self.role = role
        self.content = content
        self.record_id = record_id
        """Its row in chat.sqlite3 (None: not saved, or chat history is off)."""
        self.parent_id = parent_id
        """The saved message it answers or follows (None: the first, or not saved)."""
        self.stats = stats or {}
        self.stopped = stopped
        self.alternative, self.alternatives = alternative, alternatives
        self._stream = None

    @classmethod
    def from_record(cls, record) -> ChatMessageView:  # record: engine.chat.sessions.ChatRecord
        return cls(record.role, record.content, record_id=record.id, stats=record.stats, stopped=record.stopped,
                   parent_id=record.parent_id, alternative=record.alternative, alternatives=record.alternatives)

    def set_alternatives(self, alternative: int, alternatives: int) -> None:
        self.alternative, self.alternatives = alternative, alternatives
        self.refresh_title()

    def refresh_title(self, error: str = "") -> None:
        if self.is_mounted:
            self.query_one(".chat-title", Static).update(self._title() + (f" · error: {error}" if error else ""))

    def compose(self) -> ComposeResult:
        yield Static(self._title(), classes="chat-title", markup=False)
        yield TranscriptMarkdown(self.content)

    @property
    def body(self) -> Markdown:
        return self.query_one(Markdown)

    def _title(self) -> str:
        parts = [ROLE_NAMES.get(self.role, self.role)]
        if self.alternatives > 1:
            parts.append(f"◀ {self.alternative}/{self.alternatives} ▶")
        if self.role != "assistant":
            return " · ".join(parts)
        brief = GenerationStats.from_dict(self.stats).brief() if self.stats else ""
        if self.stopped and ENDINGS["cancelled"] not in brief:
            parts.append(ENDINGS["cancelled"])
        parts.append(brief or ("" if self.stopped else "…"))
        return " · ".join(p for p in parts if p)

    def start_stream(self) -> None:
        self._stream = Markdown.get_stream(self.body)

    async def append(self, text: str) -> None:
        self.content += text
        if self._stream is not None:
            await self._stream.write(text)

    async def finish(self, stats: dict, *, stopped: bool = False, error: str = "") -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.stats, self.stopped = stats, stopped
        self.set_class(stopped, "-stopped")
        self.set_class(bool(error), "-error")
        self.refresh_title(error)
