"""Plain-text renderings of runs and events, shared by the CLI and the TUI."""

from __future__ import annotations

import json
import time

from engine.events import Cancelled, Failed, Finished, JobEvent, Log, Metric, Progress


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
