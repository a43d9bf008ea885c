"""Data mode on a sample file: records browse, the histogram shows, the problems list names lines."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, OptionList, Static, TabbedContent

from tests.helpers.tiny_model import cached_tiny_tokenizer
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.screens.data import TRAINED_STYLE, DataScreen

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_data"


def static_text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def spans_with(screen, style: str) -> list[str]:
    content = screen.query_one("#data-record", Static).visual
    merged: list[list[int]] = []
    for span in sorted((s for s in content.spans if str(s.style) == style), key=lambda s: s.start):
        if merged and span.start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span.end)
        else:
            merged.append([span.start, span.end])
    return [content.plain[a:b] for a, b in merged]


async def test_records_histogram_and_problems():
    model = str(cached_tiny_tokenizer("chatml"))
    app = LLMDeckApp(start_mode="data", options={"file": str(FIXTURES / "problems.jsonl"), "model": model, "max_seq_len": 64})
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, DataScreen)
        await wait_until(pilot, lambda: screen.summary is not None)
        assert "6 problems" in static_text(screen, "#data-status")

        # Records: the two valid records, the first shown with its assistant turn highlighted.
        records = screen.query_one("#data-records", OptionList)
        assert records.option_count == 2
        assert "line 1" in str(records.get_option_at_index(0).prompt)
        assert spans_with(screen, TRAINED_STYLE) == ["Hello.<|im_end|>"]
        records.focus()
        await pilot.press("down")
        await wait_until(pilot, lambda: "problems.jsonl:9" in static_text(screen, "#data-record-head"))
        assert spans_with(screen, TRAINED_STYLE) == ["Goodbye.<|im_end|>"]

        # Lengths: the histogram with the cut line.
        await pilot.press("h")
        assert screen.query_one("#data-tabs", TabbedContent).active == "lengths"
        lengths = static_text(screen, "#data-lengths")
        assert "max_seq_len 64: 0 longer" in lengths and "█" in lengths and "p50" in lengths

        # Problems: each names its line.
        await pilot.press("p")
        table = screen.query_one("#data-problems", DataTable)
        assert table.row_count == 6
        wheres = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert wheres == [f"problems.jsonl:{n}" for n in (2, 3, 4, 5, 7, 8)]
        assert str(table.get_row_at(4)[2]) == "duplicate of line 1"


async def test_cut_is_marked_and_loss_toggle_rescans():
    model = str(cached_tiny_tokenizer("chatml"))
    app = LLMDeckApp(start_mode="data", options={"file": str(FIXTURES / "openai.jsonl"), "model": model, "max_seq_len": 40})
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.summary is not None)
        head = static_text(screen, "#data-record-head")
        assert "68 tokens" in head and "cut at 40" in head
        assert "✂ max_seq_len 40" in static_text(screen, "#data-record")
        first = screen.summary
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: screen.summary is not first)
        assert screen.summary["loss_on"] == "all"
        assert screen.summary["trained_tokens"] == screen.summary["tokens"]


async def test_typed_paths_and_a_bad_file_show_one_line(tmp_path):
    bad = tmp_path / "latin.jsonl"
    bad.write_bytes('{"text": "caf\u00e9"}\n'.encode("latin-1"))
    model = str(cached_tiny_tokenizer("chatml"))
    app = LLMDeckApp(start_mode="data")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        file_input = screen.query_one("#data-file", Input)
        assert not file_input.has_focus  # issue 17 item 7: a digit would go into it; Tab reaches it
        for _ in range(6):
            if file_input.has_focus:
                break
            await pilot.press("tab")
        assert file_input.has_focus
        file_input.value = str(bad)
        screen.query_one("#data-model", Input).value = model
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.query_one("#data-status", Static).has_class("-error"))
        assert "latin.jsonl: not UTF-8" in static_text(screen, "#data-status")
        assert screen.summary is None


async def test_scan_does_not_block_the_ui(tmp_path):
    """While a big file scans, the UI keeps answering keys."""
    import json

    big = tmp_path / "big.jsonl"
    # Big enough that the scan takes seconds even on a fast, quiet machine (about 1 s per 5000
    # records here), so the key below is certainly handled while it runs.
    big.write_text("".join(json.dumps({"text": f"record {i} " + "word " * 50}) + "\n" for i in range(40000)))
    model = str(cached_tiny_tokenizer("chatml"))
    app = LLMDeckApp(start_mode="data", options={"file": str(big), "model": model})
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: "scanning" in static_text(screen, "#data-status"))
        await pilot.press("h")
        # the key was handled while the scan was still running (a blocked UI would only get
        # to it after the scan)
        assert screen.query_one("#data-tabs", TabbedContent).active == "lengths"
        assert screen.summary is None
        await wait_until(pilot, lambda: screen.summary is not None, timeout=60)
        assert screen.summary["records"] == 40000


async def test_a_preference_pair_shows_both_answers_side_by_side(tmp_path):
    import json

    long = "word " * 60
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.",
         "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: " + long},
        {"prompt": "Hi", "chosen": "Hello!"},  # no rejected: a problem on line 2
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = str(cached_tiny_tokenizer("chatml"))
    app = LLMDeckApp(start_mode="data", options={"file": str(path), "model": model, "max_seq_len": 48})
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.summary is not None)
        assert "preference pairs" in static_text(screen, "#data-status")
        assert "1 problems" in static_text(screen, "#data-status")
        assert screen.query_one("#data-pair").display
        assert "What is 2+2?" in static_text(screen, "#data-record")
        chosen, rejected = static_text(screen, "#data-side-a-head"), static_text(screen, "#data-side-b-head")
        assert chosen.startswith("chosen · ") and "✂" not in chosen
        assert rejected.startswith("rejected · ") and "✂ at 48" in rejected
        assert static_text(screen, "#data-side-a").startswith("It is 4.")
        assert "✂ 48" in static_text(screen, "#data-side-b")
        # the two answers sit side by side
        a, b = screen.query_one("#data-side-a"), screen.query_one("#data-side-b")
        await wait_until(pilot, lambda: a.region.width > 0 and b.region.width > 0)  # laid out
        assert a.region.y == b.region.y and a.region.x < b.region.x
        await pilot.press("p")
        table = screen.query_one("#data-problems", DataTable)
        assert table.row_count == 1 and "missing field 'rejected'" in str(table.get_row_at(0)[2])
