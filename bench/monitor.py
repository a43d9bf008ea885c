"""CPU cost of the idle Monitor screen at 1 s refresh, next to a bare Textual app.

Each case runs headless (`App.run_test`) in its own fresh Python process for `--seconds`
(default 30) after a short warm-up, and measures that process's CPU time
(`time.process_time`, so the sampler thread counts too). Cases:

  bare      a bare Textual app (Header, Static, Footer), idle
  bare1hz   the same app updating its Static once a second (the floor for any 1 s refresh)
  monitor   LLMDeckApp in Monitor mode, live sampling (NVML if there is a GPU, else host only)
  busy      Monitor mode replaying the fixture's busy H200 reading with values moving every tick
            and the training process staying put (the usual case while a run trains)
  replay    Monitor mode replaying the H200 fixture as is: idle and busy alternate, so the
            process row appears and vanishes every second (worst case: a relayout each tick)

It also times the live sampler's poll (`LiveSource.sample()`), the per-tick cost on this box,
and lists any NVML error met. Target: the Monitor under 2% of one core.

    python bench/monitor.py [--seconds 30] [--fixture PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURE = ROOT / "tests" / "fixtures" / "nvml_h200.json"  # ships with the repository


async def _measure(app, seconds: float, warmup: float) -> dict:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(warmup)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_s": cpu, "wall_s": wall, "percent_of_core": 100.0 * cpu / wall}


def run_case(case: str, seconds: float, warmup: float, fixture: str) -> dict:
    if case == "bare":
        from textual.app import App
        from textual.widgets import Footer, Header, Static

        class Bare(App):
            def compose(self):
                yield Header()
                yield Static("idle")
                yield Footer()

        return asyncio.run(_measure(Bare(), seconds, warmup))
    if case == "bare1hz":
        from textual.app import App
        from textual.widgets import Footer, Header, Static

        class Ticking(App):
            def compose(self):
                yield Header()
                yield Static("0", id="n")
                yield Footer()

            def on_mount(self) -> None:
                self.n = 0
                self.set_interval(1.0, self.tick)

            def tick(self) -> None:
                self.n += 1
                self.query_one("#n", Static).update(str(self.n))

        return asyncio.run(_measure(Ticking(), seconds, warmup))
    from engine.settings import Settings
    from tui.app import LLMDeckApp

    settings = Settings()
    settings.monitor.interval = 1.0
    options = {"replay": fixture} if case == "replay" else {"replay": busy_recording(fixture)} if case == "busy" else {}
    return asyncio.run(_measure(LLMDeckApp(settings=settings, start_mode="monitor", options=options), seconds, warmup))


def busy_recording(fixture: str, ticks: int = 120) -> str:
    """A recording of the fixture's busy H200 with the training process staying put and the
    changing values changing every tick (utilisation, power, temperature, SM%), as while training."""
    from dataclasses import replace

    from engine.monitor.record import Recorder, load_samples

    busy = load_samples(fixture)[-1]
    path = Path(tempfile.mkdtemp(prefix="llmdeck-bench-")) / "busy.jsonl"
    rec = Recorder(path)
    for t in range(ticks):
        wobble = (t * 7) % 11
        gpu = replace(busy.gpus[0], util_gpu=40 + wobble, power_w=290.0 + 3 * wobble, temperature=42 + wobble % 3)
        procs = tuple(replace(p, sm_util=50 + wobble) for p in busy.processes)
        rec.write(replace(busy, time=1000.0 + t, gpus=(gpu,), processes=procs))
    rec.close()
    return str(path)


def poll_cost(polls: int = 30) -> dict:
    from engine.monitor.sampler_thread import LiveSource

    began = time.perf_counter()
    source = LiveSource()
    opened = time.perf_counter() - began
    costs = []
    for _ in range(polls):
        t0 = time.perf_counter()
        source.sample()
        costs.append(time.perf_counter() - t0)
        time.sleep(0.02)
    errors = {f"gpu{g} {field}": kind for (g, field), kind in source.nvml.errors.items()}
    source.close()
    return {
        "open_ms": 1000 * opened,
        "poll_ms_mean": 1000 * statistics.mean(costs),
        "poll_ms_max": 1000 * max(costs),
        "gpus": source.nvml.gpu_count,
        "gpu_status": source.nvml.reason,
        "nvml_errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--fixture", default=str(DEFAULT_FIXTURE))
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        result = poll_cost() if args.case == "poll" else run_case(args.case, args.seconds, args.warmup, args.fixture)
        print(json.dumps(result))
        return 0
    cases = ["bare", "bare1hz", "monitor", "busy", "replay"]
    results = {}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LLMDECK_HOME": home, "PYTHONPATH": str(ROOT)}
        for case in [*cases, "poll"]:
            out = subprocess.run(
                [sys.executable, __file__, "--case", case, "--seconds", str(args.seconds), "--warmup", str(args.warmup),
                 "--fixture", args.fixture],
                capture_output=True, text=True, env=env, check=False,
            )
            if out.returncode != 0:
                print(f"{case}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                return 1
            results[case] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"idle CPU over {args.seconds:g} s, headless run_test, 1 s refresh, {os.cpu_count()} cores")
    print(f"{'case':10} {'CPU s':>8} {'% of one core':>14}")
    for case in cases:
        r = results[case]
        print(f"{case:10} {r['cpu_s']:8.3f} {r['percent_of_core']:13.2f}%")
    floor = 0.01  # % of a core; an idle bare app measures ~0, which would make any ratio infinite
    bare = max(results["bare"]["percent_of_core"], floor)
    ticking = max(results["bare1hz"]["percent_of_core"], floor)
    for case in cases[2:]:
        pct = results[case]["percent_of_core"]
        verdict = "OK" if pct < 2.0 else "OVER TARGET"
        print(
            f"{case}: {pct:.2f}% of one core = {pct / ticking:.1f}x bare-1Hz, {pct / bare:.0f}x bare-idle "
            f"(floored at {floor}%); target < 2%: {verdict}"
        )
    poll = results["poll"]
    print(
        f"live poll: {poll['poll_ms_mean']:.2f} ms mean, {poll['poll_ms_max']:.2f} ms max "
        f"(NVML open {poll['open_ms']:.1f} ms, {poll['gpus']} GPU(s)) {poll['gpu_status']}"
    )
    if poll["nvml_errors"]:
        print("NVML errors met (field -> kind): "
              + ", ".join(f"{k} -> {v}" for k, v in sorted(poll["nvml_errors"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
