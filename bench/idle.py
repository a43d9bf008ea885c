"""CPU of the idle app, back on Monitor after a tour of every mode, next to a bare Textual app.

With 200 finished runs on disk (made with `RunStore`, in a throw-away `LLMDECK_HOME`), two
children start at once, each in its own pseudo-terminal (80x24):

  bare     a bare Textual app (Header, Static, Footer), idle
  llmdeck  LLMDeckApp: it opens each of the nine modes in turn (a pause in each, so every screen
           mounts and reads the run store), comes back to Monitor, and then sits there

Once llmdeck is back on Monitor and its workers are done (Chat loads the bundled model while
the tour goes on), the parent reads both processes' CPU time (psutil
`cpu_times`, user + system, all threads) over the same `--seconds` window, so machine noise
hits both alike. Target: llmdeck idle under 1% of one core. (Monitor samples the host once a
second; `bench/monitor.py` measures that part alone.)

    python bench/idle.py [--seconds 30] [--runs 200] [--dwell 1.5]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import asyncio, sys
marker, which, dwell = sys.argv[1], sys.argv[2], float(sys.argv[3])
if which == "bare":
    from textual.app import App
    from textual.widgets import Footer, Header, Static

    class Probe(App):
        def compose(self):
            yield Header()
            yield Static("hello")
            yield Footer()

        def on_ready(self):
            open(marker, "w").write("ready")

    Probe().run()
else:
    from tui.app import LLMDeckApp
    from tui.modes import MODES

    class Probe(LLMDeckApp):
        def on_ready(self):
            self.run_worker(self.tour())

        async def tour(self):
            for mode in MODES if dwell else ():
                await self.switch_mode(mode.key)
                await asyncio.sleep(dwell)
            await self.switch_mode("monitor")
            from textual.worker import get_current_worker

            me = get_current_worker()
            while any(w.is_running and w is not me for w in self.workers):  # the Chat model still loading...
                await asyncio.sleep(0.2)
            await asyncio.sleep(dwell or 1.0)
            open(marker, "w").write("ready")

    Probe(start_mode="monitor").run()
"""

KINDS = ("train", "convert.hf-to-gguf", "eval.ppl", "bench.speed", "serve", "selftest")


def make_runs(count: int) -> None:
    """`count` finished runs of every kind, each with a short event history, as workers leave them."""
    from engine.events import Finished, Progress
    from engine.runs import RunStore

    store = RunStore()
    now = time.time()
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        info = store.create(kind, {"model": f"/models/m{i}", "output": f"/out/o{i}"}, name=f"run {i}")
        events = [Progress(phase="work", done=s, total=10) for s in range(1, 11)] + [Finished(summary={})]
        info.events_path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
        store.update(info.id, status="succeeded", started=now - 60, ended=now - 30, created=now - 3600 + i)


def start(which: str, marker: Path, dwell: float, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    threading.Thread(target=_drain, args=(master,), daemon=True).start()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), which, str(dwell)],
                            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    return proc, master


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"child exited with {proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"child not ready after {timeout:.0f} s")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--dwell", type=float, default=1.5,
                        help="seconds in each mode during the tour (0: no tour, Monitor alone)")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="llmdeck-bench-idle-")
    os.environ["LLMDECK_HOME"] = home
    make_runs(args.runs)
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        markers = {name: Path(tmp) / name for name in ("bare", "llmdeck")}
        children = {name: start(name, markers[name], args.dwell, env) for name in markers}
        try:
            for name, (proc, _fd) in children.items():
                wait_for(markers[name], proc, 120.0)
            time.sleep(2.0)  # let the last mode switch settle
            before = {name: cpu_seconds(proc.pid) for name, (proc, _fd) in children.items()}
            wall0 = time.perf_counter()
            time.sleep(args.seconds)
            wall = time.perf_counter() - wall0
            used = {name: cpu_seconds(proc.pid) - before[name] for name, (proc, _fd) in children.items()}
        finally:
            for proc, fd in children.values():
                proc.kill()
                proc.wait()
                os.close(fd)
    load = os.getloadavg()
    where = "back on Monitor after visiting every mode" if args.dwell else "on Monitor (no tour)"
    print(f"{args.runs} finished runs on disk; llmdeck {where}; "
          f"{wall:.1f} s window, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name in ("bare", "llmdeck"):
        print(f"{name:8}: {used[name]:6.3f} CPU s = {100 * used[name] / wall:5.2f}% of one core")
    extra = used["llmdeck"] - used["bare"]
    print(f"llmdeck - bare: {100 * extra / wall:+.2f}% of one core  (target: llmdeck under 1%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
