"""The detached worker: `python -m engine.worker RUN_DIR` runs one run and records its end.

Started by `RunStore.launch` in its own session. It writes every event to events.jsonl (flushed
per line, so followers see it at once), mirrors Log lines and the failure traceback into
log.txt, turns SIGTERM into a cooperative cancel, and always writes a final status.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import atomic
from engine.events import Cancelled, Failed, Finished, JobEvent, Log, is_terminal
from engine.jobs import JobContext, execute
from engine.kinds import UnknownKind, job_for
from engine.runs import RunStore, RunTemps, _pid_identity


class EventSink:
    """Appends events as JSON lines; thread-safe because jobs may emit from helper threads.

    `before_terminal` runs before a terminal event (Finished/Failed/Cancelled) is written: the
    final status lands in run.json first, so anyone who has seen the run's last event can rely
    on its status being final.
    """

    def __init__(self, events_path: Path, log_path: Path, before_terminal: Callable[[JobEvent], None]) -> None:
        self._events = open(events_path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()
        self._before_terminal = before_terminal

    def __call__(self, event: JobEvent) -> None:
        line = json.dumps(event.to_dict(), default=str)
        with self._lock:
            if is_terminal(event):
                self._before_terminal(event)
            self._events.write(line + "\n")
            self._events.flush()
            if isinstance(event, Log):
                stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
                self._log.write(f"[{stamp}] {event.level.upper():5} {event.text}\n")
                self._log.flush()
            elif isinstance(event, Failed):
                self._log.write(f"FAILED: {event.message}\n{event.detail}\n")
                self._log.flush()

    def close(self) -> None:
        with self._lock:
            self._events.close()
            self._log.close()


def main(run_dir: str) -> int:
    path = Path(run_dir).resolve()
    store = RunStore(path.parent)
    info = store._read(path)
    cancel = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    pid = os.getpid()
    store.update(info.id, status="running", pid=pid, pid_started=_pid_identity(pid), started=time.time())
    atomic.use_ledger(RunTemps(store, info.id))  # temporary outputs are listed in run.json first
    outcome: list[str] = []

    def record_end(event: JobEvent) -> None:
        if isinstance(event, Finished):
            status, reason = "succeeded", ""
        elif isinstance(event, Cancelled):
            status, reason = "cancelled", event.reason
        else:
            status, reason = "failed", getattr(event, "message", "")
        store.update(info.id, status=status, ended=time.time(), exit_reason=reason, status_detail="")
        outcome.append(status)

    def record_scheduled(record: dict[str, Any], status: str, detail: str) -> None:
        store.update(info.id, scheduler=record, status=status, status_detail=detail)

    sink = EventSink(info.events_path, info.log_path, record_end)
    ctx = JobContext(sink, cancel, job_id=info.id, on_scheduled=record_scheduled)
    try:
        try:
            job = job_for(info.kind)
        except UnknownKind as exc:
            sink(Failed(message=str(exc)))
        else:
            execute(job, info.spec, ctx)
    except BaseException as exc:  # noqa: BLE001 - the worker itself broke: still record an end
        if not outcome:
            sink(Failed(message=f"worker error: {exc}", detail=traceback.format_exc()))
    finally:
        sink.close()
    return 0 if outcome and outcome[0] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
