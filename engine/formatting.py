"""Plain-text renderings of sizes, runs and events, shared by the CLI and the TUI.

Sizes: llmdeck shows every byte count in binary units with IEC labels (KiB, MiB, GiB, TiB:
powers of 1024), the units the estimator, llama.cpp's logs, nvidia-smi and `ls -lh` use. Sizes
used to be divided by 1024 but labelled "MB"/"GB", 5-7% off what the label says; `format_bytes`
is now the one function that turns a byte count into text.
"""

from __future__ import annotations

import json
import time

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


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_text(progress: Progress | None) -> str:
    if progress is None:
        return ""
    if progress.total:
        return f"{progress.phase} {progress.done:g}/{progress.total:g} ({100 * progress.fraction:.0f}%)".strip()
    return f"{progress.phase} {progress.done:g}".strip()


def describe_event(event: JobEvent) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
    match event:
        case Progress():
            return f"{stamp} progress {progress_text(event)}"
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
