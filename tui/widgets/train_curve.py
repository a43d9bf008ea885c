"""Training curves in the terminal: one run's view (loss, or what its method logs), or several
runs grouped into experiments, each experiment the mean of its seeds with a band.

Drawn with plotext through textual-plotext. The data is `engine.train.plots.RunCurves` (built
from events.jsonl) and the grouping, colours and bands are `engine.train.experiments`', so what
is drawn here is what `export-plot` writes to PNG: an experiment is the same colour on screen
and on paper, and two experiments in one picture never share one.

A view is a title and the metrics it overlays (DPO's chosen and rejected rewards together;
GRPO's reward with its +-std band and each reward function's mean). `views_for` lists the views
a run has values for, in a fixed order, so `t` steps through what this run's method logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual_plotext import PlotextPlot

from engine.train.experiments import PALETTE, aggregate, colours_for
from engine.train.plots import RunCurves, ema


@dataclass(frozen=True)
class View:
    title: str
    metrics: tuple[str, ...]
    per_function: bool = False  # also every rewards/<function>/mean (GRPO)


VIEWS: tuple[View, ...] = (
    View("loss", ("loss", "eval_loss")),
    View("rewards: chosen / rejected", ("rewards/chosen", "rewards/rejected")),
    View("reward margin", ("rewards/margins",)),
    View("preference accuracy", ("rewards/accuracies",)),
    View("reward (mean +- std, per function)", ("reward",), per_function=True),
    View("KL to the reference", ("kl",)),
    View("completion length (mean, min, max)", ("completions/mean_length", "completions/min_length",
                                                "completions/max_length")),
    View("clip ratio", ("clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean")),
    View("log-odds ratio (ORPO)", ("log_odds_ratio",)),
    View("learning rate", ("lr",)),
    View("grad norm", ("grad_norm",)),
)
# Line widths: plotext draws with characters, so a wider line is a coarser marker.
MARKERS: tuple[str, ...] = ("braille", "hd", "sd")
LINE_WIDTHS: tuple[float, ...] = (1.0, 2.0, 3.0)  # the same steps in exported pictures


def views_for(run: RunCurves | None) -> list[View]:
    """The views `run` has values for (loss first)."""
    if run is None:
        return [VIEWS[0]]
    return [v for v in VIEWS if any(run.series.get(m) for m in v.metrics)] or [VIEWS[0]]


def function_metrics(run: RunCurves) -> list[str]:
    """GRPO's per-function means: rewards/<name>/mean."""
    return sorted(m for m in run.series if m.startswith("rewards/") and m.endswith("/mean"))


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


class TrainCurve(PlotextPlot):
    DEFAULT_CSS = """
    TrainCurve { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.smoothing = 0.6
        self.width_step = 0  # index into MARKERS / LINE_WIDTHS
        self.band = "minmax"
        self.view = VIEWS[0]
        self.metric = "loss"  # what an experiment comparison draws
        self.runs: list[RunCurves] = []
        self.points_drawn = 0
        self.drawn: list[str] = []  # labels of what the last redraw drew (tests and the legend)

    def show_run(self, run: RunCurves | None, view: View, *, smoothing: float, width_step: int = 0) -> None:
        """One run: the metrics of `view`, smoothed, the raw values faint behind a single line."""
        self.runs = [run] if run is not None else []
        self.view, self.smoothing, self.width_step = view, smoothing, width_step
        self._draw_run()

    def show_experiments(self, runs: list[RunCurves], metric: str, *, smoothing: float, band: str,
                         width_step: int = 0) -> None:
        """Several runs: one line per experiment (mean over its seeds, each smoothed first), and
        its min-max or +-std band as thin lines in the same colour."""
        self.runs = list(runs)
        self.metric, self.smoothing, self.band, self.width_step = metric, smoothing, band, width_step
        self._draw_experiments()

    # -- drawing ---------------------------------------------------------------------------------
    def _start(self) -> None:
        self.plt.clear_data()
        self.plt.clear_figure()
        self.points_drawn = 0
        self.drawn = []

    def _finish(self, what: str) -> None:
        self.plt.xlabel("step")
        if not self.points_drawn:
            self.plt.title(f"no {what} values yet")
        self.refresh()

    def _line(self, steps: list[int], values: list[float], colour: tuple[int, int, int] | str, label: str,
              marker: str | None = None) -> None:
        if not steps:
            return
        self.plt.plot(steps, values, color=colour, marker=marker or MARKERS[self.width_step], label=label[:32])
        self.points_drawn += len(steps)
        self.drawn.append(label)

    def _draw_run(self) -> None:
        self._start()
        run = self.runs[0] if self.runs else None
        if run is not None:
            metrics = list(self.view.metrics) + (function_metrics(run) if self.view.per_function else [])
            present = [m for m in metrics if run.series.get(m)]
            for i, metric in enumerate(present):
                steps, values = run.points(metric)
                colour = _rgb(PALETTE[i % len(PALETTE)])
                if metric == "eval_loss":  # points beside the train line (not counted in points_drawn)
                    self.plt.scatter(steps, values, color="orange", marker="x", label="eval")
                    self.drawn.append("eval")
                    continue
                if metric == "reward" and run.series.get("reward_std"):
                    self._reward_band(run)
                if len(present) == 1 and self.smoothing > 0:
                    self.plt.plot(steps, values, color="gray", marker="dot")
                label = metric if self.smoothing <= 0 else f"{metric} (ema {self.smoothing:.2f})"
                self._line(steps, ema(values, self.smoothing), colour, label)
        self._finish(self.view.title)

    def _reward_band(self, run: RunCurves) -> None:
        mean, std = run.series["reward"], run.series["reward_std"]
        steps = [s for s in sorted(mean) if s in std]
        low = ema([mean[s] - std[s] for s in steps], self.smoothing)
        high = ema([mean[s] + std[s] for s in steps], self.smoothing)
        self.plt.plot(steps, low, color="gray", marker="dot", label="reward - std")
        self.plt.plot(steps, high, color="gray", marker="dot", label="reward + std")

    def _draw_experiments(self) -> None:
        self._start()
        groups: dict[str, list[RunCurves]] = {}
        for run in self.runs:
            groups.setdefault(run.experiment, []).append(run)
        colours = colours_for(groups)
        for name in sorted(groups):
            members = [(r.name, dict(zip(*_smoothed(r, self.metric, self.smoothing), strict=True)))
                       for r in groups[name]]
            members = [(n, d) for n, d in members if d]
            if not members:
                continue
            series = aggregate(name, colours[name], members, band=self.band)
            colour = _rgb(series.colour)
            if series.seeds > 1 and self.band != "none":
                self.plt.plot(series.steps, series.low, color=colour, marker="dot")
                self.plt.plot(series.steps, series.high, color=colour, marker="dot")
            label = name + (f" ({series.seeds} seeds)" if series.seeds > 1 else "")
            self._line(series.steps, series.mean, colour, label)
        self._finish(self.metric)


def _smoothed(run: RunCurves, metric: str, smoothing: float) -> tuple[list[int], list[float]]:
    steps, values = run.points(metric)
    return steps, ema(values, smoothing)
