"""Where the TUI makes a user wait (issue 17, item 12), side by side: this checkout against another
git revision (default `main`, exported with `git archive` into a temporary folder), each child a
fresh interpreter with PYTHONPATH on its tree, alternating so machine noise hits both alike.

  preflight  Convert's pre-flight (`engine.convert.preflight.check`) of the bundled Gemma GGUF,
             quantize and gguf-to-hf, in a fresh process: the first verdict (where the tree has a
             staged check, `exact=False` as the Convert screen asks it: a quantize's size
             estimated from the header), the time until the exact verdict is in (for a quantize,
             llama.cpp's dry run), then a check after an output edit. Target: under 1 s.
  progress   a quantize run (RunStore.start, the detached worker): seconds from the start to its
             first progress event in events.jsonl. Target: within 2 s.
  quit       the app in an 80x24 pseudo-terminal, after a tour of every mode (Chat loads the
             model), back on Monitor: seconds from the `q` key to the process' exit. Target: 0.5 s.
  switch     mode switches (`switch_mode`, then the next refresh) in an 80x24 pseudo-terminal,
             every mode `--rounds` times, while training runs (a tiny Llama, LoRA) keep both cores
             busy: p50/p95/max. Target: p95 under 150 ms.

    python bench/latency.py [--before main] [--reps 3] [--only preflight,progress,quit,switch]

Prints one line per figure: before, after, ratio, and the machine load (os.getloadavg).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PREFLIGHT = r"""
import inspect, json, sys, time
from engine.convert.preflight import check
gguf, out = sys.argv[1], sys.argv[2]
staged = "exact" in inspect.signature(check).parameters  # the first verdict, as the Convert screen asks it
first_check = (lambda spec: check(spec, exact=False)) if staged else check
result = {}
for action, extra in (("quantize", {"qtype": "Q8_0", "allow_requantize": True}), ("gguf-to-hf", {})):
    spec = {"action": action, "input": gguf, "output": f"{out}/{action}-a", **extra}
    start = time.perf_counter(); first_check(spec); first = time.perf_counter() - start
    check(spec); exact = time.perf_counter() - start
    spec["output"] = f"{out}/{action}-b"
    start = time.perf_counter(); first_check(spec); again = time.perf_counter() - start
    result[action] = [first, again, exact]
print(json.dumps(result))
"""

PROGRESS = r"""
import json, sys, time
from pathlib import Path
from engine.runs import RunStore
gguf, out = sys.argv[1], sys.argv[2]
store = RunStore()
start = time.perf_counter()
run = store.start("convert.quantize", {"input": gguf, "output": f"{out}/q8.gguf", "qtype": "Q8_0",
                                       "allow_requantize": True})
events = run.dir / "events.jsonl"
first = None
while time.perf_counter() - start < 120:
    if events.exists() and any(json.loads(line).get("type") == "progress"
                               for line in events.read_text().splitlines() if line.strip()):
        first = time.perf_counter() - start
        break
    time.sleep(0.02)
store.cancel(run.id)
deadline = time.time() + 30
while store.get(run.id).active and time.time() < deadline:
    time.sleep(0.1)
print(json.dumps({"first_progress": first}))
"""

APP = r"""
import asyncio, json, sys, time
marker, what, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
from tui.app import LLMDeckApp
from tui.modes import MODES

class Probe(LLMDeckApp):
    def on_ready(self):
        self.run_worker(self.script(), exclusive=True)

    async def refreshed(self):
        done = asyncio.get_running_loop().create_future()
        self.call_after_refresh(lambda: done.done() or done.set_result(None))
        await done

    async def script(self):
        keys = [m.key for m in MODES]
        for key in keys:  # every screen built once (Chat starts loading its model)
            await self.switch_mode(key)
            await self.refreshed()
            await asyncio.sleep(1.0)
        await self.switch_mode("monitor")
        await asyncio.sleep(2.0)
        if what == "quit":
            with open(marker, "w") as f:
                f.write("ready")
            return
        times = []
        for _ in range(rounds):
            for key in keys[1:] + keys[:1]:
                start = time.perf_counter()
                await self.switch_mode(key)
                await self.refreshed()
                times.append([key, time.perf_counter() - start])
                await asyncio.sleep(0.25)  # a user reads the screen before the next key
        with open(marker, "w") as f:
            json.dump(times, f)
        self.exit()

