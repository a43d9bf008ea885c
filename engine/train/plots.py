"""Curves of training runs: read from events.jsonl, smoothed, grouped into experiments, exported
as PNG/SVG (matplotlib) or CSV.

Used by `llmdeck train export-plot` and by Train mode's export action; the TUI's live curves
use the same `RunCurves`, `ema` and experiment colours. A picture groups runs into experiments
(`engine.train.experiments`): one colour per experiment, handed out by sorted name within the
picture, several seeds drawn as their mean with a min-max or +-std band, one panel per metric.
The CSV holds the same picture's numbers (mean, low, high per experiment, metric and step).
matplotlib runs headless (Agg), so this works over SSH with no display.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import atomic_open
from engine.events import JobEvent, Metric
from engine.train.experiments import Series, aggregate, colours_for, experiment_of

IMAGE_FORMATS: tuple[str, ...] = ("png", "svg")
# What a picture shows when no metric is named: the loss, plus what each method is judged by.
DEFAULT_METRICS: tuple[str, ...] = (
    "loss", "eval_loss",
    "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected",  # DPO, ORPO, KTO
    "reward", "reward_std", "kl", "completions/mean_length",  # GRPO
)


@dataclass
class RunCurves:
    """Per-metric series of one run, step -> value; a step logged again (after a resume)
    replaces the earlier value, so the curve is the one the final weights followed."""

    name: str
    series: dict[str, dict[int, float]] = field(default_factory=dict)
    experiment: str = ""  # "" = the name without its seed suffix

    def __post_init__(self) -> None:
        self.experiment = self.experiment or experiment_of(self.name)

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
    curves = curves_from_events(info.label, events)
    experiment = str((info.spec or {}).get("experiment") or "")
    if experiment:
        curves.experiment = experiment
    return curves


def present_metrics(runs: list[RunCurves], wanted: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """`wanted` (default DEFAULT_METRICS) in order, keeping those some run has values for."""
    return [m for m in (wanted or DEFAULT_METRICS) if any(r.series.get(m) for r in runs)]


@dataclass
class Figure:
    """What a picture draws: per panel (metric), one Series per experiment, sorted by name."""

    panels: dict[str, list[Series]]
    colours: dict[str, str]
    smooth: float = 0.0
    band: str = "minmax"
    dashed: dict[str, list[Series]] = field(default_factory=dict)  # eval loss drawn in the loss panel


def build_figure(
    runs: list[RunCurves], metrics: list[str], *, smooth: float = 0.0, band: str = "minmax"
) -> Figure:
    """Group `runs` into experiments and aggregate each metric (each run smoothed first, as
    per-seed curves are in RL papers, then averaged)."""
    shown = present_metrics(runs, metrics)
    if not shown:
        raise ValueError(f"none of the runs has {', '.join(metrics)} values to plot")
    groups: dict[str, list[RunCurves]] = {}
    for run in runs:
        groups.setdefault(run.experiment, []).append(run)
    colours = colours_for(groups)
    merge_eval = "loss" in shown and "eval_loss" in shown

    def panel(metric: str, smoothing: float) -> list[Series]:
        out = []
        for name in sorted(groups):
            members = [(r.name, _smoothed(r.series.get(metric, {}), smoothing)) for r in groups[name]]
            members = [(n, d) for n, d in members if d]
            if members:
                out.append(aggregate(name, colours[name], members, band=band))
        return out

    panels = {m: panel(m, smooth) for m in shown if not (merge_eval and m == "eval_loss")}
    dashed = {"loss": panel("eval_loss", 0.0)} if merge_eval else {}
    return Figure(panels, colours, smooth, band, dashed)


def _smoothed(data: dict[int, float], smooth: float) -> dict[int, float]:
    steps = sorted(data)
    return dict(zip(steps, ema([data[s] for s in steps], smooth), strict=True))


def write_image(
    runs: list[RunCurves],
    out: Path,
    metrics: list[str],
    *,
    smooth: float = 0.0,
    line_width: float = 1.5,
    band: str = "minmax",
    title: str = "",
) -> Path:
    """One panel per metric, one line per experiment (mean over its seeds) in its colour with
    the band shaded behind it; PNG or SVG by the file's suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fmt = out.suffix.lower().lstrip(".") or "png"
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"{out.name}: write .png or .svg (or .csv for the numbers)")
    figure = build_figure(runs, metrics, smooth=smooth, band=band)
    fig, axes = plt.subplots(len(figure.panels), 1, figsize=(8, 3.2 * len(figure.panels)), squeeze=False)
    for ax, (metric, lines) in zip(axes[:, 0], figure.panels.items(), strict=True):
        for series in lines:
            label = series.experiment + (f" ({series.seeds} seeds)" if series.seeds > 1 else "")
            if series.seeds > 1 and band != "none":
                ax.fill_between(series.steps, series.low, series.high, color=series.colour, alpha=0.2, linewidth=0)
            ax.plot(series.steps, series.mean, "-", color=series.colour, linewidth=line_width, label=label)
        for series in figure.dashed.get(metric, []):
            ax.plot(series.steps, series.mean, "--", color=series.colour, linewidth=line_width, marker="o",
                    markersize=3, label=f"{series.experiment} (eval)")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (train, eval --)" if figure.dashed.get(metric) else metric)
        ax.set_title(metric, fontsize=9, loc="left")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(out, "wb") as handle:
        fig.savefig(handle, format=fmt, dpi=120)
    plt.close(fig)
    return out


def write_csv(
    runs: list[RunCurves], out: Path, metrics: list[str], *, smooth: float = 0.0, band: str = "minmax"
) -> Path:
    """The picture's numbers, long format: experiment, metric, step, mean, low, high, seeds
    (runs that logged that step), runs (all runs of the experiment, ';'-separated)."""
    figure = build_figure(runs, metrics, smooth=smooth, band=band)
    rows: list[tuple[str, str, Series]] = []
    for metric, lines in figure.panels.items():
        rows += [(metric, s.experiment, s) for s in lines]
        if metric in figure.dashed:
            rows += [("eval_loss", s.experiment, s) for s in figure.dashed[metric]]
    out = Path(out)
    with atomic_open(out, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["experiment", "metric", "step", "mean", "low", "high", "seeds", "runs"])
        for metric, experiment, s in sorted(rows, key=lambda r: (r[1], r[0])):
            for i, step in enumerate(s.steps):
                writer.writerow([experiment, metric, step, repr(float(s.mean[i])), repr(float(s.low[i])),
                                 repr(float(s.high[i])), s.counts[i], ";".join(s.runs)])
    return out
