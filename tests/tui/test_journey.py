"""The main journey from the TUI alone: Train (new run) -> `m` merge -> `g` GGUF -> Bench quant
sweep -> `c` Chat with a quantized row, driven by keys only and checked on what the screen shows
(and the files the runs write), not on screen internals.

A tiny random Llama with a SentencePiece tokenizer and no chat template of its own stands in for
a real model, so the whole journey takes a minute or two; the bundled-Gemma version of the same
chain, with its real answer, is tests/engine/test_journey_gemma.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.requirements import require_module
from tests.tui.pilot_wait import screen_text, wait_until
from tui.app import LLMDeckApp
from tui.screens.confirm import ConfirmModal

require_module("llama_cpp")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a loaded shared box is slow

PROSE = Path(__file__).resolve().parents[1] / "fixtures_eval" / "prose.txt"


@pytest.fixture
def model_and_data(tmp_path: Path) -> tuple[Path, Path]:
    from tests.engine.test_convert_tiny import make_llama

    model = tmp_path / "tiny-spm"
    make_llama(model, tokenizer="spm", n_kv_heads=2, hidden=64)
    data = tmp_path / "chat.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": f"{a + b}."},
            ]
        }
        for a in range(3)
        for b in range(3)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model, data


async def type_text(pilot, text: str) -> None:
    await pilot.press(*text)


async def until_shown(pilot, app, *needles: str, timeout: float = 60.0) -> None:
    """Wait until every needle is on screen; a timeout shows what the screen did show."""
    try:
        await wait_until(
            pilot, lambda: all(n in screen_text(app) for n in needles), timeout=timeout, what=repr(needles)
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the screen shows:\n{screen_text(app)}") from None


async def test_train_merge_gguf_sweep_chat(model_and_data: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = model_and_data
    app = LLMDeckApp(start_mode="train")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:  # toasts on screen, as in a terminal
        # -- Train: n, model and dataset typed, no chat template given, Enter starts it
        await pilot.press("n")
        await type_text(pilot, str(model))
        await pilot.press("tab")
        await type_text(pilot, str(data))
        await pilot.press("enter")
        # the template is chosen for the architecture and said so, before the run starts
        await until_shown(pilot, app, "llama-2", timeout=60)  # the chat template chosen for the architecture
        await until_shown(pilot, app, "succeeded", timeout=180)
        adapter = next(app.store.root.glob("*/out/adapter"))
        assert (adapter / "tokenizer.model").is_file()

        # -- m: merge the run's LoRA (focus on the runs list, as a user clicks it)
        await pilot.click("#train-runs")
        await pilot.press("m")
        await until_shown(pilot, app, "Merge this LoRA into its base?", timeout=10)  # it asks, naming the output
        await pilot.press("y")
        merged = adapter.with_name("adapter-merged")
        await until_shown(pilot, app, "started merge", timeout=10)
        await wait_until(pilot, lambda: (merged / "config.json").is_file(), timeout=180, what="the merged model")
        assert (merged / "tokenizer.model").is_file()

        # -- g: GGUF f16 of the run's output, verified in llama.cpp
        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), timeout=10, what="the export dialog")
        await pilot.press("y")
        gguf = adapter.with_name("adapter-f16.gguf")
        await until_shown(pilot, app, "started gguf", timeout=10)
        await wait_until(pilot, lambda: gguf.is_file(), timeout=240, what="the GGUF")
        assert gguf.read_bytes()[:4] == b"GGUF"

        # -- Bench: a quant sweep of that GGUF, from the form
        await pilot.press("7")
        await until_shown(pilot, app, "model (ctrl+o picks)")
        await pilot.press("n")  # focus goes to the model field
        await pilot.press("shift+tab", "enter")  # the kind selector: open it
        await pilot.press("down", "down", "enter")  # perplexity, speed, quant sweep
        await pilot.press("tab")
        await type_text(pilot, str(gguf))
        await pilot.press("tab")
        await type_text(pilot, str(PROSE))
        await pilot.press("tab")
        await type_text(pilot, "Q8_0")
        await pilot.press("enter")
        await until_shown(pilot, app, "started quant sweep", timeout=10)
        # the sweep's row in the list gives each type's perplexity; its detail names the baseline
        await until_shown(pilot, app, "succeeded", "F16 ", "· Q8_0 ", "baseline F16", timeout=300)

        # -- c: chat with the Q8_0 row
        await pilot.click("#bench-detail")
        await pilot.press("down", "c")
        await until_shown(pilot, app, "Q8_0", "llama.cpp", timeout=60)
        await pilot.press("ctrl+f")  # into the message box (the chat key for it)
        await type_text(pilot, "What is 1 plus 1?")
        await pilot.press("enter")
        await until_shown(pilot, app, "tok/s", timeout=120)
