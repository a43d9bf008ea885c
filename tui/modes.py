"""The app's modes: number key order, name, short name and one-line blurb.

A leaf module: screens (through the base screen and the mode bar) and the app import it, and it
imports nothing of llmdeck. Which screen class shows a mode is registered on the app side only
(`tui.app.SCREENS`), so the mode table never imports a screen back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    key: str
    name: str
    short: str
    blurb: str


MODES: tuple[Mode, ...] = (
    Mode("monitor", "Monitor", "Mon", "GPUs, VRAM, processes and the host, live"),
    Mode("chat", "Chat", "Chat", "streaming chat with GGUF, HF or remote models"),
    Mode("train", "Train", "Train", "full, LoRA and QLoRA runs with live curves"),
    Mode("data", "Data", "Data", "datasets: formats, validation, masks, lengths"),
    Mode("convert", "Convert", "Conv", "Meta -> HF -> GGUF, quantize, merge LoRA"),
    Mode("estimate", "Estimate", "Est", "will it fit: memory and time"),
    Mode("bench", "Bench", "Bench", "perplexity, speed, quant sweep"),
    Mode("serve", "Serve", "Serve", "OpenAI-compatible API servers"),
    Mode("runs", "Runs", "Runs", "every detached run, live"),
)

BY_KEY: dict[str, Mode] = {mode.key: mode for mode in MODES}
