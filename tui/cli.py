"""`llmdeck`: the console entry point.

Parses arguments with the engine's parser (so the CLI and the TUI share every command), runs
headless subcommands directly, and imports the Textual app only when a TUI is wanted.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Sequence
from typing import NoReturn


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    request = plain_tui_request(args)
    if request is None:
        from engine.cli import OpenWeb, run_command

        result = run_command(args)
        if isinstance(result, OpenWeb):
            from tui.web import serve_web

            return serve_web(result.host, result.port, result.mode)
        if isinstance(result, int):
            return result
        request = result
    return launch(request)


def plain_tui_request(argv: list[str]):  # -> engine.cli.OpenTUI | None
    """The TUI request of a plain `llmdeck [--mode M] [--theme T]`, parsed without the subcommands;
    None when argv holds anything else (a subcommand, --help, a mistake), which the full parser handles.

    Why: the full parser imports every engine.commands module and builds their parsers, which took
    about a third of the time to the first frame as typed (bench/startup.py). Same parser definition,
    built without its subcommands; `--version` answers here too."""
    if any(a == "-h" or (len(a) > 2 and "--help".startswith(a)) for a in argv):
        return None
    import argparse

    from engine.cli import build_parser, dispatch

    parser = build_parser(commands=False)
    parser.exit_on_error = False
    try:
        args, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError:
        return None
    return None if rest else dispatch(args)


def launch(request) -> int:  # request: engine.cli.OpenTUI
    # textual-serve (`llmdeck web`) runs the app on pipes with TEXTUAL_DRIVER set: that is fine.
    if not os.environ.get("TEXTUAL_DRIVER") and (not sys.stdout.isatty() or not sys.stdin.isatty()):
        print("llmdeck: the TUI needs a terminal; use a subcommand (see `llmdeck --help`) for scripts", file=sys.stderr)
        return 2
    from tui.app import LLMDeckApp

    # The modules just imported live as long as the process: moved out of the collector's view,
    # they are not traversed again by the full collection that start-up would otherwise trigger
    # (tens of ms before the first frame on a loaded 2-core box; bench/startup.py).
    gc.freeze()
    options = {k: v for k, v in request.options.items() if v is not None}
    app = LLMDeckApp(start_mode=request.mode, options=options)
    app.run()
    end_process(int(app.return_code or 0))


def end_process(code: int) -> NoReturn:
    """End the process without the interpreter's teardown, once the app has closed.

    Freeing every module and object of a session (Textual's nine screens, llama.cpp, numpy,
    gguf...) took 1.7-3.5 s after the screen was already gone on a loaded 2-core box
    (bench/latency.py quit: atexit at 1.0 s after `q`, the process gone at 2.7-4.5 s), and none of
    it matters: runs are detached processes, every file llmdeck writes is written atomically and
    closed, SQLite has committed. The atexit handlers (logging's flush among them) still run."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
