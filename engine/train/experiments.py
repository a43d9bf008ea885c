"""Experiments, as RL plotting scripts draw them: runs grouped by name, one colour each, seeds
averaged with a band.

An experiment is the runs that differ only by seed. Its name is the run's `experiment` option,
or else the run name without a seed suffix (`dpo-b0.1-s1`, `dpo-b0.1_seed2` -> `dpo-b0.1`).
Colours are handed out from one palette in sorted experiment-name order within a picture, so no
two experiments in one plot share a colour (a hash of the name into ten colours could) and the
same set of experiments gets the same colours on every screen and file. Seeds are aligned by
step: the mean at step k is over the runs that logged step k, the band is their min..max or
mean +- one standard deviation.
"""

from __future__ import annotations

import colorsys
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Tableau 10, then the lighter halves of Tableau 20: distinct and readable on dark and light.
PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#f1ce63",
    "#86bcb6", "#d37295", "#fabfd2", "#d4a6c8", "#79706e",
)
BANDS: tuple[str, ...] = ("minmax", "std", "none")

_SEED_SUFFIX = re.compile(r"[-_.](?:seed|s)[-_]?\d+$", re.IGNORECASE)


def experiment_of(run_name: str) -> str:
    """The run name without a trailing seed suffix (-s1, _s2, -seed3, _seed_4)."""
    stripped = _SEED_SUFFIX.sub("", run_name)
    return stripped or run_name


def colours_for(experiments: Iterable[str]) -> dict[str, str]:
    """One colour per experiment, by sorted name: the palette first, then evenly spread hues
    (golden-ratio steps) so a picture with more experiments than palette entries still has
    distinct colours."""
    names = sorted(set(experiments))
    out: dict[str, str] = {}
    for i, name in enumerate(names):
        out[name] = PALETTE[i] if i < len(PALETTE) else _extra_colour(i - len(PALETTE))
    return out


def _extra_colour(i: int) -> str:
    hue = (0.11 + i * 0.618033988749895) % 1.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.55, 0.65)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


@dataclass
class Series:
    """One experiment's line in one panel: the mean over its runs and the band around it."""

    experiment: str
    colour: str
    runs: list[str]
    steps: list[int] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # runs that logged each step

    @property
    def seeds(self) -> int:
        return len(self.runs)


def aggregate(
    experiment: str, colour: str, runs: list[tuple[str, dict[int, float]]], *, band: str = "minmax"
) -> Series:
    """Mean and band over `runs` (name, step -> value), aligned by step; non-finite values
    (a NaN loss) are left out of that step's figures."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(BANDS)} (got {band!r})")
    series = Series(experiment, colour, [name for name, _ in runs])
    steps = sorted({s for _, data in runs for s in data})
    for step in steps:
        values = [data[step] for _, data in runs if step in data and math.isfinite(data[step])]
        if not values:
            continue
        mean = sum(values) / len(values)
        if band == "std" and len(values) > 1:
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            low, high = mean - std, mean + std
        elif band == "minmax":
            low, high = min(values), max(values)
        else:
            low = high = mean
        series.steps.append(step)
        series.mean.append(mean)
        series.low.append(low)
        series.high.append(high)
        series.counts.append(len(values))
    return series
