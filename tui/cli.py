"""`llmdeck`: the console entry point.

Parses arguments with the engine's parser (so the CLI and the TUI share every command), runs
headless subcommands directly, and imports the Textual app only when a TUI is wanted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from engine.cli import OpenTUI, OpenWeb, run_command

    result = run_command(argv)
    if isinstance(result, OpenWeb):
        from tui.web import serve_web

        return serve_web(result.host, result.port, result.mode)
    if not isinstance(result, OpenTUI):
        return result
    return launch(result)


def launch(request) -> int:  # request: engine.cli.OpenTUI
    # textual-serve (`llmdeck web`) runs the app on pipes with TEXTUAL_DRIVER set: that is fine.
    if not os.environ.get("TEXTUAL_DRIVER") and (not sys.stdout.isatty() or not sys.stdin.isatty()):
        print("llmdeck: the TUI needs a terminal; use a subcommand (see `llmdeck --help`) for scripts", file=sys.stderr)
        return 2
    from tui.app import LLMDeckApp

    options = {k: v for k, v in request.options.items() if v is not None}
    app = LLMDeckApp(start_mode=request.mode, options=options)
    app.run()
    return int(app.return_code or 0)


if __name__ == "__main__":
    sys.exit(main())
