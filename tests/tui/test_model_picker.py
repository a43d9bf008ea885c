"""The model picker through Pilot: ctrl+o in a model field (Convert, Train, Bench, Serve) and F8 in
Chat open one searchable list of the models llmdeck knows of; Enter puts the highlighted one in
the field (or loads it in Chat), Esc leaves the field as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from engine import settings as settings_mod
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.screens.base import ModeScreen
from tui.screens.model_picker import ModelPickerModal
from tui.screens.serve import StartServerModal


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder named in the settings: two GGUFs and an HF folder; no real caches (nor the
    bundled Gemma, assembled under the real home)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hub"))
    monkeypatch.setenv("LLAMA_CACHE", str(tmp_path / "no-llama"))
    folder = tmp_path / "models"
    (folder / "gguf").mkdir(parents=True)
    for name in ("tiny-Q8_0.gguf", "llama-3-8b-Q4_K_M.gguf"):
        (folder / "gguf" / name).write_bytes(b"GGUF" + bytes(60))
    hf = folder / "hf" / "smollm"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (hf / "model.safetensors").write_bytes(bytes(100))
    return folder


def app_for(mode: str, folder: Path) -> LLMDeckApp:
    settings = settings_mod.Settings()
    settings.models.folders = [str(folder)]
    return LLMDeckApp(settings, start_mode=mode)


async def picker_open(pilot, app) -> ModelPickerModal:
    await wait_until(pilot, lambda: isinstance(app.screen, ModelPickerModal), what="the model picker")
    picker = app.screen
    await wait_until(pilot, lambda: picker.catalog is not None, what="the scan")
    await pilot.pause(0.1)
    return picker


def rows(picker: ModelPickerModal) -> list[str]:
    table = picker.query_one("#picker-list", DataTable)
    return [str(table.get_row_at(n)[0]) for n in range(table.row_count)]


async def test_convert_picks_by_typing_and_enter(models: Path) -> None:
    app = app_for("convert", models)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ModeScreen))
        screen = app.screen
        field = screen.query_one("#conv-input", Input)
        field.focus()
        await pilot.press("ctrl+o")
        picker = await picker_open(pilot, app)
        assert rows(picker) == ["smollm"]  # HF -> GGUF takes an HF folder: the GGUFs are hidden
        assert "2 of another kind hidden" in str(picker.query_one("#picker-status", Static).render())
        await pilot.press("ctrl+r")
        assert sorted(rows(picker)) == ["llama-3-8b-Q4_K_M.gguf", "smollm", "tiny-Q8_0.gguf"]
        await pilot.press(*"q8")
        assert rows(picker) == ["tiny-Q8_0.gguf"]
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is screen)
        assert field.value == str(models / "gguf" / "tiny-Q8_0.gguf")
        assert app.focused is field


async def test_escape_leaves_the_field_and_arrows_move(models: Path) -> None:
    app = app_for("bench", models)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ModeScreen))
        screen = app.screen
        field = screen.query_one("#bench-model", Input)
        field.focus()
        await pilot.press(*"typed")
        await pilot.press("ctrl+o")
        picker = await picker_open(pilot, app)
        assert len(rows(picker)) == 3  # Bench takes GGUF and HF models
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
        assert field.value == "typed"
        await pilot.press("ctrl+o")
        picker = await picker_open(pilot, app)
        listed = rows(picker)
        await pilot.press("down", "down", "up")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is screen)
        assert Path(field.value).name == listed[1]


async def test_serve_form_picks_into_its_model_field(models: Path) -> None:
    app = app_for("serve", models)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ModeScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, StartServerModal))
        form = app.screen
        await pilot.press("ctrl+o")
        picker = await picker_open(pilot, app)
        await pilot.press(*"llama")
        assert rows(picker) == ["llama-3-8b-Q4_K_M.gguf"]
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is form)
        assert form.query_one("#serve-model", Input).value == str(models / "gguf" / "llama-3-8b-Q4_K_M.gguf")


async def test_train_form_picks_an_hf_folder(models: Path) -> None:
    app = app_for("train", models)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ModeScreen))
        screen = app.screen
        await pilot.press("n")
        field = screen.query_one("#f-model", Input)
        await wait_until(pilot, lambda: app.focused is not None)
        field.focus()
        await pilot.press("ctrl+o")
        picker = await picker_open(pilot, app)
        assert rows(picker) == ["smollm"]
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is screen)
        assert field.value == str(models / "hf" / "smollm")


async def test_chat_f8_loads_the_picked_model(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.chat.default_model as dm

    monkeypatch.setattr(dm, "installed", lambda: False)  # no bundled model to load first
    app = app_for("chat", models)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ModeScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.loading is None)
        opened: list[str] = []
        monkeypatch.setattr(screen, "open_model", opened.append)  # what Chat does with it is Chat's test
        await pilot.press("f8")
        await picker_open(pilot, app)
        await pilot.press(*"tiny", "enter")
        await wait_until(pilot, lambda: app.screen is screen)
        assert opened == [str(models / "gguf" / "tiny-Q8_0.gguf")]


async def test_the_picker_fits_at_80x24(models: Path) -> None:
    from tests.tui.visible import fully_visible

    app = app_for("convert", models)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ModeScreen))
        app.screen.query_one("#conv-input", Input).focus()
        await pilot.press("ctrl+o")
        picker = await picker_open(pilot, app)
        for part in ("#picker-filter", "#picker-status", "#picker-path", "#picker-help"):
            assert fully_visible(picker.query_one(part)), part
