"""Test support: faults a training run injects into itself when its spec's `debug` asks for them.

The tests prove the NaN stop, the CUDA out-of-memory message and the kill -9 resume on a tiny
model on CPU, where none of those happens by itself. They ask through `TrainSpec.debug`
(`nan_at_step`, `oom_at_step`, `kill_at_step`; `step_pause_s` slows every step down, so a
test has time to act on a running multi-node run), which travels with the run to the detached
worker (and to every rank of a multi-process run), so the fault happens inside the real job.
The faults live in this callback of their own, added only when a fault is asked for, so the
production callback (`callbacks.RunCallback`) carries no test branches.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from transformers import TrainerCallback

FAULTS = ("nan_at_step", "oom_at_step", "kill_at_step")


def fault_callbacks(debug: dict[str, Any]) -> list[TrainerCallback]:
    """The fault callback when `debug` names a fault, else nothing."""
    wanted: dict[str, Any] = {name: int(debug[name]) for name in FAULTS if debug.get(name) is not None}
    if debug.get("step_pause_s"):
        wanted["step_pause_s"] = float(debug["step_pause_s"])
    return [FaultInjection(**wanted)] if wanted else []


class FaultInjection(TrainerCallback):
    """Breaks the run at a given step. Added after `RunCallback`, so at a save the checkpoint
    is sealed before the kill, as a real crash right after a save would leave it."""

    def __init__(
        self, *, nan_at_step: int | None = None, oom_at_step: int | None = None, kill_at_step: int | None = None,
        step_pause_s: float = 0.0,
    ) -> None:
        self.step_pause_s = step_pause_s
        self.nan_at_step = nan_at_step
        self.oom_at_step = oom_at_step
        self.kill_at_step = kill_at_step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001 - library signature
        import torch

        step = state.global_step
        model = kwargs.get("model")
        if step == self.nan_at_step and model is not None:
            with torch.no_grad():  # the next forward pass gives a NaN loss, as a diverging run would
                for param in model.parameters():
                    if param.requires_grad:
                        param.fill_(float("nan"))
                        break
        if step == self.oom_at_step:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected fault)")
        if self.step_pause_s:
            time.sleep(self.step_pause_s)
        return control

    def on_save(self, args, state, control, **kwargs):  # noqa: ANN001 - library signature
        if state.global_step == self.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)  # die like kill -9, right after a save
        return control
