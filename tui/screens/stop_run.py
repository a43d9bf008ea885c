"""The one stop-run dialog: what it says depends on the kind of run (a training run saves a
checkpoint first, a server drops its clients), not on the screen that asked."""

from __future__ import annotations

from dataclasses import dataclass

from engine.runs import RunInfo
from tui.screens.confirm import ConfirmModal


@dataclass(frozen=True)
class StopWording:
    title: str
    body: str
    button: str
    done: str
    """The notification once the cancel is sent."""
    keep: str = "Keep running"
    """The other button: what declining does."""


def stop_wording(run: RunInfo, where: str = "") -> StopWording:
    label = run.label
    if run.kind in ("train", "train.demo"):
        return StopWording("Stop run?", f"{label} saves a checkpoint and ends `cancelled`; r resumes it.", "Stop run",
                           f"stopping {label}: it saves a checkpoint, then ends")
    if run.kind == "serve":
        return StopWording("Stop server?", f"{label} at {where or '(still starting)'}\n\nIn-flight requests get a few "
                           "seconds to finish; clients then get connection errors.", "Stop server", f"stopping {label}",
                           "Keep serving")
    if run.kind.startswith("convert."):
        return StopWording("Stop conversion?", f"{label} stops; its partial output is removed.", "Stop conversion",
                           "stop requested; the partial output is removed")
    return StopWording("Stop run?", f"{label} ({run.kind}) will stop cooperatively and end `cancelled`.",
                       "Stop run", f"stop sent to {label}")


class StopRunModal(ConfirmModal):
    """Asks whether to stop `run`; dismisses with True to stop it."""

    def __init__(self, run: RunInfo, where: str = "") -> None:
        wording = stop_wording(run, where)
        super().__init__(wording.title, wording.body, wording.button, wording.keep)
        self.run = run
