"""`llmdeck web`: the llmdeck TUI in a browser tab, through textual-serve.

textual-serve runs one app process per browser tab and streams it over a WebSocket. It has no
login of its own and accepts a WebSocket from any page, yet the app can start and stop runs on
this machine. So, as Jupyter guards its server:

- a random token is made at each start and printed once, in the URL to open
  (`http://127.0.0.1:8566/?token=...`); the first visit moves it into an HttpOnly,
  SameSite=Strict cookie and redirects to the same address without it (so it is neither in the
  address bar nor in any Referer);
- every HTTP and WebSocket request without that token (query or cookie) is refused with 403;
- a WebSocket's `Origin` must be the page's own origin, so another site open in the same browser
  cannot drive the app (browsers send the cookie and let a page open any WebSocket);
- the `Host` header must be a loopback name or the configured host, so a DNS-rebinding page
  (evil.example resolving to 127.0.0.1) is refused even though its requests reach the socket.

The guard is an aiohttp middleware on textual-serve's own application (a subclass of its
Server), not a fork. The server still binds loopback only; from a laptop use
`ssh -L PORT:127.0.0.1:PORT host`.

The app is started with `python -c` rather than the `llmdeck` script: the launcher refuses to
open the TUI when stdout is not a terminal, and under textual-serve it is a pipe.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8566
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
REFUSED = ("llmdeck web: open the URL printed when `llmdeck web` started (it carries ?token=...); "
           "this request had no valid token")


class WebStartError(Exception):
    """`llmdeck web` cannot start; the text is one line for the terminal."""


def app_command(mode: str = "monitor") -> str:
    """The shell command textual-serve runs for each browser tab."""
    if not re.fullmatch(r"[a-z]+", mode):
        raise ValueError(f"unknown mode {mode!r}")
    code = f"from tui.app import LLMDeckApp; LLMDeckApp(start_mode={mode!r}).run()"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def url_host(host: str) -> str:
    """`host` as it appears in a URL or a Host header (IPv6 in brackets), lower case."""
    host = host.lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def host_name(header: str) -> str:
    """The name part of a Host header (`127.0.0.1:8566` -> `127.0.0.1`, `[::1]:80` -> `[::1]`)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if ":" in header else header


def token_matches(sent: str | None, token: str) -> bool:
    """Constant-time comparison (bytes: compare_digest refuses non-ASCII str)."""
    return sent is not None and hmac.compare_digest(sent.encode("utf-8"), token.encode("utf-8"))


def build_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT, mode: str = "monitor", token: str | None = None):
    """A guarded textual-serve Server for the llmdeck app (not started)."""
    try:
        import aiohttp_jinja2
        from aiohttp import hdrs, web
        from textual_serve.server import Server
    except ImportError:
        raise WebStartError(
            "textual-serve (a dependency of llmdeck) is not installed: `pip install 'textual-serve>=1.1.3'`") from None
    from engine.jobs import JobError
    from engine.serve.server import bind_socket

    try:
        bind_socket(host, port).close()  # a busy port is one clear line, not an aiohttp traceback
    except JobError as exc:
        raise WebStartError(str(exc)) from None

    # Defined here, not at module level, so that textual-serve (a dependency, but heavy) is imported
    # only when `llmdeck web` starts, and its absence is one line rather than an ImportError.
    class GuardedServer(Server):
        """textual-serve's Server behind a token, an Origin check and a Host check."""

        def __init__(self, command: str, token: str) -> None:
            super().__init__(command, host=host, port=port, title="llmdeck")
            self.token = token
            self.cookie = f"llmdeck-web-{port}"  # cookies ignore the port: one name per server
            self.hosts = {*LOOPBACK_NAMES, url_host(host)}
            self.open_url = f"http://{url_host(host)}:{port}/?token={token}"

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.insert(0, self.guard)
            app.on_response_prepare.append(self._headers)
            return app

        def refusal(self, request: web.Request) -> str | None:
            """Why this request is refused, or None."""
            if host_name(request.host) not in self.hosts:
                return f"llmdeck web answers only to {', '.join(sorted(self.hosts))} (Host was {request.host!r})"
            if not (token_matches(request.query.get("token"), self.token)
                    or token_matches(request.cookies.get(self.cookie), self.token)):
                return REFUSED
            if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
                own = f"{request.scheme}://{request.host}".lower()
                origin = request.headers.get(hdrs.ORIGIN, "").lower()
                if origin != own:
                    return f"llmdeck web refuses a WebSocket from origin {origin or '(none)'!r}: only {own!r}"
            return None

        @web.middleware
        async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
            reason = self.refusal(request)
            if reason:
                return web.Response(status=403, text=reason + "\n")
            websocket = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
            if "token" in request.query and request.method in ("GET", "HEAD") and not websocket:
                query = request.query.copy()
                del query["token"]
                moved = web.HTTPSeeOther(location=str(request.rel_url.with_query(query)))
                moved.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
                return moved
            return await handler(request)

        @staticmethod
        async def _headers(_request: web.Request, response: web.StreamResponse) -> None:
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("X-Frame-Options", "DENY")

        @aiohttp_jinja2.template("app_index.html")
        async def handle_index(self, request: web.Request) -> dict[str, Any]:
            # textual-serve builds these URLs from the bound address; from the request's own Host
            # they also work through `ssh -L 9000:127.0.0.1:8566` and from http://localhost:8566,
            # and the WebSocket then goes to the origin whose cookie the browser holds.
            origin = f"{request.scheme}://{request.host}"
            size = request.query.get("fontsize", "16")
            return {"font_size": int(size) if size.isdigit() else 16,
                    "app_websocket_url": "ws" + origin.removeprefix("http") + "/ws",
                    "config": {"static": {"url": f"{origin}/static/"}},
                    "application": {"name": self.title}}

        async def on_startup(self, app: web.Application) -> None:
            """textual-serve prints its own URL, without the token; the one to open is printed by serve_web."""

    root = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    return GuardedServer(app_command(mode), token or secrets.token_urlsafe(32))


def serve_web(host: str = "127.0.0.1", port: int = DEFAULT_PORT, mode: str = "monitor") -> int:
    """Run `llmdeck web` until Ctrl+C; a start-up problem is one line and exit status 2."""
    try:
        server = build_server(host, port, mode)
    except (WebStartError, ValueError) as exc:
        print(f"llmdeck: error: {exc}", file=sys.stderr)
        return 2
    print(f"llmdeck web: open {server.open_url}  (Ctrl+C stops)\n"
          f"from another machine: ssh -L {port}:127.0.0.1:{port} this-host, then open the same URL",
          file=sys.stderr, flush=True)
    server.serve()
    return 0
