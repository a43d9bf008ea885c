"""Estimate mode at 80x24: the table and verdicts follow the form as you type."""

from __future__ import annotations

import asyncio
import time

from textual.widgets import DataTable, Input, Select, Static

from tui.app import LLMDeckApp


async def _until(pilot, predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause()
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _screen(app):
    from tui.screens.estimate import EstimateScreen

    screen = app.screen
    assert isinstance(screen, EstimateScreen)
    return screen


def _text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def test_estimate_updates_as_you_type_at_80x24():
    app = LLMDeckApp(start_mode="estimate", options={"estimate": {"model": "llama-2-7b", "context": 4096}})
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: _screen(app).report is not None)
        screen = _screen(app)
        table = screen.query_one("#est-table", DataTable)
        assert table.row_count >= 4
        kv_row = table.get_row("kv_cache")
        assert kv_row[1] == "2.00"  # Llama-2-7B, 4096 tokens, fp16: 2 GiB
        assert "total" in _text(app, "#est-summary")
        # everything important is on screen at 80x24
        for selector in ("#est-table", "#est-summary", "#est-verdicts", "#est-model"):
            region = screen.query_one(selector).region
            assert region.width > 0 and region.height > 0
            assert region.right <= 80 and region.bottom <= 24

        # typing a longer context updates the KV row
        ctx = screen.query_one("#est-context", Input)
        ctx.focus()
        ctx.value = ""
        await pilot.press(*"8192")
        await _until(pilot, lambda: table.get_row("kv_cache")[1] == "4.00")

        # switch to QLoRA: training rows appear, the table shows optimizer and activations
        screen.query_one("#est-mode", Select).value = "qlora"
        await _until(pilot, lambda: screen.report is not None and screen.report.estimate.mode == "qlora")
        assert screen.query_one("#row-rank").display and not screen.query_one("#row-context").display
        keys = {str(k.value) for k in table.rows}
        assert {"weights", "optimizer", "activations", "logits"} <= keys
        verdicts = _text(app, "#est-verdict-text")
        assert "24 GB:" in verdicts


async def test_bad_input_shows_a_message_not_a_crash():
    app = LLMDeckApp(start_mode="estimate", options={"estimate": {"model": "llama-2-7b"}})
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: _screen(app).report is not None)
        screen = _screen(app)
        model = screen.query_one("#est-model", Input)
        model.value = "no-such-model"
        await _until(pilot, lambda: "presets" in _text(app, "#est-error"))
        model.value = "mistral-7b"
        await _until(pilot, lambda: _text(app, "#est-error") == "" and screen.report.spec.name == "mistral-7b")


async def test_cycle_mode_and_checkpoint_keys():
    app = LLMDeckApp(start_mode="estimate", options={"estimate": {"mode": "lora", "batch": 4}})
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, lambda: _screen(app).report is not None and _screen(app).report.estimate.mode == "lora")
        screen = _screen(app)
        before = screen.report.estimate.total_bytes
        screen.query_one("#est-table").focus()
        await pilot.press("ctrl+g")
        await _until(pilot, lambda: screen.report.estimate.settings.get("grad_checkpointing") is True)
        assert screen.report.estimate.total_bytes < before
        await pilot.press("ctrl+t")
        await _until(pilot, lambda: screen.report.estimate.mode == "qlora")
