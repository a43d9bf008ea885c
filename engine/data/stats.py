"""Token-length statistics, the histogram with the `max_seq_len` cut, and what a policy does.

The question users ask before training ("how many of my examples are longer than the context I
train with, and what happens to them?") is answered here: `over` records are longer than
`max_seq_len`; the `truncate` policy cuts them (and the tokens past the cut are lost), `drop`
removes them, `pack` truncates them (packing never splits an example) and then packs the rest.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

POLICIES: tuple[str, ...] = ("truncate", "drop", "pack")


@dataclass(frozen=True)
class Histogram:
    """Bin i counts lengths in (edges[i], edges[i+1]] (bin 0 also holds 0).

    When a cut is given it is exactly one of the edges, so the bars split cleanly at it.
    """

    edges: list[int]
    counts: list[int]
    cut: int | None = None

    @property
    def cut_index(self) -> int | None:
        """Number of bins at or below the cut (the cut line goes after that many bars)."""
        if self.cut is None:
            return None
        return bisect.bisect_right(self.edges, self.cut) - 1

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": list(self.counts), "cut": self.cut}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Histogram:
        return cls(list(d["edges"]), list(d["counts"]), d.get("cut"))


def histogram(lengths: Sequence[int], *, bins: int = 16, cut: int | None = None, max_bins: int | None = None) -> Histogram:
    """Bin `lengths`; with `cut`, about `bins` bars cover 0..cut and the same width goes on past it."""
    bins = max(1, bins)
    max_bins = max_bins or bins * 2
    top = max(lengths) if len(lengths) else 0
    if cut is not None and cut > 0:
        target = max(1, min(bins, cut, round(bins * cut / max(top, cut))))
        below = _nice_divisor(cut, target)
        width = cut / below
        n = max(below, math.ceil(top / width)) if top else below
        edges = [math.floor(i * width + 0.5) for i in range(n + 1)]
        edges[below] = cut
    else:
        width = max(1, math.ceil(top / bins)) if top else 1
        n = max(1, math.ceil(top / width)) if top else 1
        edges = [i * width for i in range(n + 1)]
    if len(edges) - 1 > max_bins:  # a few huge outliers: one open-ended last bar
        edges = edges[:max_bins] + [top]
    edges[-1] = max(edges[-1], top)
    counts = [0] * (len(edges) - 1)
    for length in lengths:
        i = bisect.bisect_left(edges, length) - 1
        counts[min(max(i, 0), len(counts) - 1)] += 1
    return Histogram(edges, counts, cut if cut else None)


def _nice_divisor(cut: int, target: int) -> int:
    """A bar count near `target` that divides `cut`, so bars have whole-number widths
    (2048 -> 16 bars of 128); `target` itself when no divisor is close."""
    best = max((d for d in range(1, target + 1) if cut % d == 0), default=1)
    return best if best * 2 >= target else target


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return int(sorted_values[min(rank, len(sorted_values)) - 1])


@dataclass
class DataStats:
    """Counts of one pass over a dataset. Every dropped or cut record is in here."""

    file: str = ""
    format: str = ""
    template: str = ""  # which chat template renders chat records, and why
    records: int = 0  # records read (good or bad)
    valid: int = 0  # records that passed validation
    problems: dict[str, int] = field(default_factory=dict)  # kind -> count (bad records skipped)
    examples: int = 0  # rendered through the template
    tokens: int = 0  # tokens of all rendered examples, before any cut
    trained_tokens: int = 0  # of those, trained on (labels != -100)
    no_target: int = 0  # dropped: nothing to train on (e.g. no assistant turn)
    max_seq_len: int | None = None
    policy: str = "truncate"
    loss_on: str = "assistant"
    over: int = 0  # examples longer than max_seq_len
    truncated: int = 0  # of those, cut to max_seq_len
    dropped_too_long: int = 0  # of those, dropped (policy drop)
    dropped_after_cut: int = 0  # truncated examples left with nothing to train on, dropped
    tokens_cut: int = 0  # tokens removed by truncation or dropping
    kept: int = 0  # examples that reach training
    kept_tokens: int = 0
    kept_trained_tokens: int = 0
    packs: int = 0  # policy pack: sequences of up to max_seq_len tokens
    lengths: array = field(default_factory=lambda: array("I"), repr=False)  # per example, before cuts

    @property
    def problem_total(self) -> int:
        return sum(self.problems.values())

    @property
    def dropped(self) -> int:
        return self.no_target + self.dropped_too_long + self.dropped_after_cut

    @property
    def pack_fill(self) -> float:
        """Share of packed sequence slots holding real tokens (1.0 = no padding at all)."""
        if not self.packs or not self.max_seq_len:
            return 0.0
        return self.kept_tokens / (self.packs * self.max_seq_len)

    def length_summary(self) -> dict[str, float]:
        values = sorted(self.lengths)
        if not values:
            return {"count": 0, "min": 0, "max": 0, "mean": 0.0, "p50": 0, "p90": 0, "p95": 0, "p99": 0}
        return {
            "count": len(values),
            "min": values[0],
            "max": values[-1],
            "mean": round(sum(values) / len(values), 1),
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "p95": percentile(values, 95),
            "p99": percentile(values, 99),
        }

    def histogram(self, bins: int = 16) -> Histogram:
        return histogram(self.lengths, bins=bins, cut=self.max_seq_len)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("lengths")
        d.update(
            problem_total=self.problem_total,
            dropped=self.dropped,
            pack_fill=round(self.pack_fill, 4),
            length=self.length_summary(),
            histogram=self.histogram().to_dict(),
        )
        return d


def format_histogram(hist: Histogram, *, width: int = 40, over_label: str = "") -> list[str]:
    """Plain-text bars (CLI; the TUI styles the same lines). The cut is a line between bars."""
    peak = max(hist.counts) if hist.counts else 0
    cut_at = hist.cut_index
    label_w = max(len(f"{hist.edges[i] + (1 if i else 0)}-{hist.edges[i + 1]}") for i in range(len(hist.counts))) if hist.counts else 1
    count_w = len(str(peak))
    lines: list[str] = []
    for i, count in enumerate(hist.counts):
        if cut_at is not None and i == cut_at:
            lines.append(cut_line(hist.cut or 0, label_w + count_w + width + 4, over_label))
        label = f"{hist.edges[i] + (1 if i else 0)}-{hist.edges[i + 1]}"
        bar = "█" * (round(width * count / peak) if peak else 0)
        if count and not bar:
            bar = "▏"
        lines.append(f"{label:>{label_w}} {count:>{count_w}} {bar}")
    if cut_at is not None and cut_at >= len(hist.counts):
        lines.append(cut_line(hist.cut or 0, label_w + count_w + width + 4, over_label))
    return lines


def cut_line(cut: int, width: int, label: str = "") -> str:
    text = f" max_seq_len {cut}{': ' + label if label else ''} "
    left = 4
    return "─" * left + text + "─" * max(0, width - left - len(text))
