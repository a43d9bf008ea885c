"""`llmdeck monitor`: the Monitor mode in the TUI, or one-shot / watch output for scripts."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

EXAMPLES = (
    "llmdeck monitor                   GPUs, VRAM, processes and the host, live (the default mode)",
    "llmdeck monitor --once --json     one sample as JSON (schema in the README)",
    "llmdeck monitor --watch           one compact line per GPU every interval (for scripts)",
    "llmdeck monitor --record m.jsonl  record samples while watching; --replay m.jsonl plays them back",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="GPU/VRAM, processes and host monitor (opens the TUI unless --once/--watch)",
        description="Watch NVIDIA GPUs (NVML) and the host. Without --once or --watch it opens the TUI "
        "in Monitor mode. With no GPU or driver it shows the host and says why there is no GPU panel.",
    )
    p.add_argument("--once", action="store_true", help="print one sample and exit")
    p.add_argument("--json", action="store_true", help="with --once or --watch: print JSON (one object a line)")
    p.add_argument("--watch", action="store_true", help="print a compact line per GPU every interval until Ctrl-C")
    p.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                   help="seconds between samples (default: settings, 1)")
    p.add_argument("--count", type=int, default=0, metavar="N", help="with --watch: stop after N samples")
    p.add_argument("--record", metavar="FILE", help="append every sample to FILE as JSON lines")
    p.add_argument("--replay", metavar="FILE",
                   help="play samples from a recording (or an NVML fixture) instead of the hardware")
    p.set_defaults(func=cmd_monitor)


def _settings() -> Any:
    from engine.settings import load_for_command

    return load_for_command().monitor


def _check_paths(args: argparse.Namespace) -> None:
    from engine.commands.outcome import CommandError

    if args.replay and not Path(args.replay).is_file():
        raise CommandError(f"replay file {args.replay} does not exist")
    if args.record:
        parent = Path(args.record).expanduser().resolve().parent
        if not parent.is_dir():
            raise CommandError(f"cannot record to {args.record}: folder {parent} does not exist")
    if args.interval is not None and not (0 < args.interval <= 86400):  # also refuses inf and nan
        raise CommandError("--interval must be a number of seconds > 0 (at most 86400)")
    if args.json and not (args.once or args.watch):
        raise CommandError("--json goes with --once or --watch (the TUI has no JSON output)")


def cmd_monitor(args: argparse.Namespace) -> Any:
    from engine.commands.outcome import CommandError, OpenTUI

    _check_paths(args)
    if not (args.once or args.watch):
        return OpenTUI(
            mode="monitor",
            options={
                "replay": str(Path(args.replay).resolve()) if args.replay else None,
                "record": str(Path(args.record).expanduser().resolve()) if args.record else None,
            },
        )
    from engine.monitor.record import Recorder, ReplayError
    from engine.monitor.sampler_thread import make_source

    cfg = _settings()
    interval = args.interval or cfg.interval
    try:
        source = make_source(replay=args.replay, slow_interval=cfg.slow_interval, stall_seconds=cfg.stall_seconds)
    except ReplayError as exc:
        raise CommandError(str(exc)) from None
    recorder = Recorder(args.record) if args.record else None
    try:
        if args.once:
            sample = source.sample()
            if not args.replay:
                # CPU percentages (host and per process) are "since the last reading": the first
                # reading only primes them, so take a second one a moment later.
                time.sleep(0.25)
                sample = source.sample()
            if recorder:
                recorder.write(sample)
            if args.json:
                json.dump(sample.to_dict(), sys.stdout, indent=2)
                print()
            else:
                _print_lines(sample)
            return 0
        count = 0
        while True:
            began = time.monotonic()
            sample = source.sample()
            if recorder:
                recorder.write(sample)
            if args.json:
                print(json.dumps(sample.to_dict(), separators=(",", ":")), flush=True)
            else:
                _print_lines(sample)
            count += 1
            if args.count and count >= args.count:
                return 0
            if getattr(source, "finished", False):
                return 0
            time.sleep(max(0.0, interval - (time.monotonic() - began)))
    except KeyboardInterrupt:
        return 0
    finally:
        source.close()
        if recorder:
            recorder.close()


def _print_lines(sample: Any) -> None:
    from engine.monitor.format import gpu_line, host_line

    stamp = time.strftime("%H:%M:%S", time.localtime(sample.time)) if sample.time > 1e9 else f"t={sample.time:g}"
    if sample.gpu_status:
        print(f"{stamp}  {sample.gpu_status}", file=sys.stderr, flush=True)
    for gpu in sample.gpus:
        procs = [p for p in sample.processes if p.gpu_index == gpu.index]
        print(f"{stamp}  {gpu_line(gpu, procs)}", flush=True)
    print(f"{stamp}  {host_line(sample.host)}", flush=True)
    for warning in sample.warnings:
        print(f"{stamp}  WARNING {warning}", flush=True)
