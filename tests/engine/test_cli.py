"""The headless CLI, run as a user would: a real `llmdeck` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import engine


def llmdeck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_version_and_help():
    assert llmdeck("--version").stdout.strip() == f"llmdeck {engine.__version__}"
    help_text = llmdeck("--help").stdout
    assert "runs" in help_text and "llmdeck runs selftest" in help_text


def test_runs_lifecycle_through_the_cli():
    started = llmdeck("runs", "selftest", "--steps", "3", "--delay", "0.01", "--follow")
    assert started.returncode == 0, started.stderr
    assert "finished" in started.stdout and "succeeded" in started.stdout
    rows = json.loads(llmdeck("runs", "list", "--json").stdout)
    assert len(rows) == 1 and rows[0]["status"] == "succeeded" and rows[0]["progress"].endswith("(100%)")
    shown = llmdeck("runs", "show", rows[0]["id"][:20])
    assert "status: succeeded" in shown.stdout


def test_errors_are_one_clear_line_without_traceback(tmp_path):
    missing = llmdeck("runs", "show", "does-not-exist")
    assert missing.returncode == 2
    assert missing.stderr.startswith("llmdeck: error: no run matching 'does-not-exist'")
    assert "Traceback" not in missing.stderr

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    unwritable = llmdeck("runs", "selftest", env={"LLMDECK_HOME": str(blocker / "home")})
    assert unwritable.returncode == 2
    assert "cannot write to" in unwritable.stderr and "LLMDECK_HOME" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr


def test_headless_module_reports_command_errors_as_one_line(tmp_path):
    """`python -m engine.cli` runs the module as __main__; the errors commands raise must still be
    the ones its handler knows (they live in engine.commands.outcome, not in engine.cli)."""
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "monitor", "--replay", str(tmp_path / "none.jsonl")],
        capture_output=True, text=True, env=dict(os.environ), timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"llmdeck: error: replay file {tmp_path / 'none.jsonl'} does not exist"]


def test_tui_needs_a_terminal():
    result = llmdeck()
    assert result.returncode == 2 and "the TUI needs a terminal" in result.stderr


def test_a_reader_closing_the_pipe_ends_the_listing_quietly():
    """`llmdeck runs list | head -3`: no "Broken pipe" line, no traceback, SIGPIPE's status."""
    from engine.runs import RunStore

    store = RunStore()
    for n in range(1200):  # a listing well over a pipe buffer (64 KiB at about 80 characters a run)
        store.create("selftest", {}, name=f"run-{n}")
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "runs", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=dict(os.environ))
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does once it has its line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert first.startswith(b"ID")
    assert stderr == ""


def test_active_listing_with_none_says_so():
    listed = llmdeck("runs", "list", "--active")
    assert listed.returncode == 0
    assert listed.stdout.startswith("no active runs")
