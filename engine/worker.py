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
from pathlib import Path

from engine.events import Cancelled, Failed, Finished, JobEvent, Log
from engine.jobs import JobContext, execute
from engine.kinds import UnknownKind, resolve
from engine.runs import RunStore, _pid_identity


class EventSink:
    """Appends events as JSON lines; thread-safe because jobs may emit from helper threads."""

    def __init__(self, events_path: Path, log_path: Path) -> None:
        self._events = open(events_path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def __call__(self, event: JobEvent) -> None:
        line = json.dumps(event.to_dict(), default=str)
        with self._lock:
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
    store.update(info.id, status="running", pid=os.getpid(), pid_started=_pid_identity(os.getpid()), started=time.time())
    sink = EventSink(info.events_path, info.log_path)
    ctx = JobContext(sink, cancel, job_id=info.id)
    try:
        try:
            job = resolve(info.kind, info.entry)
        except UnknownKind as exc:
            event: JobEvent = Failed(message=str(exc))
            sink(event)
        else:
            event = execute(job, info.spec, ctx)
    except BaseException as exc:  # the worker itself broke: still record an end
        event = Failed(message=f"worker error: {exc}", detail=traceback.format_exc())
        sink(event)
    finally:
        sink.close()
    if isinstance(event, Finished):
        status, reason = "succeeded", ""
    elif isinstance(event, Cancelled):
        status, reason = "cancelled", event.reason
    else:
        status, reason = "failed", getattr(event, "message", "")
    store.update(info.id, status=status, ended=time.time(), exit_reason=reason)
    return 0 if status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
