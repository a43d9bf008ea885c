"""Pieces every conversion shares: the error type, per-tensor progress, staged output.

Why staged output: a conversion of a 70B model takes an hour; if it is cancelled, killed or its
verification fails, the user must never find a half-written model at the path they asked for.
So everything is written into a hidden sibling (`.NAME.tmp-XXXX`) and renamed into place in one
`os.replace` at the very end (`staged`/`commit`, from engine.atomic, which also lists the
temporary name in the run so that a killed worker's leftovers are removed).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.atomic import commit, staged  # noqa: F401 - the staged-output API conversions use
from engine.jobs import JobCancelled, JobContext, JobError


class ConvertError(JobError):
    """A conversion cannot go on; the text names the file and says what to do."""


class TensorProgress:
    """Per-tensor progress with bytes and ETA.

    Emits a throttled `Progress` (tensors done/total, unit "tensors") and, with it, a `Metric`
    carrying bytes done/total, throughput and the ETA, so a follower can print
    "write 120/291 tensors, 3.1/7.0 GiB, 210.0 MiB/s, ETA 19s". Checks for cancellation on every
    tensor, which keeps cancel latency under a second as long as one tensor takes less.
    """

    def __init__(self, ctx: JobContext, phase: str, total_tensors: int, total_bytes: int, *, interval: float = 0.25) -> None:
        self.ctx = ctx
        self.phase = phase
        self.total_tensors = max(0, int(total_tensors))
        self.total_bytes = max(0, int(total_bytes))
        self.done_tensors = 0
        self.done_bytes = 0
        self.started = time.monotonic()
        self.interval = interval
        self._last = 0.0
        self._step = 0
        ctx.progress(0, self.total_tensors, phase, unit="tensors", force=True)

    @property
    def eta_s(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if self.done_bytes <= 0 or elapsed <= 0:
            return None
        rate = self.done_bytes / elapsed
        return max(0.0, (self.total_bytes - self.done_bytes) / rate) if rate > 0 else None

    def advance(self, nbytes: int, tensors: int = 1) -> None:
        self.ctx.raise_if_cancelled()
        self.done_tensors += tensors
        self.done_bytes += int(nbytes)
        now = time.monotonic()
        final = self.done_tensors >= self.total_tensors
        if final or now - self._last >= self.interval:
            self._last = now
            self._step += 1
            elapsed = max(1e-9, now - self.started)
            values: dict[str, float] = {
                "tensors_done": self.done_tensors,
                "tensors_total": self.total_tensors,
                "bytes_done": self.done_bytes,
                "bytes_total": self.total_bytes,
                "bytes_per_s": self.done_bytes / elapsed,
            }
            eta = self.eta_s
            if eta is not None:
                values["eta_s"] = eta
            # the metric first, so a follower printing on Progress shows the matching bytes
            self.ctx.metric(self._step, **values)
            self.ctx.progress(self.done_tensors, self.total_tensors, self.phase, unit="tensors", force=True)


@contextlib.contextmanager
def interrupt_on_cancel(ctx: JobContext) -> Iterator[None]:
    """While active, a SIGTERM (how a detached run is cancelled) raises JobCancelled at once
    instead of only setting the flag a job polls.

    Why: a verification spends its time in library code (loading a tokenizer, a transformers
    model, llama.cpp) that never looks at the flag; polled only between its steps, a cancel
    took 40 s on the bundled Gemma. Python runs signal handlers between bytecodes, so raising
    from the handler interrupts that code within milliseconds (a single long C call still ends
    first). The staged output is removed on the way out as for any failure. Only in the main
    thread, where signal handlers run; elsewhere (a TUI worker thread) the polled checks remain.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        if callable(previous):
            previous(signum, frame)
        ctx.cancel()
        raise JobCancelled()

    signal.signal(signal.SIGTERM, handler)
    try:
        ctx.raise_if_cancelled()
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, turning every failure into a one-line message naming the file."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConvertError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f"{path} cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ConvertError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ConvertError(f"{path} should hold a JSON object, not {type(data).__name__}")
    return data