import tui.app
tui.app.LLMDeckApp = Probe  # started the way `llmdeck` starts it (tui.cli), exit included
from tui.cli import main
sys.exit(main([]))
"""


def export_tree(ref: str, where: Path) -> Path:
    """The revision's files (tracked only), to import it as it was."""
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def env_for(tree: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "LLMDECK_HOME": str(home), "TERM": "xterm-256color"}


def child_json(tree: Path, home: Path, script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], env=env_for(tree, home), cwd=tree,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def terminal_app(tree: Path, home: Path, what: str, rounds: int = 0) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """The app in an 80x24 pseudo-terminal (its output drained); yields (process, pty master, marker)."""
    folder = Path(tempfile.mkdtemp(prefix="llmdeck-latency-"))
    marker = folder / "marker"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    threading.Thread(target=_drain, args=(master,), daemon=True).start()
    proc = subprocess.Popen([sys.executable, "-c", APP, str(marker), what, str(rounds)], stdin=slave, stdout=slave,
                            stderr=slave, env=env_for(tree, home), cwd=tree, start_new_session=True)
    os.close(slave)
    try:
        yield proc, master, marker
    finally:
        proc.kill()
        proc.wait()
        with contextlib.suppress(OSError):
            os.close(master)
        shutil.rmtree(folder, ignore_errors=True)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass


