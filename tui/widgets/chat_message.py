"""One message in the transcript: a title line (who, and for answers the speed figures) and a
Markdown body. Answers stream into the body through Textual's MarkdownStream, which merges
fragments when rendering falls behind."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static

from engine.chat.base import GenerationStats
from tui.widgets.transcript_markdown import TranscriptMarkdown

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System", "note": "llmdeck"}


class ChatMessageView(Vertical):
    DEFAULT_CSS = """
    ChatMessageView { height: auto; margin: 0 0 1 0; padding: 0 1; }
    ChatMessageView.-user { background: $boost; }
    ChatMessageView.-note { color: $text-muted; }
    ChatMessageView .chat-title { color: $text-muted; height: 1; }
    ChatMessageView.-user .chat-title { color: $primary; }
    ChatMessageView.-assistant .chat-title { color: $secondary; }
    ChatMessageView.-stopped .chat-title { color: $warning; }
    ChatMessageView.-error .chat-title { color: $error; }
    ChatMessageView Markdown { margin: 0; padding: 0; }
    """

    def __init__(self, role: str, content: str = "", *, record_id: int | None = None, stats: dict | None = None,
                 stopped: bool = False) -> None:
        super().__init__(classes=f"-{role}")
        self.role = role
        self.content = content
        self.record_id = record_id
        self.stats = stats or {}
        self.stopped = stopped
        self._stream = None

    def compose(self) -> ComposeResult:
        yield Static(self._title(), classes="chat-title", markup=False)
        yield TranscriptMarkdown(self.content)

    @property
    def body(self) -> Markdown:
        return self.query_one(Markdown)

    def _title(self) -> str:
        name = ROLE_NAMES.get(self.role, self.role)
        if self.role != "assistant":
            return name
        parts = [name]
        if self.stats:
            stats = GenerationStats.from_dict(self.stats)
            parts.append(stats.summary())
        if self.stopped:
            parts.append("■ stopped")
        elif not self.stats:
            parts.append("…")
        return " · ".join(dict.fromkeys(parts))

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
        title = self._title()
        if error:
            self.add_class("-error")
            title += f" · error: {error}"
        self.query_one(".chat-title", Static).update(title)
