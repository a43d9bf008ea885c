"""`llmdeck web`: the TUI served by textual-serve, guarded by a token, an Origin check and a
Host check, driven by a real WebSocket client and opened in a real headless Chromium.

The page draws the terminal on a canvas, so the DOM holds no text. Instead the browser test
drives Chromium over the DevTools protocol and reads the websocket frames the page receives:
the app's own terminal output, which must contain the mode bar of its first screen. A
screenshot is saved next to the test's tmp folder for a human to look at.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from engine.cli import run_command
from engine.ports import free_port
from tests.helpers.requirements import apt, require_module, require_tool

ROOT = Path(__file__).resolve().parent.parent.parent


def test_web_refuses_other_hosts(capsys):
    assert run_command(["web", "--host", "0.0.0.0"]) == 2
    assert "only binds a loopback address" in capsys.readouterr().err
    assert run_command(["web", "--host", "127.example.com"]) == 2  # looks like 127.x, is not loopback
    assert "only binds a loopback address" in capsys.readouterr().err


@contextmanager
def llmdeck_web(timeout: float = 30):
    """`llmdeck web` as a user starts it; yields (process, port, the URL it printed)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "web", "--port", str(port)], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url, printed = None, b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while url is None and time.monotonic() < deadline and proc.poll() is None:
                if sel.select(0.2):
                    printed += os.read(proc.stdout.fileno(), 4096)
                    found = re.search(rb"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]+", printed)
                    url = found.group().decode() if found else None
        assert url, f"no tokenised URL printed: {printed.decode(errors='replace')}"
        # keep reading its log (the access lines) so a full pipe never blocks the server
        threading.Thread(target=drain, args=(proc.stdout.fileno(),), daemon=True).start()
        wait_http(url, proc, timeout)
        yield proc, port, url
    finally:
        stop(proc)


def drain(fd: int) -> None:
    while os.read(fd, 65536):
        pass


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


async def screen_over_websocket(session, url: str, headers: dict[str, str], needle: str, timeout: float) -> str:
    """Connect like the page does and collect the app's terminal output until `needle` shows."""
    import aiohttp

    seen = ""
    async with session.ws_connect(url, headers=headers, max_msg_size=0) as ws:
        deadline = time.monotonic() + timeout
        while needle not in seen and time.monotonic() < deadline:
            try:
                msg = await asyncio.wait_for(ws.receive(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if msg.type == aiohttp.WSMsgType.BINARY:
                seen += msg.data.decode("utf-8", "replace")
            elif msg.type == aiohttp.WSMsgType.TEXT:
                seen += msg.data
            else:
                break
    return seen


async def refused_websocket(session, url: str, headers: dict[str, str]) -> int:
    import aiohttp

    try:
        async with session.ws_connect(url, headers=headers):
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


@pytest.mark.timeout(150)
def test_web_needs_the_token_its_own_origin_and_a_loopback_host():
    """A real WebSocket client against a real `llmdeck web`: what another web page (foreign
    Origin), a page without the token and a DNS-rebinding page (foreign Host) can do, and what
    the user's own tab gets."""
    import aiohttp

    require_module("textual_serve")

    async def probe(port: int, url: str) -> None:
        token = url.split("token=", 1)[1]
        own = f"http://127.0.0.1:{port}"
        ws = f"ws://127.0.0.1:{port}/ws"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            # plain HTTP: no token, a wrong token, a static file without the token
            for path in ("/", "/?token=wrong", "/static/js/textual.js", f"/?token={token[:-1]}"):
                async with session.get(own + path, allow_redirects=False) as resp:
                    assert resp.status == 403, (path, resp.status)
            # the first visit moves the token into a cookie and strips it from the address bar
            async with session.get(url, allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/"
                set_cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and token in set_cookie
            cookie = set_cookie.split(";", 1)[0]
            async with session.get(own + "/", headers={"Cookie": cookie}) as resp:
                assert resp.status == 200 and f"ws://127.0.0.1:{port}/ws" in await resp.text()
            async with session.get(own + "/static/js/textual.js", headers={"Cookie": cookie}) as resp:
                assert resp.status == 200

            # WebSocket: another site's page (its Origin), even holding the cookie or the token
            evil = {"Origin": "http://evil.example"}
            assert await refused_websocket(session, ws, {**evil, "Cookie": cookie}) == 403
            assert await refused_websocket(session, f"{ws}?token={token}", evil) == 403
            other_port = {"Origin": f"http://127.0.0.1:{port + 1}", "Cookie": cookie}
            assert await refused_websocket(session, ws, other_port) == 403
            assert await refused_websocket(session, ws, {"Cookie": cookie}) == 403  # no Origin at all
            # ... our own origin without the token
            assert await refused_websocket(session, ws, {"Origin": own}) == 403
            # ... DNS rebinding: evil.example resolves to 127.0.0.1, so Host and Origin name it
            rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
            assert await refused_websocket(session, f"{ws}?token={token}", rebound) == 403
            async with session.get(url, headers={"Host": f"evil.example:{port}"}, allow_redirects=False) as resp:
                assert resp.status == 403

            # the user's own tab: right token, own origin -> the app's screen arrives
            size = "width=160&height=40"  # as the page asks; at 80 columns the mode bar says "Mon"
            mine = {"Origin": own, "Cookie": cookie}
            seen = await screen_over_websocket(session, f"{ws}?{size}", mine, "Monitor", 90)
            assert "Monitor" in seen, f"app screen not seen; got {seen[-300:]!r}"
            local = await screen_over_websocket(session, f"ws://localhost:{port}/ws?token={token}&{size}",
                                                {"Origin": f"http://localhost:{port}"}, "Monitor", 90)
            assert "Monitor" in local

    with llmdeck_web() as (_proc, port, url):
        assert url.startswith(f"http://127.0.0.1:{port}/?token=") and len(url.split("token=")[1]) >= 32
        asyncio.run(probe(port, url))


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code < 500:
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
                    seen += (base64.b64decode(payload).decode("utf-8", "replace") if frame.get("opcode") == 2
                             else payload)
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
    chromium = require_tool("chromium", "chromium-browser", install=apt("chromium"))
    require_module("textual_serve")
    profile = tmp_path / "chromium-profile"
    with llmdeck_web() as (_web, _port, url):
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--window-size=1280,800", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            active = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (active.exists() and active.read_text().strip()) and time.monotonic() < deadline:
                assert browser.poll() is None, "chromium exited at start"
                time.sleep(0.1)
            devtools_port = int(active.read_text().splitlines()[0])
            shot = tmp_path / "llmdeck-web.png"
            # the tokenised URL the user copies: the page must work after its redirect to the cookie
            seen = asyncio.run(frames_seen(devtools_port, url, ("Monitor", "Serve"), 90, shot))
        finally:
            stop(browser)
        assert "Monitor" in seen and "Serve" in seen, f"app screen not seen; got {seen[-500:]!r}"
        print(f"screenshot: {shot}")
