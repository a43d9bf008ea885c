"""`llmdeck` subcommands, shared by the headless CLI and the TUI launcher.

Each area registers its subcommands in a module of `engine.commands` (listed in
COMMAND_MODULES). Those modules must stay light at import time: building the parser (for
`--help`) imports all of them, and `llmdeck --help` must not load torch or pynvml.
A command returns an exit code, or an `OpenTUI` / `OpenWeb` request that `tui.cli` turns into the
app or its browser server (engine never imports the TUI); it raises `CommandError` for a user
error. All three live in `engine.commands.outcome`, so no command module imports this one back.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import engine
from engine.commands.outcome import CommandError, OpenTUI, OpenWeb

COMMAND_MODULES: tuple[str, ...] = (
    "engine.commands.monitor",
    "engine.commands.chat",
    "engine.commands.data",
    "engine.commands.estimate",
    "engine.commands.convert",
    "engine.commands.train",
    "engine.commands.bench",
    "engine.commands.serve",
    "engine.commands.runs",
    "engine.commands.doctor",
)


def _load_command_modules() -> list[Any]:
    return [importlib.import_module(name) for name in COMMAND_MODULES]


def build_parser(commands: bool = True) -> argparse.ArgumentParser:
    """The `llmdeck` parser. `commands=False` leaves out the subcommands (and the imports of their
    modules): `tui.cli` parses a plain `llmdeck [--mode M] [--theme T]` with it, so opening the TUI
    does not pay for building nine subcommand parsers."""
    modules = _load_command_modules() if commands else []
    examples = "\n".join(f"  {line}" for module in modules for line in getattr(module, "EXAMPLES", ()))
    parser = argparse.ArgumentParser(
        prog="llmdeck",
        description="A keyboard-driven control panel for open LLMs on a GPU box: monitor, data, "
        "estimate, train, convert, chat, bench, serve. With no subcommand it opens the TUI.",
        epilog=f"examples:\n  llmdeck                       open the TUI (Monitor mode)\n{examples}\n\n"
        "Set LLMDECK_HOME to keep every llmdeck file (settings, runs, chats) under one folder.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llmdeck {engine.__version__}")
    parser.add_argument("--theme", help="theme for this session (llmdeck-dark, llmdeck-light, llmdeck-contrast)")
    parser.add_argument("--mode", default="monitor", help="mode the TUI opens in (default: monitor)")
    if commands:
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        for module in modules:
            module.register(sub)
    return parser


def dispatch(args: argparse.Namespace) -> int | OpenTUI | OpenWeb:
    func = getattr(args, "func", None)
    if func is None:
        return OpenTUI(mode=args.mode, options={"theme": args.theme})
    return func(args)


def run_command(argv: Sequence[str] | None = None) -> int | OpenTUI | OpenWeb:
    """Parse and run; user errors become one line on stderr and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = dispatch(args)
        if not isinstance(result, (OpenTUI, OpenWeb)):
            sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return result
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the boundary that keeps tracebacks off the terminal
        if os.environ.get("LLMDECK_DEBUG"):
            raise
        from engine.jobs import JobError
        from engine.kinds import UnknownKind
        from engine.runs import RunError

        if isinstance(exc, (CommandError, RunError, JobError, UnknownKind, OSError)):
            print(f"llmdeck: error: {exc}", file=sys.stderr)
        else:
            print(f"llmdeck: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            print("llmdeck: set LLMDECK_DEBUG=1 to see the traceback", file=sys.stderr)
        return 2


def _reader_went_away() -> int:
    """`llmdeck runs list | head -3`: the reader closed the pipe, which is how a pipeline says it
    has enough. Quiet, as `ls | head` is: later writes (the exit-time flush included) go to
    /dev/null, and the status is the shell's for a command ended by SIGPIPE. (Not SIG_DFL for
    SIGPIPE: `llmdeck serve` writes to sockets, and a client hanging up must not kill it.)"""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13  # SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Headless entry point (`python -m engine.cli`): TUI requests are refused."""
    result = run_command(argv)
    if isinstance(result, (OpenTUI, OpenWeb)):
        print("llmdeck: this command opens the TUI; run it through `llmdeck`", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
