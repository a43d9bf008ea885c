"""Plain-text renderings of sizes, runs and events, shared by the CLI and the TUI.

Sizes: llmdeck shows every byte count in binary units with IEC labels (KiB, MiB, GiB, TiB:
powers of 1024), the units the estimator, llama.cpp's logs, nvidia-smi and `ls -lh` use. Sizes
used to be divided by 1024 but labelled "MB"/"GB", 5-7% off what the label says; `format_bytes`
is now the one function that turns a byte count into text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from engine.events import Cancelled, Failed, Finished, JobEvent, Log, Metric, Progress

_BINARY_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: float, digits: int = 1, *, unit: str = "") -> str:
    """Bytes as text in binary units: 512 B, 3.0 KiB, 241.4 MiB, 1.2 GiB (negative sizes too).
    `unit` forces one ("GiB": columns that line up); 100 or more of it drop the decimals."""
    value = float(n)
    if unit:
        if unit not in _BINARY_UNITS:
            raise ValueError(f"unit must be one of {', '.join(_BINARY_UNITS)}")
        value /= 1024 ** (_BINARY_UNITS.index(unit) + 1)
        return f"{value:.{digits if abs(value) < 100 else 0}f} {unit}"
    if abs(value) < 1024:
        return f"{value:.0f} B"
    for name in _BINARY_UNITS:
        value /= 1024
        if abs(value) < 1024 or name == _BINARY_UNITS[-1]:
            return f"{value:.{digits}f} {name}"
    raise AssertionError("unreachable")
PROGRESS_METRICS = frozenset({"tensors_done", "tensors_total", "bytes_done", "bytes_total", "bytes_per_s", "eta_s"})
"""Metric keys that say how far a job is (engine.convert.common.TensorProgress), not how well it
does: they are read into the progress sentence, never listed as figures."""
STOPPED_STATUSES = ("failed", "cancelled", "lost", "damaged")
"""Run statuses of a run that ended without finishing its work."""


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _bytes_pair(done: float, total: float) -> str:
    """'3.1/7.0 GiB': both in the unit of the total, so the two numbers compare at a glance."""
    unit, scale = "B", 1.0
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if total < scale * 1024:
            break
        unit, scale = name, scale * 1024
    if unit == "B":
        return f"{done:.0f}/{total:.0f} B"
    return f"{done / scale:.1f}/{total / scale:.1f} {unit}"


def progress_text(progress: Progress | None, metrics: Mapping[str, float] | None = None, *, status: str = "") -> str:
    """How far a run is, in one line: the one describer of progress, for every list and view.

    `progress` alone: "counting 12/20 (60%)". With a conversion's byte metrics for the same
    tensors: "write 120/291 tensors · 3.1/7.0 GiB · 210 MiB/s · ETA 19s". For a run that
    ended without succeeding (`status`), where it stopped, with no percentage: a failed run is
    never shown as "100%" because its last phase completed.
    """
    if progress is None:
        return ""
    unit = f" {progress.unit}" if progress.unit and progress.unit not in ("step", "steps") else ""
    counted = f"{progress.done:g}/{progress.total:g}" if progress.total else f"{progress.done:g}"
    text = f"{progress.phase} {counted}{unit}".strip()
    if status in STOPPED_STATUSES:
        return f"stopped at {text}"
    m = metrics or {}
    same_tensors = m.get("tensors_done") == progress.done and m.get("tensors_total") == progress.total
    if m.get("bytes_total") and same_tensors:
        text += f" · {_bytes_pair(m.get('bytes_done', 0.0), m['bytes_total'])}"
        if m.get("bytes_per_s"):
            text += f" · {format_bytes(m['bytes_per_s'], 0)}/s"
        if m.get("eta_s") is not None and progress.total and progress.done < progress.total:
            text += f" · ETA {format_duration(m['eta_s'])}"
        return text
    if progress.total:
        text += f" ({100 * (progress.fraction or 0.0):.0f}%)"
    return text


def figures_text(values: Mapping[str, float], limit: int = 8) -> str:
    """A metric's figures (loss, lr...) as "name value" pairs; progress counters are left out."""
    shown = [(k, v) for k, v in values.items() if k not in PROGRESS_METRICS][:limit]
    return "  ".join(f"{k} {v:.4g}" for k, v in shown)


def describe_event(event: JobEvent) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
    match event:
        case Progress():
            return f"{stamp} progress {progress_text(event)}"
        case Metric(step=step, values=values) if values and set(values) <= PROGRESS_METRICS:
            done, total = values.get("tensors_done", 0.0), values.get("tensors_total", 0.0)
            moved = Progress(phase="", done=done, total=total or None, unit="tensors", at=event.at)
            return f"{stamp} {progress_text(moved, values)}"
        case Metric(step=step, values=values):
            shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
            return f"{stamp} step {step}: {shown}"
        case Log(text=text, level=level):
            return f"{stamp} {level}: {text}"
        case Finished(summary=summary):
            return f"{stamp} finished {json.dumps(summary, default=str)}"
        case Failed(message=message):
            return f"{stamp} FAILED: {message}"
        case Cancelled(reason=reason):
            return f"{stamp} cancelled: {reason}"
    return f"{stamp} {event.KIND}"
