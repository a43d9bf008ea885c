"""Loss curves in the terminal: train (line) and eval (points) per run, each in its fixed colour.

Drawn with plotext through textual-plotext. The data is `engine.train.plots.RunCurves` (built
from events.jsonl), so what is drawn here is what `export-plot` writes to PNG; the colours
come from the same `colours_for` (one per experiment), so a run is the same colour on screen and on paper.
"""

from __future__ import annotations

from textual_plotext import PlotextPlot

from engine.train.experiments import colours_for
from engine.train.plots import RunCurves, ema


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


class TrainCurve(PlotextPlot):
    DEFAULT_CSS = """
    TrainCurve { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, metric: str = "loss", id: str | None = None) -> None:
        super().__init__(id=id)
        self.metric = metric
        self.smoothing = 0.6
        self.runs: list[RunCurves] = []
        self.points_drawn = 0

    def show(self, runs: list[RunCurves], *, smoothing: float | None = None, metric: str | None = None) -> None:
        self.runs = list(runs)
        if smoothing is not None:
            self.smoothing = smoothing
        if metric is not None:
            self.metric = metric
        self.redraw()

    def redraw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        drawn = 0
        single = len(self.runs) == 1
        colours = colours_for(run.experiment for run in self.runs)
        for run in self.runs:
            colour = _rgb(colours[run.experiment])
            steps, values = run.points(self.metric)
            if steps:
                smoothed = ema(values, self.smoothing)
                label = f"{run.name} {self.metric}" if not single else f"{self.metric} (ema {self.smoothing:.2f})"
                if single and self.smoothing > 0:
                    plt.plot(steps, values, color="gray", marker="dot")
                plt.plot(steps, smoothed, color=colour, marker="braille", label=label[:30])
                drawn += len(steps)
            if self.metric == "loss":
                e_steps, e_values = run.points("eval_loss")
                if e_steps:
                    label = ("eval" if single else f"{run.name} eval")[:30]
                    plt.scatter(e_steps, e_values, color=colour if not single else "orange", marker="x", label=label)
        plt.xlabel("step")
        if not drawn:
            plt.title(f"no {self.metric} values yet")
        self.points_drawn = drawn
        self.refresh()
