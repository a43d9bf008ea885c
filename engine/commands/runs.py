"""`llmdeck runs list|show|follow|cancel|delete|start|selftest`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from engine.formatting import describe_event, format_duration, progress_text
from engine.runs import RunInfo, RunStore

EXAMPLES = (
    "llmdeck runs list                 every run with status, progress and age",
    "llmdeck runs show 20261128-0930   one run: spec, status, last progress, log tail",
    "llmdeck runs follow 20261128-0930 replay a run's events, then stream live ones",
    "llmdeck runs cancel 20261128-0930 ask a run to stop (it saves and ends `cancelled`)",
    "llmdeck runs selftest --steps 20  a harmless run that checks detached runs work here",
    "llmdeck runs start selftest --spec '{\"steps\": 3}'   start a run of any kind from its JSON spec",
)


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="list, inspect, follow and cancel detached runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    p = runs_sub.add_parser("list", help="every run, newest first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--active", action="store_true", help="only starting, pending (queued) and running runs")
    p.set_defaults(func=cmd_list)

    p = runs_sub.add_parser("show", help="one run in detail")
    p.add_argument("run", help="run id, unique id prefix, or name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--log-lines", type=int, default=20)
    p.set_defaults(func=cmd_show)

    p = runs_sub.add_parser("follow", help="print a run's events from the start, then live until it ends")
    p.add_argument("run")
    p.add_argument("--json", action="store_true", help="print raw JSON events")
    p.set_defaults(func=cmd_follow)

    p = runs_sub.add_parser("cancel", help="stop a run (cooperatively; --force kills it)")
    p.add_argument("run")
    p.add_argument("--force", action="store_true", help="SIGKILL the worker's process group now")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait for the run to end")
    p.set_defaults(func=cmd_cancel)

    p = runs_sub.add_parser("delete", help="remove a finished run's folder")
    p.add_argument("run")
    p.set_defaults(func=cmd_delete)

    p = runs_sub.add_parser("start", help="start a run of any kind from its JSON spec (kinds: engine/kinds.py)")
    p.add_argument("kind", help="the run kind, e.g. selftest, convert.quantize, eval.ppl")
    p.add_argument("--spec", default="{}", metavar="JSON", help="the job's spec: a JSON object, or @FILE holding one")
    p.add_argument("--name", default="", help="a name to find the run by")
    p.add_argument("--follow", action="store_true", help="stay attached and print its events")
    p.set_defaults(func=cmd_start)

    p = runs_sub.add_parser("selftest", help="start a harmless counting run (checks detached runs work)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--delay", type=float, default=0.5)
    p.add_argument("--follow", action="store_true", help="stay attached and print its events")
    p.set_defaults(func=cmd_selftest)


def _row(store: RunStore, info: RunInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "kind": info.kind,
        "status": info.status,
        "progress": progress_text(store.last_progress(info.id), status=info.status),
        "elapsed_s": round(info.elapsed(), 1),
        "created": info.created,
        "exit_reason": info.exit_reason,
        "status_detail": info.status_detail,
    }


def cmd_list(args: argparse.Namespace) -> int:
    store = RunStore()
    runs = [r for r in store.list() if r.active or not args.active]
    rows = [_row(store, r) for r in runs]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print(f"no active runs in {store.root}" if args.active else f"no runs in {store.root}")
        return 0
    print(f"{'ID':34} {'KIND':14} {'STATUS':10} {'ELAPSED':>8}  PROGRESS")
    for row in rows:
        shown = row["exit_reason"] if row["status"] == "damaged" else (row["progress"] or row["status_detail"])
        print(f"{row['id']:34} {row['kind']:14} {row['status']:10} {format_duration(row['elapsed_s']):>8}  {shown}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = RunStore()
    info = store.get(args.run)
    from engine.train.launch import nodes_of

    nodes = nodes_of(info)
    row = _row(store, info) | {"spec": info.spec, "pid": info.pid, "dir": str(info.dir), "scheduler": info.scheduler,
                               "nodes": [n.to_dict() for n in nodes]}
    if args.json:
        json.dump(row | {"log_tail": store.log_tail(info.id, args.log_lines)}, sys.stdout, indent=2, default=str)
        print()
        return 0
    for key in ("id", "name", "kind", "status", "progress", "pid", "dir"):
        print(f"{key:>9}: {row[key]}")
    print(f"{'elapsed':>9}: {format_duration(row['elapsed_s'])}")
    if info.status_detail:
        print(f"{'now':>9}: {info.status_detail}")
    if info.scheduler:
        print(f"{'job':>9}: {info.scheduler.get('type')} {info.scheduler.get('job_id')} "
              f"(script {info.scheduler.get('script', '-')})")
    if info.exit_reason:
        print(f"{'reason':>9}: {info.exit_reason}")
    for number, node in enumerate(nodes):
        print(f"{'nodes' if number == 0 else '':>9}: {node.describe()}")
    print(f"{'spec':>9}: {json.dumps(info.spec)}")
    tail = store.log_tail(info.id, args.log_lines)
    if tail:
        print("log:")
        for line in tail:
            print(f"  {line}")
    return 0


def cmd_follow(args: argparse.Namespace) -> int:
    store = RunStore()
    info = store.get(args.run)
    for event in store.follow(info.id):
        print(json.dumps(event.to_dict(), default=str) if args.json else describe_event(event), flush=True)
    final = store.get(info.id)
    _report_bad_lines(store, info)
    if not args.json:
        print(f"run {final.id}: {final.status}" + (f" ({final.exit_reason})" if final.exit_reason else ""))
    return 0 if final.status == "succeeded" else 1


def _report_bad_lines(store: RunStore, info: RunInfo) -> None:
    bad = store.bad_event_lines(info.id)
    if bad:
        print(f"llmdeck: {info.events_path}: skipped {bad} line(s) that are not valid events", file=sys.stderr)


def cmd_cancel(args: argparse.Namespace) -> int:
    store = RunStore()
    info = store.cancel(args.run, force=args.force)
    deadline = time.monotonic() + args.wait
    while info.active and time.monotonic() < deadline:
        time.sleep(0.1)
        info = store.get(info.id)
    print(f"run {info.id}: {'cancel requested' if info.active else info.status}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    store = RunStore()
    info = store.get(args.run)
    store.delete(info.id)
    print(f"deleted run {info.id}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """Any registered kind, with the spec its job reads: the way to run a new kind before it has
    a command or a screen of its own."""
    from engine.commands.outcome import CommandError

    text, where = args.spec, "--spec"
    if text.startswith("@"):
        where = text[1:]
        try:
            text = Path(where).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read the spec file {where}: {exc.strerror}") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{where} is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise CommandError(f"{where} must be a JSON object (the job's spec)")
    store = RunStore()
    info = store.start(args.kind, spec, name=args.name)
    print(f"started {info.kind} run {info.id} (pid {info.pid}); `llmdeck runs follow {info.id}` to watch it")
    if args.follow:
        return cmd_follow(argparse.Namespace(run=info.id, json=False))
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    store = RunStore()
    info = store.start("selftest", {"steps": args.steps, "delay": args.delay}, name="selftest")
    print(f"started run {info.id} (pid {info.pid}); `llmdeck runs follow {info.id}` to watch it")
    if args.follow:
        return cmd_follow(argparse.Namespace(run=info.id, json=False))
    return 0
