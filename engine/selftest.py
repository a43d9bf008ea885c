"""A self-test run: counts steps with a pause, reporting progress and a metric.

`llmdeck runs selftest` starts it to check, on a new box, that detached runs work end to end:
start one, close the SSH session, reconnect and see it finished. Tests use it for the same
reason: it exercises the whole run machinery without loading a model.
"""

from __future__ import annotations

import math
from typing import Any

from engine.jobs import JobContext, JobError


def count(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    steps = int(spec.get("steps", 10))
    delay = float(spec.get("delay", 0.5))
    fail_at = spec.get("fail_at")
    ctx.log(f"counting to {steps}, {delay:g} s a step")
    for step in range(1, steps + 1):
        if not ctx.wait(delay):
            ctx.log(f"cancel seen at step {step}; stopping cleanly")
            return {"stopped_at": step}
        if fail_at is not None and step == int(fail_at):
            raise JobError(f"selftest asked to fail at step {step}")
        ctx.metric(step, value=math.exp(-step / max(1, steps)))
        ctx.progress(step, steps, "counting", unit="steps")
    ctx.log("done")
    return {"steps": steps}
