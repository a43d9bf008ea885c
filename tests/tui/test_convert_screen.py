"""Convert mode: the verdict follows typing, ctrl+s starts a detached run, the finished list
shows its verification figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Select, Static

from tests.engine.test_convert_tiny import make_llama
from tests.helpers.requirements import require_module
from tests.tui.pilot_wait import screen_text, wait_until
from tui.app import LLMDeckApp
from tui.screens.convert import ConvertScreen


def verdict_text(screen) -> str:
    return str(screen.query_one("#conv-verdict", Static).render())


async def test_verdict_follows_typing(tmp_path: Path) -> None:
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConvertScreen))
        screen = app.screen
        screen.query_one("#conv-input", Input).value = str(tmp_path / "nothing-here")
        await wait_until(pilot, lambda: "does not exist" in verdict_text(screen))
        assert screen.query_one("#conv-verdict").has_class("-bad")
        screen.query_one("#conv-action", Select).value = "quantize"
        await pilot.pause(0.1)
        assert screen.query_one("#conv-type", Select).value == "Q4_K_M"
        assert not screen.query_one("#conv-extra", Input).disabled  # imatrix
        await pilot.press("ctrl+s")  # refused: nothing starts
        await pilot.pause(0.2)
        assert app.store.list() == []


async def test_start_watch_and_finished_figures(tmp_path: Path) -> None:
    require_module("llama_cpp")
    make_llama(tmp_path / "m", tokenizer="bpe", n_kv_heads=2)
    out = tmp_path / "m.gguf"
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConvertScreen))
        screen = app.screen
        screen.query_one("#conv-input", Input).value = str(tmp_path / "m")
        screen.query_one("#conv-output", Input).value = str(out)
        await wait_until(pilot, lambda: "ready" in verdict_text(screen))
        assert "LlamaForCausalLM -> GGUF llama" in verdict_text(screen)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: screen.current_run is not None, 5)
        run_id = screen.current_run
        await wait_until(pilot, lambda: not app.store.get(run_id).active, 120)
        assert app.store.get(run_id).status == "succeeded", app.store.log_tail(run_id)
        assert out.is_file()
        screen.action_show_tab("finished")
        table = screen.query_one("#conv-finished", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1 and "top-1" in str(table.get_row_at(0)[4]), 10)
        assert table.get_row_at(0)[2] == "succeeded"


class HeldCheck:
    """preflight.check held back for one output path until `release()`: the window between
    "checking…" and the verdict, made as long as the test needs (the check itself is real)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, held_output: Path) -> None:
        import threading

        from engine.convert import preflight

        self.real = preflight.check
        self.held = str(held_output)
        self.gate = threading.Event()
        self.started = threading.Event()
        monkeypatch.setattr(preflight, "check", self)

    def __call__(self, spec: dict, **options: object) -> object:
        if spec.get("output") == self.held:
            self.started.set()
            self.gate.wait(30)
        return self.real(spec, **options)

    def release(self) -> None:
        self.gate.set()


async def ready_form(pilot, app, model: Path, output: Path) -> ConvertScreen:
    await wait_until(pilot, lambda: isinstance(app.screen, ConvertScreen))
    screen = app.screen
    screen.query_one("#conv-verify").value = False
    screen.query_one("#conv-input", Input).value = str(model)
    screen.query_one("#conv-output", Input).value = str(output)
    await wait_until(pilot, lambda: "ready" in verdict_text(screen), 60)
    return screen


async def type_into(pilot, field: Input, text: str) -> None:
    field.focus()
    await pilot.press("ctrl+a", "ctrl+k", *text)  # select all, delete to the end, type


