"""Curves of training runs: read from events.jsonl, smoothed, exported as PNG (matplotlib) or CSV.

Used by `llmdeck train export-plot` and by Train mode's export action; the TUI's live curves
use the same `RunCurves` and `ema`. Each run keeps one colour everywhere (the dashboard, the
PNG): `run_colour` hashes the run's name into a fixed palette, so a run keeps its colour across
sessions and plots. matplotlib runs headless (Agg), so this works over SSH with no display.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import atomic_open
from engine.events import JobEvent, Metric

# Tableau-like palette: distinct, readable on dark and light backgrounds.
PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)


def run_colour(name: str) -> str:
    """A fixed colour for a run name (stable across processes, unlike hash())."""
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return PALETTE[digest[0] % len(PALETTE)]


@dataclass
class RunCurves:
    """Per-metric series of one run, step -> value; a step logged again (after a resume)
    replaces the earlier value, so the curve is the one the final weights followed."""

    name: str
    series: dict[str, dict[int, float]] = field(default_factory=dict)

    def add(self, event: JobEvent) -> bool:
        if not isinstance(event, Metric):
            return False
        for key, value in event.values.items():
            self.series.setdefault(key, {})[event.step] = value
        return True

    def points(self, metric: str) -> tuple[list[int], list[float]]:
        data = self.series.get(metric, {})
        steps = sorted(data)
        return steps, [data[s] for s in steps]

    def latest(self, metric: str) -> float | None:
        data = self.series.get(metric)
        if not data:
            return None
        return data[max(data)]

    @property
    def metrics(self) -> list[str]:
        return sorted(self.series)


def ema(values: list[float], smoothing: float) -> list[float]:
    """TensorBoard-style debiased exponential moving average (smoothing 0 = raw)."""
    if smoothing <= 0 or not values:
        return list(values)
    out: list[float] = []
    last = 0.0
    debias = 0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        last = last * smoothing + (1 - smoothing) * value
        debias += 1
        out.append(last / (1 - smoothing**debias))
    return out


def curves_from_events(name: str, events: list[JobEvent]) -> RunCurves:
    curves = RunCurves(name)
    for event in events:
        curves.add(event)
    return curves


def load_run_curves(store: Any, run: str) -> RunCurves:
    info = store.get(run)
    events, _ = store.read_events(info.id)
    return curves_from_events(info.label, events)


def write_png(
    runs: list[RunCurves],
    out: Path,
    metrics: list[str],
    *,
    smooth: float = 0.0,
    line_width: float = 1.5,
    title: str = "",
) -> Path:
    """One panel per metric, one line per run in its fixed colour; raw values faint behind
    the smoothed line when smoothing is on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in metrics if any(r.series.get(m) for r in runs)]
    if not shown:
        raise ValueError(f"none of the runs has {', '.join(metrics)} values to plot")
    panels = {m: m for m in shown}
    # train and eval loss share one panel: that is the comparison people want to see
    if "loss" in panels and "eval_loss" in panels:
        panels.pop("eval_loss")
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    for ax, metric in zip(axes[:, 0], panels):
        for run in runs:
            colour = run_colour(run.name)
            for key, style in ((metric, "-"), ("eval_loss", "--") if metric == "loss" and "eval_loss" in shown else (None, None)):
                if key is None:
                    continue
                steps, values = run.points(key)
                if not steps:
                    continue
                label = run.name if key == metric else f"{run.name} (eval)"
                if smooth > 0 and key == metric:
                    ax.plot(steps, values, style, color=colour, alpha=0.25, linewidth=max(0.5, line_width * 0.6))
                    values = ema(values, smooth)
                ax.plot(steps, values, style, color=colour, linewidth=line_width, label=label, marker="o" if key != metric else None, markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel(metric if metric != "loss" or "eval_loss" not in shown else "loss (train, eval --)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    with atomic_open(out, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)
    return out


def write_csv(runs: list[RunCurves], out: Path, metrics: list[str] | None = None, *, smooth: float = 0.0) -> Path:
    """Long format: run, step, metric, value (one row per logged number); with `smooth`, a
    `smoothed` column holds the same EMA the PNG and the TUI draw, next to the raw value."""
    out = Path(out)
    with atomic_open(out, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "step", "metric", "value"] + (["smoothed"] if smooth > 0 else []))
        for run in runs:
            for metric in metrics or run.metrics:
                steps, values = run.points(metric)
                smoothed = ema(values, smooth) if smooth > 0 else []
                for i, (step, value) in enumerate(zip(steps, values)):
                    extra = [repr(float(smoothed[i]))] if smooth > 0 else []
                    writer.writerow([run.name, step, metric, repr(float(value)), *extra])
    return out
