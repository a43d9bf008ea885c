"""Runs handed to a batch scheduler: their liveness and their cancel ask the scheduler.

A run whose job was submitted to SLURM records `scheduler = {"type": "slurm", "job_id": ...,
"result_file": ...}` in its run.json (engine.runs). While its worker lives, the worker follows
the job and keeps the run's status; when the worker is gone (killed, the login node rebooted),
`observe` is what engine.runs asks instead of declaring the run lost: the job may well still be
queued or training, and its end is SLURM's to tell. `result_file` is where the job's rank 0
writes its own verdict ({"ok": ..., "message": ...}): a job SLURM calls COMPLETED whose training
failed, or that left no result, is a failed run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from engine.cluster import slurm

_CACHE_S = 5.0  # the Runs view polls every run often; SLURM is asked at most this often per job
_seen: dict[str, tuple[float, tuple[str, str]]] = {}


class SchedulerUnavailable(RuntimeError):
    """The scheduler cannot be asked now (its commands are missing, or its controller is down)."""


def observe(record: dict[str, Any]) -> tuple[str, str]:
    """(run status, one-line detail) of a scheduled run, as its scheduler tells it now."""
    kind, job_id = record.get("type"), str(record.get("job_id", ""))
    if kind != "slurm" or not job_id:
        raise SchedulerUnavailable(f"unknown scheduler record {record!r}")
    cached = _seen.get(job_id)
    if cached and time.monotonic() - cached[0] < _CACHE_S:
        return cached[1]
    try:
        state = slurm.query(job_id)
    except slurm.SlurmError as exc:
        raise SchedulerUnavailable(str(exc)) from None
    if state is None:
        seen = ("lost", f"SLURM no longer knows job {job_id} (it ended long ago and job accounting is off)")
    else:
        seen = with_result(slurm.run_status(state), record.get("result_file"))
    _seen[job_id] = (time.monotonic(), seen)
    return seen


def with_result(seen: tuple[str, str], result_file: str | None) -> tuple[str, str]:
    """A COMPLETED job is a succeeded run only if its rank 0 says the training succeeded."""
    status, detail = seen
    if status != "succeeded" or not result_file:
        return seen
    try:
        result = json.loads(Path(result_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "failed", f"{detail}, but the training left no result ({result_file})"
    if not result.get("ok"):
        return "failed", str(result.get("message") or "the training failed")
    return seen


def cancel(record: dict[str, Any]) -> None:
    """Cancel the scheduled job (scancel)."""
    if record.get("type") != "slurm":
        raise SchedulerUnavailable(f"unknown scheduler record {record!r}")
    try:
        slurm.cancel(str(record["job_id"]))
    except slurm.SlurmError as exc:
        raise SchedulerUnavailable(str(exc)) from None
    _seen.pop(str(record["job_id"]), None)
