"""Textual's Markdown, made cheaper to stream into.

While an answer streams, Textual's MarkdownStream appends each batch by re-parsing the last block
and copying its content into the paragraph on screen. Two costs in that path are avoidable, and
on a 2-core box every millisecond the UI thread spends here is taken from a CPU model's threads:

- `Markdown.append` builds a new `MarkdownIt("gfm-like")` for every batch (about 1 ms: rule
  chains, linkify patterns). A parser per thread is reused instead; per thread because
  `Markdown.update` parses in an executor thread and markdown-it's linkify keeps match state on
  the instance.
- `Static.update` always asks for a layout pass of the whole screen. Most tokens leave a
  paragraph's wrapped height unchanged, and then a repaint of the paragraph alone is enough.
"""

from __future__ import annotations

import threading

from markdown_it import MarkdownIt
from textual.content import Content
from textual.visual import visualize
from textual.widgets import Markdown

# not exported; pinned textual<9, tests/tui/test_transcript_markdown.py
from textual.widgets._markdown import MarkdownParagraph
from textual.widgets.markdown import MarkdownBlock

_parsers = threading.local()


def shared_parser() -> MarkdownIt:
    """This thread's gfm-like parser, the one Textual's Markdown builds by default."""
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = MarkdownIt("gfm-like")
    return parser


class StreamingParagraph(MarkdownParagraph):
    """A paragraph that skips the layout pass when new text wraps to the same height."""

    def set_content(self, content: Content) -> None:
        self._content = content
        size = self.content_size
        if self.is_mounted and size.width and size.height:
            visual = visualize(self, content, markup=self._render_markup)
            if visual.get_height(self.styles, size.width) == size.height:
                self.update(content, layout=False)
                return
        self.update(content)


class TranscriptMarkdown(Markdown):
    BLOCKS: dict[str, type[MarkdownBlock]] = {**Markdown.BLOCKS, "paragraph_open": StreamingParagraph}

    def __init__(self, markdown: str | None = None, **kwargs: object) -> None:
        kwargs.setdefault("parser_factory", shared_parser)
        super().__init__(markdown, **kwargs)  # type: ignore[arg-type]
