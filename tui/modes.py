"""The app's modes: number key, name, and where each screen lives.

Screens are imported only when their mode is first opened (Textual builds MODES screens on
first switch), which keeps start-up fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    key: str
    name: str
    short: str
    target: str
    blurb: str


MODES: tuple[Mode, ...] = (
    Mode("monitor", "Monitor", "Mon", "tui.screens.monitor:MonitorScreen", "GPUs, VRAM, processes and the host, live"),
    Mode("chat", "Chat", "Chat", "tui.screens.chat:ChatScreen", "streaming chat with GGUF, HF or remote models"),
    Mode("train", "Train", "Train", "tui.screens.train:TrainScreen", "full, LoRA and QLoRA runs with live curves"),
    Mode("data", "Data", "Data", "tui.screens.data:DataScreen", "datasets: formats, validation, masks, lengths"),
    Mode("convert", "Convert", "Conv", "tui.screens.convert:ConvertScreen", "Meta -> HF -> GGUF, quantize, merge LoRA"),
    Mode("estimate", "Estimate", "Est", "tui.screens.estimate:EstimateScreen", "will it fit: memory and time"),
    Mode("bench", "Bench", "Bench", "tui.screens.bench:BenchScreen", "perplexity, speed, quant sweep"),
    Mode("serve", "Serve", "Serve", "tui.screens.serve:ServeScreen", "OpenAI-compatible API servers"),
    Mode("runs", "Runs", "Runs", "tui.screens.runs:RunsScreen", "every detached run, live"),
)

BY_KEY: dict[str, Mode] = {mode.key: mode for mode in MODES}


def screen_factory(mode: Mode):  # -> Callable[[], Screen]
    """A zero-argument callable building the mode's screen on first use."""

    def build():
        module_name, _, class_name = mode.target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)()

    return build