def wait_for(path: Path, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the app ended or hung before {path.name} (exit {proc.poll()})")
        time.sleep(0.05)
    time.sleep(0.1)


def quit_seconds(tree: Path, home: Path) -> float:
    with terminal_app(tree, home, "quit") as (proc, master, marker):
        wait_for(marker, proc, 120)
        start = time.perf_counter()
        os.write(master, b"q")
        proc.wait(60)
        return time.perf_counter() - start


def switch_times(tree: Path, home: Path, rounds: int) -> list[tuple[str, float]]:
    """(mode, seconds) of each switch."""
    with terminal_app(tree, home, "switch", rounds) as (proc, _master, marker):
        wait_for(marker, proc, 600)
        proc.wait(60)
        return [(key, seconds) for key, seconds in json.loads(marker.read_text())]


@contextlib.contextmanager
def training_load(home: Path, runs: int = 2) -> Iterator[list[int]]:
    """`runs` real training runs (a tiny random Llama, LoRA, CPU) in `home`, stopped on exit."""
    os.environ["LLMDECK_HOME"] = str(home)
    from engine.runs import RunStore
    from engine.train import launch
    from engine.train.spec import TrainSpec
    from tests.helpers.tiny_model import cached_tiny_llama

    store = RunStore(home / "data" / "runs")
    spec = TrainSpec(model=str(cached_tiny_llama()), dataset=str(ROOT / "engine" / "train" / "demo_data.jsonl"),
                     method="lora", max_steps=100_000, batch_size=8, max_seq_len=128, cpu=True, eval_steps=0)
    started = [launch.start(spec, store) for _ in range(runs)]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not all(
                any(e.get("type") == "metric" for e in _events(store, run.id)) for run in started):
            time.sleep(0.5)
        yield [store.get(run.id).pid or 0 for run in started]
    finally:
        for run in started:
            with contextlib.suppress(Exception):
                store.cancel(run.id)


def _events(store, run_id: str) -> list[dict]:
    path = store.get(run_id).events_path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cpu_of(pids: list[int], seconds: float) -> float:
    """Cores the processes (and their children) used over `seconds`."""
    import psutil

    def total() -> float:
        used = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                for p in [proc, *proc.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        t = p.cpu_times()
                        used += t.user + t.system
        return used

    before = total()
    time.sleep(seconds)
    return (total() - before) / seconds


def line(what: str, before: float, after: float, unit: str = "s", target: str = "") -> None:
    ratio = before / after if after else float("inf")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{what:52} before {before:8.3f} {unit}  after {after:8.3f} {unit}  ({ratio:5.1f}x faster)"
          f"  {target}  [load {load}]", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4, help="switch: times through every mode")
    parser.add_argument("--only", default="preflight,progress,quit,switch")
    parser.add_argument("--no-load", action="store_true", help="switch: without the training runs")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="llmdeck-latency-"))
    trees = {"before": export_tree(args.before, work / "before"), "after": ROOT}
    from engine.chat.default_model import default_model_path

    gguf = str(default_model_path())
    print(f"before = {args.before} ({trees['before']}), after = {ROOT}; model {gguf}; {os.cpu_count()} cores",
          flush=True)
    try:
        if "preflight" in wanted:
            got: dict[str, dict[str, list[list[float]]]] = {"before": {}, "after": {}}
            for _ in range(args.reps):
                for side, tree in trees.items():
                    out = work / f"out-{side}"
                    out.mkdir(exist_ok=True)
                    for action, pair in child_json(tree, work / f"home-{side}", PREFLIGHT, gguf, str(out)).items():
                        got[side].setdefault(action, []).append(pair)
            for action in got["after"]:
                for n, label in ((0, "first verdict"), (2, "exact verdict in"), (1, "after an output edit")):
                    line(f"pre-flight {action}, {label} (median)",
                         statistics.median(p[n] for p in got["before"][action]),
                         statistics.median(p[n] for p in got["after"][action]), target="target < 1 s")
        if "progress" in wanted:
            firsts: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(args.reps):
                for side, tree in trees.items():
                    out = work / f"out-{side}"
                    out.mkdir(exist_ok=True)
                    found = child_json(tree, work / f"home-{side}", PROGRESS, gguf, str(out))["first_progress"]
                    firsts[side].append(found if found is not None else float("nan"))
            line("quantize: start -> first progress (median)", statistics.median(firsts["before"]),
                 statistics.median(firsts["after"]), target="target < 2 s")
        if "quit" in wanted:
            quits: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(args.reps):
                for side, tree in trees.items():
                    quits[side].append(quit_seconds(tree, work / f"home-{side}"))
            line("quit after a tour of every mode (median)", statistics.median(quits["before"]),
                 statistics.median(quits["after"]), target="target < 0.5 s")
            print(f"   quit runs: before {[round(q, 2) for q in quits['before']]}, "
                  f"after {[round(q, 2) for q in quits['after']]}")
        if "switch" in wanted:
            home = work / "home-load"
            with contextlib.nullcontext([]) if args.no_load else training_load(home) as pids:
                print(f"   training load: {cpu_of(pids, 3.0):.2f} cores busy ({len(pids)} runs)", flush=True)
                by_mode: dict[str, list[tuple[str, float]]] = {"before": [], "after": []}
                for _ in range(max(1, args.reps // 2)):
                    for side, tree in trees.items():
                        by_mode[side] += switch_times(tree, home, args.rounds)
                print(f"   training load at the end: {cpu_of(pids, 3.0):.2f} cores busy", flush=True)
            times = {side: [seconds for _key, seconds in pairs] for side, pairs in by_mode.items()}
            for side, pairs in by_mode.items():
                modes = sorted({key for key, _ in pairs})
                medians = {key: statistics.median(s for k, s in pairs if k == key) * 1000 for key in modes}
                print(f"   {side}: median ms per mode: " + ", ".join(f"{k} {v:.0f}" for k, v in medians.items()))
            for label, pick in (("p50", 0.50), ("p95", 0.95)):
                line(f"mode switch under training load, {label}", quantile(times["before"], pick) * 1000,
                     quantile(times["after"], pick) * 1000, unit="ms", target="target p95 < 150 ms")
            line("mode switch under training load, max", max(times["before"]) * 1000, max(times["after"]) * 1000,
                 unit="ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if __name__ == "__main__":
    main()