async def test_start_during_a_check_starts_exactly_what_is_on_screen(tmp_path: Path, monkeypatch) -> None:
    make_llama(tmp_path / "m", tokenizer="bpe", n_kv_heads=2)
    first, edited = tmp_path / "first.gguf", tmp_path / "edited.gguf"
    held = HeldCheck(monkeypatch, edited)
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready_form(pilot, app, tmp_path / "m", first)
        await type_into(pilot, screen.query_one("#conv-output", Input), str(edited))
        await wait_until(pilot, lambda: held.started.is_set() and "checking" in verdict_text(screen))
        await pilot.press("ctrl+s")  # while the check of the edited path runs
        await pilot.pause(0.3)
        assert app.store.list() == []  # nothing starts on the previous check's verdict
        assert "starts when the check passes" in verdict_text(screen)
        held.release()
        await wait_until(pilot, lambda: len(app.store.list()) == 1, 30)
        run = app.store.list()[0]
        assert run.spec["output"] == str(edited)
        await wait_until(pilot, lambda: not app.store.get(run.id).active, 120)
        assert not first.exists()


async def test_a_start_waiting_on_a_check_that_fails_starts_nothing(tmp_path: Path, monkeypatch) -> None:
    make_llama(tmp_path / "m", tokenizer="bpe", n_kv_heads=2)
    taken = tmp_path / "taken.gguf"
    taken.write_text("someone's file")
    held = HeldCheck(monkeypatch, taken)
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready_form(pilot, app, tmp_path / "m", tmp_path / "free.gguf")
        await type_into(pilot, screen.query_one("#conv-output", Input), str(taken))
        await pilot.press("ctrl+s")  # before the pause after typing is over: the check starts now
        await wait_until(pilot, lambda: held.started.is_set())
        held.release()
        await wait_until(pilot, lambda: "refused" in verdict_text(screen), 30)
        await pilot.pause(0.3)
        assert app.store.list() == []
        assert taken.read_text() == "someone's file"


async def test_stop_works_from_a_path_field_and_leaves_its_text(tmp_path: Path) -> None:
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConvertScreen))
        screen = app.screen
        import os

        # A conversion in progress, as its run folder says (this process stands in for its worker;
        # the dialog is declined below, so no signal is ever sent).
        run = app.store.create("convert.quantize", {"input": str(tmp_path / "big.gguf")}, name="quantize big")
        app.store.update(run.id, status="running", pid=os.getpid())
        app.run_watcher.poke()
        await wait_until(pilot, lambda: screen.current_run == run.id)  # the screen reattaches to it
        field = screen.query_one("#conv-output", Input)
        field.value = "/tmp/out/model.gguf"
        field.focus()
        await pilot.press("home", "right", "right")
        assert "ctrl+g" in screen.active_bindings  # the footer shows the stop key with the field focused
        await pilot.press("ctrl+g")
        from tui.screens.stop_run import StopRunModal

        await wait_until(pilot, lambda: isinstance(app.screen, StopRunModal))
        assert field.value == "/tmp/out/model.gguf"
        await pilot.press("escape")


async def test_tab_completes_a_path_then_moves_on(tmp_path: Path) -> None:
    (tmp_path / "models-folder").mkdir()
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConvertScreen))
        screen = app.screen
        field = screen.query_one("#conv-input", Input)
        field.focus()
        await pilot.press(*f"{tmp_path}/mod")
        await wait_until(pilot, lambda: field._suggestion.endswith("models-folder/"))
        await pilot.press("tab")
        assert field.value == f"{tmp_path}/models-folder/"
        assert app.focused is field
        await wait_until(pilot, lambda: not field._suggestion or field._suggestion == field.value)
        await pilot.press("tab")  # nothing to complete: on to the next field
        assert app.focused is not field


@pytest.fixture(scope="module")
def f16_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_module("llama_cpp")
    from engine.convert import jobs
    from engine.events import Finished
    from engine.jobs import JobContext, execute

    root = tmp_path_factory.mktemp("quantize-form")
    make_llama(root / "m", tokenizer="spm", n_kv_heads=2, hidden=256)
    out = root / "m-f16.gguf"
    spec = {"input": str(root / "m"), "output": str(out), "outtype": "f16", "verify": False}
    assert isinstance(execute(jobs.hf_to_gguf, spec, JobContext(lambda e: None)), Finished)
    return out


