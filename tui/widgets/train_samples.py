"""The completions a GRPO run sampled at its latest logged step, with their rewards.

TRL's GRPO trainer keeps the last generation batch; the run writes it as a `Samples` event at
each log (engine/train/methods.py), so this shows what the policy says right now and how each
reward function scored it: best first, the prompt dimmed, the completion as written.
"""

from __future__ import annotations

from typing import Any

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from engine.events import Samples

PROMPT_CHARS = 160
COMPLETION_CHARS = 600


def samples_content(samples: Samples | None) -> Content:
    """Every sampled completion of the step, best total reward first."""
    if samples is None or not samples.rows:
        return Content("No sampled completions yet (GRPO runs show the latest step's here).")
    rows = sorted(samples.rows, key=lambda r: -_total(r))
    mean = sum(_total(r) for r in rows) / len(rows)
    parts: list[Content | str | tuple[str, str]] = [
        (f"step {samples.step}: {len(rows)} completions, mean reward {mean:.3f}\n", "bold")
    ]
    for i, row in enumerate(rows, 1):
        rewards = ", ".join(f"{name} {_fmt(value)}" for name, value in row.get("rewards", {}).items())
        advantage = row.get("advantage")
        head = f"\n#{i}  reward {_total(row):.3f}" + (f"  ({rewards})" if rewards else "")
        if advantage is not None:
            head += f"  advantage {advantage:+.2f}"
        parts.append((head + "\n", "bold $success" if _total(row) > mean else "bold"))
        parts.append((f"  prompt: {_clip(row.get('prompt', ''), PROMPT_CHARS)}\n", "$text-muted"))
        parts.append(f"  {_clip(row.get('completion', ''), COMPLETION_CHARS)}\n")
    return Content.assemble(*parts)


def _total(row: dict[str, Any]) -> float:
    return sum(v for v in row.get("rewards", {}).values() if v is not None)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _clip(text: str, limit: int) -> str:
    text = text.replace("\r", "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TrainSamples(VerticalScroll):
    DEFAULT_CSS = """
    TrainSamples { height: 1fr; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.samples: Samples | None = None

    def compose(self):  # noqa: ANN201 - Textual's compose
        yield Static(samples_content(None), id="samples-text")

    def show(self, samples: Samples | None) -> None:
        if samples is self.samples:
            return
        self.samples = samples
        self.query_one("#samples-text", Static).update(samples_content(samples))
