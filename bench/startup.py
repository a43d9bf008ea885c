"""Startup as typed: the `llmdeck` command vs a bare Textual app, to the first painted frame.

Each program runs the way a user starts it (the `llmdeck` console script of this Python's
environment, argument parsing and all; the bare app as `python bare.py`) in a real
pseudo-terminal of 80x24. The clock runs from spawning the process until the terminal has
received the first frame of the app's screen: the text of its top line and of its footer,
read from the pseudo-terminal with the escape sequences removed. Nothing inside either
program is patched or timed. Runs alternate so machine noise hits both alike; the script
prints every run, the medians, the ratio, `llmdeck --version` against `python -c pass` (the
cost of the command layer alone), and the load average before and after.

    python bench/startup.py [--reps 15] [--mode monitor]

Target: llmdeck within 1.3x of the bare app.
"""

from __future__ import annotations

import argparse
import compileall
import fcntl
import os
import pty
import re
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.3
PACKAGES = ("engine", "tui", "themes")  # pyproject.toml's wheel packages

BARE = """
from textual.app import App
from textual.widgets import Footer, Header, Static


class Bare(App):
    def compose(self):
        yield Header()
        yield Static("hello")
        yield Footer()


Bare().run()
"""
# Text of each program's first frame at 80x24: its top line (the header; llmdeck's mode bar) and its footer.
BARE_MARKS = ("Bare", "^p palette")
FOOTER = "^p palette"
ESCAPES = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])")


def llmdeck_command() -> str:
    """The `llmdeck` console script next to this Python (the environment's, as a user types it)."""
    script = Path(sys.executable).parent / "llmdeck"
    found = str(script) if script.exists() else shutil.which("llmdeck")
    if not found:
        raise SystemExit("no `llmdeck` command next to this Python or on the PATH: install llmdeck first "
                         "(make install)")
    return found


def deck_marks(mode: str) -> tuple[str, str]:
    """llmdeck's mode bar at 80 columns names the open mode by number and short name ("1:Mon")."""
    from tui.modes import MODES

    number, short = next((n, m.short) for n, m in enumerate(MODES, start=1) if m.key == mode)
    return f"{number}:{short}", FOOTER


def compile_checkout() -> None:
    """Bytecode for llmdeck's packages, as `pip install` writes it (the bare app's Textual has its)."""
    for package in PACKAGES:
        if not compileall.compile_dir(ROOT / package, quiet=1):
            raise SystemExit(f"could not compile {ROOT / package} to bytecode")


def time_to_frame(argv: list[str], marks: tuple[str, ...], env: dict[str, str], timeout: float = 60.0) -> float:
    """Seconds from spawning `argv` in an 80x24 pseudo-terminal until every mark is on its screen."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    wanted = [m.encode() for m in marks]
    seen = b""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True)
    os.close(slave)
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            text = ESCAPES.sub(b"", seen)
            if all(m in text for m in wanted):
                return time.perf_counter() - start
        raise RuntimeError(f"{argv[0]}: {marks} never appeared; the terminal got {ESCAPES.sub(b'', seen)[-400:]!r}")
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def time_command(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _runs(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=15, help="runs of each program (alternating)")
    parser.add_argument("--mode", default="", help="also pass --mode MODE to llmdeck (default: none, as typed)")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="llmdeck-bench-")
    env = {**os.environ, "LLMDECK_HOME": home, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "COLUMNS": "80",
           "LINES": "24"}
    bare_py = Path(home) / "bare.py"
    bare_py.write_text(BARE)
    deck = [llmdeck_command(), *(["--mode", args.mode] if args.mode else [])]
    bare = [sys.executable, str(bare_py)]
    marks = deck_marks(args.mode or "monitor")
    compile_checkout()
    load_before = os.getloadavg()
    time_to_frame(bare, BARE_MARKS, env), time_to_frame(deck, marks, env)  # warm the OS file cache for both
    bare_t, deck_t, version_t, pass_t = [], [], [], []
    for _ in range(args.reps):
        bare_t.append(time_to_frame(bare, BARE_MARKS, env))
        deck_t.append(time_to_frame(deck, marks, env))
        pass_t.append(time_command([sys.executable, "-c", "pass"], env))
        version_t.append(time_command([deck[0], "--version"], env))
    load_after = os.getloadavg()
    b, d = statistics.median(bare_t), statistics.median(deck_t)
    print(f"typed, to the first frame at 80x24 ({args.reps} alternating runs each, ms):")
    bare_name = " ".join(Path(a).name for a in bare)
    print(f"  bare Textual app  ({bare_name}): median {b * 1000:5.0f}  runs: {_runs(bare_t)}")
    print(f"  llmdeck ({' '.join([Path(deck[0]).name, *deck[1:]])}): median {d * 1000:5.0f}  runs: {_runs(deck_t)}")
    print(f"  ratio llmdeck / bare: {d / b:.2f}x  (target <= {TARGET}x)")
    print(f"command layer: `llmdeck --version` median {statistics.median(version_t) * 1000:.0f} ms, "
          f"`python -c pass` median {statistics.median(pass_t) * 1000:.0f} ms")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
