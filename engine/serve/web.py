"""`llmdeck web`: the llmdeck TUI in a browser tab, through textual-serve.

textual-serve runs one app process per browser tab and streams it over a websocket. It has no
login of its own, and the app can start and stop runs on this machine, so it binds 127.0.0.1
only; reach it from a laptop with `ssh -L PORT:127.0.0.1:PORT host`.

The app is started with `python -c` rather than the `llmdeck` script: the launcher refuses to
open the TUI when stdout is not a terminal, and under textual-serve it is a pipe.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

DEFAULT_PORT = 8566


def app_command(mode: str = "monitor") -> str:
    """The shell command textual-serve runs for each browser tab."""
    if not re.fullmatch(r"[a-z]+", mode):
        raise ValueError(f"unknown mode {mode!r}")
    code = f"from tui.app import LLMDeckApp; LLMDeckApp(start_mode={mode!r}).run()"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def build_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT, mode: str = "monitor"):
    """A textual-serve Server for the llmdeck app (not started)."""
    from engine.cli import CommandError
    from engine.serve.auth import is_loopback

    if not is_loopback(host):
        raise CommandError(
            f"llmdeck web has no login, so it only binds 127.0.0.1 (asked for {host}). From your laptop run "
            f"`ssh -L {port}:127.0.0.1:{port} this-host` and open http://127.0.0.1:{port}"
        )
    try:
        from textual_serve.server import Server
    except ImportError:
        raise CommandError("textual-serve (a dependency of llmdeck) is not installed: `pip install 'textual-serve>=1.1'`") from None
    from engine.serve.server import bind_socket
    from engine.jobs import JobError

    try:
        bind_socket(host, port).close()  # a busy port is one clear line, not an aiohttp traceback
    except JobError as exc:
        raise CommandError(str(exc)) from None
    root = str(Path(__file__).resolve().parent.parent.parent)
    os.environ["PYTHONPATH"] = root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
    return Server(app_command(mode), host=host, port=port, title="llmdeck")


def serve_web(host: str = "127.0.0.1", port: int = DEFAULT_PORT, mode: str = "monitor") -> int:
    server = build_server(host, port, mode)
    print(f"llmdeck web: open http://{host}:{port} (Ctrl+C stops); from another machine: "
          f"ssh -L {port}:127.0.0.1:{port} this-host", file=sys.stderr, flush=True)
    server.serve()
    return 0
