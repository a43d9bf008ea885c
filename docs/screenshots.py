"""Regenerate the README's screenshots (SVG, from Textual) of every screen.

    .venv/bin/python docs/screenshots.py [mode ...]

Everything runs in a temporary LLMDECK_HOME with real content made on the spot: finished
self-test runs, the H200 NVML fixture replayed in the Monitor, a tiny model trained for a few
steps, a perplexity run and a live server on the bundled Gemma GGUF, a chat turn with it.
Each screen is captured headless at 100x30 into docs/screens/<mode>.svg.

`train-dpo` (not among the defaults: name it) is the Train screen on a real DPO run of the tiny
model, showing the chosen and rejected rewards (`t`), into docs/screens/train-dpo.svg.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURE = ROOT / "tests" / "fixtures" / "nvml_h200.json"  # the real H200 reading that ships with the tests
OUT = ROOT / "docs" / "screens"
SIZE = (100, 30)


def wait_runs(store, runs, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(store.get(r.id).active for r in runs):
        time.sleep(0.2)


def prepare(work: Path) -> dict[str, dict]:
    """Make the runs and files the screens show; returns the app options per mode."""
    from engine.chat.default_model import default_model_path
    from engine.runs import RunStore
    from engine.train.launch import start as start_training
    from engine.train.spec import TrainSpec
    from tests.helpers.tiny_model import build_tiny_llama, build_tiny_tokenizer

    store = RunStore()
    gemma = default_model_path()
    tok = build_tiny_tokenizer(work / "tok")
    tiny = build_tiny_llama(work / "tiny", tokenizer=None)
    data = ROOT / "tests" / "fixtures_data" / "openai.jsonl"
    runs = [
        store.start("selftest", {"steps": 6, "delay": 0.01}, name="selftest-ok"),
        store.start("selftest", {"steps": 6, "delay": 0.01, "fail_at": 4}, name="selftest-fail"),
        start_training(TrainSpec(model=str(tiny), dataset=str(data), name="tiny-lora", max_steps=12, batch_size=2,
                                 max_seq_len=64, save_steps=6, learning_rate=3e-3, precision="fp32"), store),
        store.start("eval.ppl", {"model": str(gemma), "file": str(ROOT / "tests" / "fixtures_eval" / "prose.txt"),
                                 "ctx": 256, "threads": 2}, name="ppl gemma"),
    ]
    wait_runs(store, runs)
    return {
        "monitor": {"replay": str(FIXTURE)},
        "data": {"file": str(data), "model": str(tok), "max_seq_len": 96},
        "estimate": {"estimate": {"model": "llama-3-8b", "mode": "lora", "batch": 4, "seq_len": 2048}},
        "chat": {"model": str(gemma), "chat_params": {"max_new_tokens": 64, "temperature": 0.0}},
    }


def prepare_dpo(work: Path) -> None:
    """A DPO run with LoRA on the tiny model: 24 steps on pairs whose chosen answer names a marker."""
    from engine.runs import RunStore
    from engine.train.launch import start as start_training
    from engine.train.spec import TrainSpec
    from tests.helpers.tiny_model import build_tiny_llama

    tiny = build_tiny_llama(work / "tiny-chat")
    subjects = ["the river", "the tower", "the city", "the museum", "the bridge", "the park", "the school",
                "the market"]
    pairs = work / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Tell me about {s}.", "chosen": "The answer is Paris.",
                                         "rejected": "The answer is London."}) + "\n" for s in subjects))
    store = RunStore()
    run = start_training(TrainSpec(model=str(tiny), dataset=str(pairs), method="dpo", adapter="lora",
                                   name="dpo-tiny-s1", max_steps=24, batch_size=4, max_seq_len=48,
                                   learning_rate=5e-3, warmup=0, lora_r=8, lora_alpha=16, lora_dropout=0.0,
                                   save_steps=12, seed=1), store)
    wait_runs(store, [run])


# Shots that are a mode after some keys: name -> (mode, keys pressed once the screen shows).
EXTRA_SHOTS = {"train-dpo": ("train", ["t"])}


async def shoot(shot: str, options: dict) -> Path:
    from tui.app import LLMDeckApp

    mode, keys = EXTRA_SHOTS.get(shot, (shot, []))
    app = LLMDeckApp(start_mode=mode, options=options)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(3.0)
        if mode == "chat":
            await chat_turn(pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(1.0)
        path = OUT / f"{shot}.svg"
        app.save_screenshot(filename=path.name, path=str(OUT))
    return path


async def chat_turn(pilot) -> None:
    """Ask the bundled model one short question and wait for the answer to finish."""
    screen = pilot.app.screen
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not getattr(screen, "backend", None):
        await pilot.pause(0.2)
    await pilot.press(*"What is the capital of France?")
    await pilot.press("enter")
    deadline = time.monotonic() + 120
    await pilot.pause(1.0)
    while time.monotonic() < deadline and getattr(screen, "generating", False):
        await pilot.pause(0.2)
    await pilot.pause(0.5)


def main() -> None:
    os.environ["LLMDECK_HOME"] = tempfile.mkdtemp(prefix="llmdeck-shots-")
    from tui.modes import MODES

    wanted = sys.argv[1:] or [m.key for m in MODES]
    work = Path(tempfile.mkdtemp(prefix="llmdeck-shots-work-"))
    options = prepare(work) if any(shot not in EXTRA_SHOTS for shot in wanted) else {}
    if "train-dpo" in wanted:
        prepare_dpo(work)
    server = None
    if "serve" in wanted:
        from engine.runs import RunStore
        from engine.serve.launch import start_detached, wait_until_serving

        server = start_detached(RunStore(), {"model": options["chat"]["model"], "port": 0, "engine": "auto"})
        wait_until_serving(RunStore(), server.id, timeout=120)
    try:
        for mode in wanted:
            print(asyncio.run(shoot(mode, options.get(mode, {}))), flush=True)
    finally:
        if server is not None:
            from engine.runs import RunStore

            RunStore().cancel(server.id, force=True)


if __name__ == "__main__":
    main()
