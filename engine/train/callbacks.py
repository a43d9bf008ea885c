"""The bridge from the Trainer to the run's events: metrics, progress, stop, NaN, checkpoints.

One `TrainerCallback` turns every Trainer log into a `Metric` event (loss, learning rate, grad
norm, tokens/s, samples/s, epoch, step/total, ETA, eval loss + perplexity, GPU memory per
device, host RSS) and every step into a throttled `Progress`. It is also where the run reacts:
a cancel request saves a checkpoint and stops; a non-finite loss stops at once (and is named
with its step); a checkpoint folder the Trainer just wrote is sealed as complete.

Token and sample counts come from `Throughput`, which the run's Trainer feeds per training
step: the Trainer itself only counts tokens when asked to gather them across devices every
step, which costs a synchronisation this does not need.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from engine.train.checkpoints import mark_complete


class Throughput:
    """Tokens (non-padding) and samples seen, counted by the collator; thread-safe."""

    def __init__(self) -> None:
        self.tokens = 0
        self.samples = 0
        self._lock = threading.Lock()

    def add(self, tokens: int, samples: int) -> None:
        with self._lock:
            self.tokens += tokens
            self.samples += samples

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.tokens, self.samples


def device_memory() -> dict[str, float]:
    """GiB allocated and reserved by this process on each CUDA device (empty on CPU)."""
    out: dict[str, float] = {}
    try:
        import torch

        if not torch.cuda.is_initialized():
            return out
        for i in range(torch.cuda.device_count()):
            out[f"gpu{i}_alloc_gib"] = torch.cuda.memory_allocated(i) / 2**30
            out[f"gpu{i}_reserved_gib"] = torch.cuda.memory_reserved(i) / 2**30
            out[f"gpu{i}_peak_gib"] = torch.cuda.max_memory_allocated(i) / 2**30
    except Exception:  # noqa: BLE001 - memory figures are optional, never fatal
        return {}
    return out


_PROC: Any = None


def host_rss_gib() -> float:
    """Resident memory of this process (one psutil.Process kept: creating one per log costs)."""
    global _PROC
    try:
        if _PROC is None:
            import psutil

            _PROC = psutil.Process()
        return _PROC.memory_info().rss / 2**30
    except Exception:  # noqa: BLE001
        return 0.0


# What a preference or RL run is judged by: the run's summary keeps their first and last values.
HEADLINE_METRICS: tuple[str, ...] = ("rewards/margins", "rewards/accuracies", "reward", "kl")

# Keys of the Trainer's logs that are not curves (run totals at the end, timings of eval).
_NOT_CURVES = frozenset({
    "loss", "learning_rate", "grad_norm", "epoch", "total_flos", "train_runtime", "train_loss",
    "train_samples_per_second", "train_steps_per_second", "eval_runtime", "eval_samples_per_second",
    "eval_steps_per_second", "step_time",
})


class RunCallback(TrainerCallback):
    """Streams one run into a JobContext-like `ctx` (metric, progress, log)."""

    def __init__(
        self,
        ctx: Any,
        *,
        throughput: Throughput | None = None,
        should_cancel: Callable[[], bool] | None = None,
        emit: bool = True,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.throughput = throughput or Throughput()
        self.should_cancel = should_cancel or (lambda: bool(getattr(ctx, "cancelled", False)))
        self.emit = emit  # False on non-zero ranks of a multi-process run
        self.on_step = on_step  # every rank of a multi-process run reports its step (rank_status)
        self.nan_step: int | None = None
        self.stopped_by_cancel = False
        self.last_loss: float | None = None
        self.last_eval_step: int | None = None
        self.losses: dict[int, float] = {}
        self.headline: dict[str, tuple[float, float]] = {}  # metric: (first, last) of this process
        self._t0 = time.monotonic()
        self._step0 = 0
        self._last_t = self._t0
        self._last_counts = (0, 0)

    # -- lifecycle ---------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = self._last_t = time.monotonic()
        self._step0 = state.global_step
        self._last_counts = self.throughput.snapshot()
        if self.emit:
            where = f" (resumed at step {state.global_step})" if state.global_step else ""
            self.ctx.log(f"training {state.max_steps} steps{where}")
            self.ctx.progress(state.global_step, state.max_steps, "train", unit="step", force=True)

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if self.emit:
            self.ctx.progress(step, state.max_steps, "train", unit="step")
        if self.on_step is not None:
            self.on_step(step)
        if self.should_cancel() and not self.stopped_by_cancel:
            self.stopped_by_cancel = True
            control.should_save = True
            control.should_training_stop = True
            if self.emit:
                self.ctx.log(f"stop requested: saving a checkpoint at step {step}, then stopping")
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        step = state.global_step
        values: dict[str, float] = {}
        if "loss" in logs:
            loss = float(logs["loss"])
            if not math.isfinite(loss):
                self.nan_step = step
                control.should_training_stop = True
                control.should_save = False
            else:
                self.last_loss = loss
                self.losses[step] = loss
            values["loss"] = loss
            now = time.monotonic()
            tokens, samples = self.throughput.snapshot()
            dt = max(now - self._last_t, 1e-9)
            world = max(1, int(getattr(args, "world_size", 1) or 1))  # ranks see equal shares
            values["tokens_per_s"] = (tokens - self._last_counts[0]) / dt * world
            values["samples_per_s"] = (samples - self._last_counts[1]) / dt * world
            self._last_t, self._last_counts = now, (tokens, samples)
            for src, dst in (("learning_rate", "lr"), ("grad_norm", "grad_norm"), ("epoch", "epoch")):
                if logs.get(src) is not None:
                    values[dst] = float(logs[src])
            done = step - self._step0
            if done > 0 and state.max_steps:
                values["eta_s"] = (now - self._t0) / done * max(0, state.max_steps - step)
            values["total_steps"] = float(state.max_steps or 0)
            values["tokens_seen"] = float(tokens * world)
            values.update(device_memory())
            values["host_rss_gib"] = host_rss_gib()
            extra = method_metrics(logs)
            values.update(extra)
            for key in HEADLINE_METRICS:
                if key in extra:
                    self.headline[key] = (self.headline.get(key, (extra[key],))[0], extra[key])
        if "eval_loss" in logs:
            eval_loss = float(logs["eval_loss"])
            values["eval_loss"] = eval_loss
            self.last_eval_step = step
            values["eval_ppl"] = math.exp(eval_loss) if eval_loss < 50 else float("inf")
            values.update(method_metrics(logs))
        if values and self.emit:
            self.ctx.metric(step, **values)
        if self.nan_step is not None and self.emit:
            self.ctx.log(f"loss is {logs.get('loss')} at step {step}: stopping", level="error")
        return control

    def samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Completions sampled at `step`, with their rewards (called by the GRPO trainer)."""
        if self.emit and rows:
            from engine.events import Samples

            self.ctx.emit(Samples(step=step, rows=rows))

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir() and state.is_world_process_zero:
            mark_complete(folder, step=state.global_step, loss=self.last_loss)
            if self.emit:
                loss = self.last_loss if self.last_loss is not None else "-"
                self.ctx.log(f"checkpoint saved: {folder.name} (loss {loss})")
        return control


def method_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """What a preference or RL trainer logs besides the loss, under TRL's own names
    (rewards/chosen, rewards/margins, reward, kl, completions/mean_length ...)."""
    out: dict[str, float] = {}
    for key, value in logs.items():
        if key in _NOT_CURVES or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[key] = float(value)
    return out
