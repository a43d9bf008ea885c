"""Runs engine jobs in Textual thread workers and turns their events into Messages.

Engine events cross into the UI only as Messages posted to the widget that started the job
(post_message is thread-safe and non-blocking). Consecutive Progress messages for the same job
replace each other in the queue (`can_replace`), so a fast job never floods the UI.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, get_current_worker

from engine.events import JobEvent, Progress
from engine.jobs import JobContext, JobFunction, execute


class JobEventMessage(Message):
    """An engine event from job `job_id`, delivered on the UI thread."""

    def __init__(self, job_id: str, event: JobEvent) -> None:
        super().__init__()
        self.job_id = job_id
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, JobEventMessage)
            and message.job_id == self.job_id
            and isinstance(self.event, Progress)
            and isinstance(message.event, Progress)
            and message.event.phase == self.event.phase
        )


def run_job_in_worker(
    node: Widget,
    job: JobFunction,
    spec: dict[str, Any],
    *,
    job_id: str,
    group: str = "jobs",
    exclusive: bool = False,
    description: str = "",
) -> Worker[JobEvent]:
    """Start `job(spec, ctx)` in a thread worker owned by `node`; events go to `node`.

    Cancelling the worker (worker.cancel(), or the node being removed) sets the job's cancel
    flag, so the job stops cooperatively.
    """

    def work() -> JobEvent:
        worker = get_current_worker()
        ctx = JobContext(lambda ev: node.post_message(JobEventMessage(job_id, ev)), worker.cancelled_event, job_id=job_id)
        return execute(job, spec, ctx)

    return node.run_worker(
        work, name=job_id, group=group, exclusive=exclusive, thread=True, exit_on_error=False, description=description or job_id
    )
