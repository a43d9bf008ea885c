"""A self-test run: counts steps with a pause, reporting progress and a metric.

`llmdeck runs selftest` starts it to check, on a new box, that detached runs work end to end:
start one, close the SSH session, reconnect and see it finished. Tests use it for the same
reason: it exercises the whole run machinery without loading a model. With an `output` path it
also writes a staged output, a line a step, renamed into place at the end, like a conversion.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import IO, Any

from engine.atomic import commit, staged
from engine.jobs import JobContext, JobError


def count(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    steps = int(spec.get("steps", 10))
    delay = float(spec.get("delay", 0.5))
    fail_at = spec.get("fail_at")
    output = Path(str(spec["output"])).expanduser() if spec.get("output") else None
    ctx.log(f"counting to {steps}, {delay:g} s a step")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(staged(output, directory=False)) if output else None
        sink: IO[str] | None = stack.enter_context(open(tmp, "w", encoding="utf-8")) if tmp else None
        for step in range(1, steps + 1):
            if not ctx.wait(delay):
                ctx.log(f"cancel seen at step {step}; stopping cleanly")
                return {"stopped_at": step}
            if fail_at is not None and step == int(fail_at):
                raise JobError(f"selftest asked to fail at step {step}")
            if sink is not None:
                sink.write(f"step {step}\n")
                sink.flush()
            ctx.metric(step, value=math.exp(-step / max(1, steps)))
            ctx.progress(step, steps, "counting", unit="steps")
        if sink is not None and tmp is not None and output is not None:
            sink.close()
            commit(tmp, output)
    ctx.log("done")
    return {"steps": steps} | ({"output": str(output)} if output else {})