class HeldPlan:
    """llama.cpp's quantize dry run (the real one) held back until `release()`: the seconds it
    takes on a big model, made as long as the test needs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import threading

        from engine.convert import quantize

        self.real, self.calls = quantize.planned_types, 0
        self.gate = threading.Event()
        monkeypatch.setattr(quantize, "planned_types", self)

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        self.gate.wait(30)
        return self.real(*args, **kwargs)

    def release(self) -> None:
        self.gate.set()


async def quantize_form(pilot, app, source: Path, output: Path) -> ConvertScreen:
    await wait_until(pilot, lambda: isinstance(app.screen, ConvertScreen))
    screen = app.screen
    screen.query_one("#conv-action", Select).value = "quantize"
    await wait_until(pilot, lambda: screen.query_one("#conv-type", Select).value == "Q4_K_M")  # its types
    screen.query_one("#conv-type", Select).value = "Q6_K"
    screen.query_one("#conv-verify").value = False
    screen.query_one("#conv-input", Input).value = str(source)
    screen.query_one("#conv-output", Input).value = str(output)
    return screen


async def test_quantize_verdict_comes_from_the_header_first_then_the_plan(
        f16_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first verdict does not wait for llama.cpp's dry run: it shows an estimate, a start
    goes ahead on it (the disk holds the output's upper bound), and the plan's exact size
    replaces the estimate when it lands."""
    import shutil

    source = shutil.copy(f16_gguf, tmp_path / "src-f16.gguf")
    held = HeldPlan(monkeypatch)
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await quantize_form(pilot, app, source, tmp_path / "q6.gguf")
        await wait_until(pilot, lambda: "ready" in verdict_text(screen), 30)
        assert "estimated from the header" in verdict_text(screen)
        await pilot.pause(0.1)
        shown = screen_text(app)  # at 80x24 the verdict has six lines: what to do comes first
        assert "ready: ctrl+s starts it · sizing the output with llama.cpp's quantizer" in shown
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: len(app.store.list()) == 1, 10)
        assert not held.gate.is_set()  # started before the plan was in
        held.release()
        await wait_until(pilot, lambda: "planned by llama.cpp's quantizer" in verdict_text(screen), 30)
        assert "estimated" not in verdict_text(screen)
        run = app.store.list()[0]
        await wait_until(pilot, lambda: not app.store.get(run.id).active, 120)
        assert app.store.get(run.id).status == "succeeded", app.store.log_tail(run.id)


async def test_a_start_the_upper_bound_refuses_waits_for_the_plan(
        f16_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Room on the disk for the output but not for its upper bound: ctrl+s on the estimate starts
    nothing yet, and the conversion starts once llama.cpp's plan says the output fits."""
    import shutil

    from engine.convert import preflight

    measured = shutil.copy(f16_gguf, tmp_path / "measured-f16.gguf")
    source = shutil.copy(f16_gguf, tmp_path / "src-f16.gguf")  # the same bytes, not planned yet
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    spec = {"action": "quantize", "qtype": "Q6_K", "output": str(out_dir / "q6.gguf")}
    planned = preflight.check({**spec, "input": str(measured)}).output_bytes
    bound = preflight.check({**spec, "input": str(source)}, exact=False).disk_bytes
    real_usage = shutil.disk_usage

    def usage(path: object) -> object:  # the output's disk: room for the output, not for the bound
        found = real_usage(path)
        room = int(planned * 1.05) + 16 * 1024**2 + (bound - planned) // 2
        return found._replace(free=room) if Path(str(path)) == out_dir else found

    monkeypatch.setattr(preflight.shutil, "disk_usage", usage)
    held = HeldPlan(monkeypatch)
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await quantize_form(pilot, app, source, out_dir / "q6.gguf")
        await wait_until(pilot, lambda: "may need up to" in verdict_text(screen), 30)
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert app.store.list() == []
        assert "the conversion starts if it fits" in verdict_text(screen)
        held.release()
        await wait_until(pilot, lambda: len(app.store.list()) == 1, 30)
        assert "planned by llama.cpp's quantizer" in verdict_text(screen)
        run = app.store.list()[0]
        await wait_until(pilot, lambda: not app.store.get(run.id).active, 120)
        assert app.store.get(run.id).status == "succeeded", app.store.log_tail(run.id)
