"""The contract every job uses: a context to report through, a cancel flag, `execute`.

A job is a plain function `job(spec: dict, ctx: JobContext) -> dict | None`. It reports only
through `ctx` (so the same function runs in a TUI worker, a detached run process or a test with
`events.append`), checks `ctx.cancelled` between units of work, and returns a summary dict.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from engine.events import Cancelled, Failed, Finished, JobEvent, Log, Metric, Progress

Emit = Callable[[JobEvent], object]
JobFunction = Callable[[dict[str, Any], "JobContext"], "dict[str, Any] | None"]


class JobCancelled(Exception):
    """Raised inside a job (by `raise_if_cancelled`) to unwind after a cancel request."""


class JobError(Exception):
    """A failure the user can act on. Its text is shown as is; no traceback is shown."""


class JobContext:
    """Handed to every job: the only way a job talks to the outside world.

    Progress is throttled here, at the source, because every consumer (a Textual message queue,
    an events.jsonl file) is unbounded and a tight loop emitting per tensor would flood it.
    """

    def __init__(
        self,
        emit: Emit,
        cancel_event: threading.Event | None = None,
        *,
        min_interval: float = 0.1,
        job_id: str = "",
        on_scheduled: Callable[[dict[str, Any], str, str], object] | None = None,
    ) -> None:
        self._emit = emit
        self._on_scheduled = on_scheduled
        self.cancel_event = cancel_event or threading.Event()
        self.min_interval = min_interval
        self.job_id = job_id
        self._last_progress: dict[str, float] = {}
        self._pending: dict[str, Progress] = {}
        self._lock = threading.Lock()

    # -- reporting ---------------------------------------------------------------------------
    def emit(self, event: JobEvent) -> None:
        self._emit(event)

    def progress(
        self,
        done: float,
        total: float | None = None,
        phase: str = "",
        *,
        unit: str = "",
        force: bool = False,
    ) -> bool:
        """Emit a Progress unless one for this phase went out less than `min_interval` ago.

        The first and the last (done == total) update of a phase always go out, so a consumer
        never misses a phase starting or completing. Returns whether an event was emitted.
        """
        event = Progress(phase=phase, done=float(done), total=None if total is None else float(total), unit=unit)
        now = time.monotonic()
        with self._lock:
            last = self._last_progress.get(phase)
            complete = total is not None and done >= total
            if not (force or complete or last is None or now - last >= self.min_interval):
                self._pending[phase] = event
                return False
            self._last_progress[phase] = now
            self._pending.pop(phase, None)
        self._emit(event)
        return True

    def flush(self) -> None:
        """Emit the newest suppressed Progress of each phase, so the record ends where the
        job really stopped (called before the terminal event)."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for event in pending:
            self._emit(event)

    def log(self, text: str, level: str = "info") -> None:
        self._emit(Log(text=text, level=level))

    def metric(self, step: int, **values: float) -> None:
        self._emit(Metric(step=int(step), values={k: float(v) for k, v in values.items()}))

    def scheduled(self, record: dict[str, Any], status: str, detail: str = "") -> None:
        """The job's work runs in a batch scheduler (a SLURM job): the run records `record` (which
        scheduler, the job id) so liveness and cancel ask the scheduler once this worker is gone,
        and shows `status` ("pending" while queued, "running") with a one-line `detail`. Outside
        a detached run (a thread, a test) nothing records it."""
        if self._on_scheduled is not None:
            self._on_scheduled(record, status, detail)

    # -- cancellation ------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def cancel(self) -> None:
        self.cancel_event.set()

    def raise_if_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once on cancel. Returns False if cancelled."""
        return not self.cancel_event.wait(seconds)


def execute(job: JobFunction, spec: dict[str, Any], ctx: JobContext) -> JobEvent:
    """Run `job` and emit exactly one terminal event (Finished, Cancelled or Failed).

    Unexpected exceptions become a Failed event whose message names the exception and whose
    detail (the traceback) is meant for the log; nothing propagates to the caller.
    """
    try:
        summary = job(spec, ctx) or {}
        event: JobEvent
        if ctx.cancelled:
            event = Cancelled(reason="cancelled by request")
        else:
            event = Finished(summary=dict(summary))
    except JobCancelled:
        event = Cancelled(reason="cancelled by request")
    except JobError as exc:
        event = Failed(message=str(exc), detail=traceback.format_exc())
    except MemoryError:
        event = Failed(message="out of memory: the job needed more RAM than is free", detail=traceback.format_exc())
    except Exception as exc:  # noqa: BLE001 - the boundary that keeps tracebacks off the screen
        event = Failed(message=f"{type(exc).__name__}: {exc}", detail=traceback.format_exc())
    ctx.flush()
    ctx.emit(event)
    return event
