"""The transcript's Markdown: a streamed paragraph shows every word, and asks for a layout
pass only when its wrapped height changes (the rest of a stream is repaint only)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.widgets import Markdown
from textual.widgets._markdown import MarkdownParagraph

from tui.widgets.transcript_markdown import TranscriptMarkdown, shared_parser


class Doc(App):
    CSS = "Markdown { width: 40; height: auto; }"

    def __init__(self, widget: type[Markdown] = TranscriptMarkdown) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget()


def shown(paragraph: MarkdownParagraph) -> list[str]:
    width, height = paragraph.size
    return [strip.text.rstrip() for strip in paragraph.render_lines(Region(0, 0, width, height))]


async def stream_words(widget: type[Markdown], words: int = 60) -> tuple[int, int]:
    """Stream words into a 40-column Markdown; check each step; (layout requests, height changes)."""
    app = Doc(widget)
    async with app.run_test(size=(60, 30)) as pilot:
        md = app.query_one(Markdown)
        stream = Markdown.get_stream(md)
        text = ""
        heights = []
        for i in range(words):
            word = f"w{i} "
            text += word
            await stream.write(word)
            await pilot.pause()
            await pilot.pause()
            paragraph = md.query_one(MarkdownParagraph)
            lines = shown(paragraph)
            assert " ".join(lines).split() == text.split(), f"after {i + 1} words the paragraph shows {lines}"
            assert lines[-1], "the last line is not cut off"
            heights.append(paragraph.size.height)
        await stream.stop()
        assert len(md.query(MarkdownParagraph)) == 1
        return paragraph._layout_updates, sum(1 for a, b in zip(heights, heights[1:], strict=False) if b != a)


async def test_streamed_paragraph_shows_every_word_and_relayouts_only_when_it_wraps():
    layouts, growths = await stream_words(TranscriptMarkdown)
    plain_layouts, plain_growths = await stream_words(Markdown)
    assert growths == plain_growths >= 5
    assert plain_layouts >= 50  # Textual's own paragraph: a layout pass for every word
    assert layouts <= 2 * growths + 2, (layouts, growths)


async def test_a_new_block_after_a_blank_line_still_mounts():
    app = Doc()
    async with app.run_test(size=(60, 30)) as pilot:
        md = app.query_one(TranscriptMarkdown)
        stream = Markdown.get_stream(md)
        for fragment in ("First paragraph.", "\n\n", "```python\nprint('x')\n```\n\n", "Second."):
            await stream.write(fragment)
            await pilot.pause()
        await stream.stop()
        await pilot.pause()
        kinds = [type(block).__name__ for block in md.children]
        assert kinds == ["StreamingParagraph", "MarkdownFence", "StreamingParagraph"]
        assert "print" in md.source and shown(md.children[-1]) == ["Second."]


def test_parser_is_reused_per_thread():
    import threading

    assert shared_parser() is shared_parser()
    other = []
    thread = threading.Thread(target=lambda: other.append(shared_parser()))
    thread.start()
    thread.join()
    assert other[0] is not shared_parser()
