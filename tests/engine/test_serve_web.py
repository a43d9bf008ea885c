"""`llmdeck web`: the TUI served by textual-serve, opened in a real headless Chromium.

The page draws the terminal on a canvas, so the DOM holds no text. Instead the test drives
Chromium over the DevTools protocol and reads the websocket frames the page receives: the
app's own terminal output, which must contain the mode bar of its first screen. A screenshot
is saved next to the test's tmp folder for a human to look at.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from engine.cli import run_command
from engine.ports import free_port
from tests.helpers.requirements import require_module, require_tool

ROOT = Path(__file__).resolve().parent.parent.parent


def test_web_refuses_other_hosts(capsys):
    assert run_command(["web", "--host", "0.0.0.0"]) == 2
    assert "only binds 127.0.0.1" in capsys.readouterr().err


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


async def frames_seen(devtools_port: int, url: str, needles: tuple[str, ...], timeout: float, shot: Path) -> str:
    """Open `url` in a new tab; collect websocket frames until every needle was seen."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://127.0.0.1:{devtools_port}/json/new?about:blank") as resp:
            target = await resp.json(content_type=None)
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 10_000))

            async def send(method: str, **params) -> None:
                await ws.send_str(json.dumps({"id": next(ids), "method": method, "params": params}))

            await send("Network.enable")
            await send("Page.enable")
            await send("Page.navigate", url=url)
            seen = ""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    msg = await asyncio.wait_for(ws.receive(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(msg.data)
                if data.get("method") == "Network.webSocketFrameReceived":
                    frame = data["params"]["response"]
                    payload = frame["payloadData"]
                    seen += base64.b64decode(payload).decode("utf-8", "replace") if frame.get("opcode") == 2 else payload
                    if all(n in seen for n in needles):
                        break
            await asyncio.sleep(1.0)  # let the canvas paint the frame for the screenshot
            shot_id = next(ids)
            await ws.send_str(json.dumps({"id": shot_id, "method": "Page.captureScreenshot", "params": {}}))
            while True:
                msg = await asyncio.wait_for(ws.receive(), 10)
                data = json.loads(msg.data)
                if data.get("id") == shot_id:
                    if "result" in data:
                        shot.write_bytes(base64.b64decode(data["result"]["data"]))
                    break
            return seen


@pytest.mark.timeout(150)
def test_web_serves_the_tui_to_a_real_browser(tmp_path):
    chromium = require_tool("chromium", "chromium-browser", install="Debian: apt-get install -y chromium; .ci/run does")
    require_module("textual_serve")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    web = subprocess.Popen([sys.executable, "-m", "engine.cli", "web", "--port", str(port)], cwd=str(ROOT), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    profile = tmp_path / "chromium-profile"
    browser = None
    try:
        wait_http(f"http://127.0.0.1:{port}/", web, 30)
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--window-size=1280,800", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.exists() and active.read_text().strip()) and time.monotonic() < deadline:
            assert browser.poll() is None, "chromium exited at start"
            time.sleep(0.1)
        devtools_port = int(active.read_text().splitlines()[0])
        shot = tmp_path / "llmdeck-web.png"
        seen = asyncio.run(frames_seen(devtools_port, f"http://127.0.0.1:{port}/", ("Monitor", "Serve"), 90, shot))
        assert "Monitor" in seen and "Serve" in seen, f"app screen not seen; got {seen[-500:]!r}"
        print(f"screenshot: {shot}")
    finally:
        for proc in (browser, web):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
