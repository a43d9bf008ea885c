"""Time from process start to the first painted frame: llmdeck vs a bare Textual app.

Each app runs in a real pseudo-terminal (80x24) in a fresh interpreter; the child records the
wall-clock time of Textual's `Ready` event (sent after the first frame is on screen) and exits.
Runs alternate between the two apps so machine noise hits both alike. Prints medians and the
ratio; the target is llmdeck within 1.5x of the bare app.

    python bench/startup.py [--reps 7]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys, time
marker, which = sys.argv[1], sys.argv[2]
if which == "bare":
    from textual.app import App
    from textual.widgets import Footer, Header, Static

    class Base(App):
        def compose(self):
            yield Header()
            yield Static("hello")
            yield Footer()
    args = {}
else:
    from tui.app import LLMDeckApp as Base
    args = {"start_mode": which}


class Probe(Base):
    def on_ready(self):  # Textual sends Ready once the first frame has been displayed
        with open(marker, "w") as f:
            f.write(repr(time.time()))
        self.exit()


Probe(**args).run()
"""


def one_run(which: str, home: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "ready"
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {**os.environ, "LLMDECK_HOME": home, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
        drain = threading.Thread(target=_drain, args=(master,), daemon=True)
        drain.start()
        start = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(marker), which], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT
        )
        os.close(slave)
        try:
            proc.wait(60)
        finally:
            proc.kill()
            os.close(master)
        if not marker.exists():
            raise RuntimeError(f"{which}: the app never reported its first frame")
        return float(marker.read_text()) - start


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--mode", default="monitor", help="llmdeck start mode (default: monitor, the real default)")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="llmdeck-bench-")
    one_run("bare", home), one_run(args.mode, home)  # warm the OS file cache for both
    bare, deck = [], []
    for _ in range(args.reps):
        bare.append(one_run("bare", home))
        deck.append(one_run(args.mode, home))
    b, d = statistics.median(bare), statistics.median(deck)
    print(f"bare Textual app : median {b * 1000:7.0f} ms  (runs: {', '.join(f'{x * 1000:.0f}' for x in bare)})")
    print(f"llmdeck ({args.mode:7}): median {d * 1000:7.0f} ms  (runs: {', '.join(f'{x * 1000:.0f}' for x in deck)})")
    print(f"ratio llmdeck / bare: {d / b:.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
