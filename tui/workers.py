"""The one way llmdeck does background work, and where its failures go.

Background work is a method of the widget or screen it belongs to, decorated with
`@work(thread=True, group="<plural noun>", exit_on_error=False, description="<what, -ing>")`
(add `exclusive=True` where a newer call makes an older one moot). It reports back only by
posting messages (`post_message` is thread-safe and never blocks); it never touches widgets.
An error it expects (a missing file, a bad model) it turns into a message of its own, with
the one line the user needs. Anything else it lets raise: the app's one handler
(`LLMDeckApp.on_worker_state_changed`) shows the one-line reason and logs the traceback.

Textual posts `Worker.StateChanged` to the node that started the worker and does not bubble
it further, so every node that starts workers mixes in `ReportsWorkerErrors`, which hands a
failure on to the app. A node that must also tidy up after its own failed worker (reset a
"loading…" line, say) adds its own `on_worker_state_changed`; both run.
"""

from __future__ import annotations

import traceback

from textual.dom import DOMNode
from textual.worker import Worker, WorkerState


class ReportsWorkerErrors:
    """Mixed into a Widget or Screen that starts workers (see the module docstring)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        node: DOMNode = self  # type: ignore[assignment]
        if event.state is WorkerState.ERROR and node.app is not node:
            node.app.post_message(Worker.StateChanged(event.worker, event.state))


def failure_line(worker: Worker) -> str:
    """What failed and why, in one line: the worker's description and the error's first line."""
    error = worker.error
    what = worker.description or worker.name or worker.group
    reason = str(error).strip().splitlines()[0] if error is not None and str(error).strip() else ""
    kind = type(error).__name__ if error is not None else "error"
    return f"{what}: {kind}: {reason}"[:300] if reason else f"{what}: {kind}"


def failure_details(worker: Worker) -> str:
    """The traceback of a failed worker, for the log."""
    error = worker.error
    if error is None:
        return "(no exception recorded)"
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
