"""`llmdeck` as typed: a plain launch of the TUI skips the subcommand parsers; everything else gets them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tui.cli import plain_tui_request


def test_plain_launch_parses_without_the_subcommand_modules() -> None:
    code = ("import sys; from tui.cli import plain_tui_request; from engine.cli import COMMAND_MODULES; "
            "r = plain_tui_request(['--mode', 'chat', '--theme', 't']); "
            "print(r.mode, r.options['theme'], [m for m in COMMAND_MODULES if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().split(maxsplit=2) == ["chat", "t", "[]"], out.stderr
    assert plain_tui_request([]).mode == "monitor"


@pytest.mark.parametrize("argv", [["runs", "list"], ["monitor", "--once"], ["--help"], ["--he"], ["-h"], ["--mode"],
                                  ["--bogus"], ["--mode", "chat", "extra"]])
def test_anything_else_goes_to_the_full_parser(argv: list[str]) -> None:
    assert plain_tui_request(argv) is None


def test_a_mistake_gets_the_full_parsers_usage() -> None:
    out = subprocess.run([sys.executable, "-m", "tui.cli", "--mode"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "COMMAND" in out.stderr and "argument --mode: expected one argument" in out.stderr
