"""Every theme's text against WCAG 2.x AA (4.5:1), measured on what each mode screen draws.

Issue 17 item 10: the light theme's current-mode label in the mode bar was white on near-white
(1.06:1) and 1.82:1 in the high-contrast theme. This walks every theme x every mode at 100x30
through Pilot, then every dialog and pushed screen (opened with its keys), takes the composited
screen (the segments the terminal gets, with the colours Textual resolved from the theme) and
checks every visible character of text, dim labels included.
"""

from __future__ import annotations

import pynvml
import pytest
from rich.color import Color as RichColor
from textual.errors import NoWidget
from textual.screen import Screen
from textual.widgets._toggle_button import ToggleButton  # the base of Checkbox and RadioButton; not re-exported

from tests.engine.test_monitor_fakes import FakeNvml
from themes import BUILTIN_THEMES
from tui.app import LLMDeckApp
from tui.modes import MODES
from tui.widgets.gpu_card import GpuCard

AA = 4.5

# Borders, bars, sparklines and braille charts are drawn with box-drawing, block and braille
# characters: graphics, not text (WCAG 1.4.3 applies to text; every figure a bar or chart shows is
# also printed as text beside it, which is checked). A space has no foreground to read.
DECORATION = [(0x2500, 0x259F), (0x2800, 0x28FF), (0x25A0, 0x25FF)]


def is_text(char: str) -> bool:
    code = ord(char)
    return not char.isspace() and not any(lo <= code <= hi for lo, hi in DECORATION)


def luminance(color: tuple[int, int, int]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: tuple[int, int, int], bg: tuple[int, int, int]) -> float:
    high, low = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def rgb(color: RichColor | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if color is None or color.is_default:
        return default
    triplet = color.get_truecolor()
    return (triplet.red, triplet.green, triplet.blue)


def blend(fg: tuple[int, int, int], bg: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(round(b + (f - b) * factor) for f, b in zip(fg, bg, strict=True))  # type: ignore[return-value]


def low_contrast_text(screen: Screen, fg0: tuple[int, int, int], bg0: tuple[int, int, int],
                      own_only: bool = False) -> list[str]:
    """Each run of text under AA on the screen as drawn, as 'row N "text" fg on bg = ratio'.
    `fg0`/`bg0` stand for the terminal's default colours (a segment with none set). Reverse swaps
    them; dim is drawn as the colour half-way to the background (Textual's DimFilter, as terminals
    do). See `exempt` for what is left out. `own_only`: only the text of the screen's own widgets
    (an overlay such as the command palette is drawn over the screen it covers, which shows
    through dimmed on purpose: inactive while the overlay is open)."""
    found = []
    for y, strip in enumerate(screen._compositor.render_strips()):
        x = 0
        for segment in strip:
            style = segment.style
            text = "".join(c for c in segment.text if is_text(c))
            x, start = x + segment.cell_length, x
            if not text or style is None or exempt(screen, start, y, text):
                continue
            if own_only and not owned(screen, start, y):
                continue
            fg, bg = rgb(style.color, fg0), rgb(style.bgcolor, bg0)
            if style.reverse:
                fg, bg = bg, fg
            if style.dim:
                fg = blend(fg, bg, 0.5)
            ratio = contrast(fg, bg)
            if ratio < AA:
                found.append(f"row {y} {segment.text.strip()[:30]!r} #{bytes(fg).hex()} on #{bytes(bg).hex()}"
                             f" = {ratio:.2f}:1")
    return found


def exempt(screen: Screen, x: int, y: int, text: str) -> bool:
    """Text of a disabled widget (WCAG 1.4.3 exempts inactive components, and Textual fades them
    on purpose to say so), and the mark of an unchecked toggle, which Textual draws in the box's
    own colour on purpose: "off" is the box without a visible mark (its label is checked)."""
    try:
        widget, _ = screen.get_widget_at(x, y)
    except NoWidget:
        return False
    unchecked_mark = isinstance(widget, ToggleButton) and not widget.value and text == widget.BUTTON_INNER
    return widget.is_disabled or unchecked_mark


def owned(screen: Screen, x: int, y: int) -> bool:
    try:
        widget, _ = screen.get_widget_at(x, y)
    except NoWidget:
        return False
    return widget is not screen and widget.screen is screen


def test_the_formula_matches_wcag_reference_values() -> None:
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast((0x77, 0x77, 0x77), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)
    assert contrast((255, 255, 255), (0xF7, 0xF8, 0xFA)) == pytest.approx(1.06, abs=0.01)


def themed(app: LLMDeckApp, theme: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Switch `app` to `theme`; its foreground and background, against which text is measured."""
    app.theme = theme
    colors = BUILTIN_THEMES[theme]
    return rgb(RichColor.parse(colors.foreground), (255, 255, 255)), rgb(RichColor.parse(colors.background), (0, 0, 0))


@pytest.mark.parametrize("theme", sorted(BUILTIN_THEMES))
async def test_every_modes_text_meets_wcag_aa(theme: str) -> None:
    no_gpu = FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound})
    app = LLMDeckApp(start_mode="monitor", options={"nvml": no_gpu})
    failures: list[str] = []
    async with app.run_test(size=(100, 30)) as pilot:
        fg0, bg0 = themed(app, theme)
        for number, mode in enumerate(MODES, start=1):
            await pilot.press(str(number))
            await pilot.pause(0.3)
            assert app.current_mode == mode.key
            failures += [f"{mode.key}: {line}" for line in low_contrast_text(app.screen, fg0, bg0)]
    assert not failures, f"{theme}: text under {AA}:1\n" + "\n".join(dict.fromkeys(failures))


@pytest.mark.parametrize("theme", sorted(BUILTIN_THEMES))
async def test_monitor_with_a_gpu_meets_wcag_aa(theme: str) -> None:
    """The walk above sees the no-GPU Monitor; this one its GPU cards and GPU process table."""
    app = LLMDeckApp(start_mode="monitor", options={"nvml": FakeNvml(count=1)})
    async with app.run_test(size=(100, 30)) as pilot:
        fg0, bg0 = themed(app, theme)
        for _ in range(80):  # until the first sample has drawn the card
            if app.screen.query(GpuCard) and app.screen.query_one(GpuCard).border_subtitle:
                break
            await pilot.pause(0.1)
        await pilot.pause(0.3)
        assert app.screen.query(GpuCard) and app.screen.query_one("#mon-procs-box").display
        failures = low_contrast_text(app.screen, fg0, bg0)
    assert not failures, f"{theme}: text under {AA}:1\n" + "\n".join(dict.fromkeys(failures))


async def opened(pilot, app: LLMDeckApp, kind: type, *keys: str) -> Screen:
    """Press `keys` as a user would and wait for a screen of `kind` on top."""
    from tests.tui.pilot_wait import wait_until

    await pilot.press(*keys)
    await wait_until(pilot, lambda: isinstance(app.screen, kind), 15, f"{kind.__name__} after {keys}")
    await pilot.pause(0.3)
    return app.screen


@pytest.mark.parametrize("theme", sorted(BUILTIN_THEMES))
async def test_every_dialog_and_the_help_meet_wcag_aa(theme: str, tmp_path) -> None:
    """The screens pushed over a mode, each opened with its keys: help, the doctor (F9), the quit
    question, the stop-run dialog, the merge confirmation of a checkpoint, the model picker, the
    start-server form, the chat sessions browser, the command palette and the clear-session
    question."""
    import os

    from tests.tui.pilot_wait import wait_until
    from tests.tui.test_chat_screen import ScriptedBackend
    from tests.tui.test_train_screen import run_with_checkpoints
    from tui.screens.confirm import ConfirmModal
    from tui.screens.doctor import DoctorScreen
    from tui.screens.help import HelpScreen
    from tui.screens.model_picker import ModelPickerModal
    from tui.screens.serve import StartServerModal
    from tui.screens.sessions import SessionsModal
    from tui.screens.stop_run import StopRunModal

    no_gpu = FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound})
    app = LLMDeckApp(start_mode="monitor", options={"nvml": no_gpu, "chat_backend": ScriptedBackend(["ok"])})
    failures: list[str] = []
    async with app.run_test(size=(100, 30)) as pilot:
        fg0, bg0 = themed(app, theme)

        def check(name: str, screen: Screen) -> None:
            # The mode a dialog covers shows through, dimmed on purpose (inactive until the dialog
            # is answered): only the dialog's own text is measured.
            assert screen is app.screen
            failures.extend(f"{name}: {line}" for line in low_contrast_text(screen, fg0, bg0, own_only=True))

        check("help", await opened(pilot, app, HelpScreen, "question_mark"))
        await pilot.press("escape")
        doctor = await opened(pilot, app, DoctorScreen, "f9")
        await wait_until(pilot, lambda: doctor.query_one("DataTable").row_count > 0, 30, "the doctor's report")
        await pilot.pause(0.3)
        check("doctor", doctor)
        await pilot.press("escape")

        # A conversion in progress, as its run folder says (this process stands in for its worker;
        # every question about it is declined, so no signal is ever sent), and a LoRA run with checkpoints.
        run = app.store.create("convert.quantize", {"input": str(tmp_path / "big.gguf")}, name="quantize big")
        app.store.update(run.id, status="running", pid=os.getpid())
        run_with_checkpoints(app.store)
        app.run_watcher.poke()
        check("quit question", await opened(pilot, app, ConfirmModal, "q"))
        await pilot.press("n")
        await pilot.press("5")
        await wait_until(pilot, lambda: app.current_mode == "convert" and app.screen.current_run == run.id)
        check("stop run", await opened(pilot, app, StopRunModal, "ctrl+g"))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.current_mode == "convert" and not isinstance(app.screen, StopRunModal))
        app.screen.query_one("#conv-input").focus()
        check("model picker", await opened(pilot, app, ModelPickerModal, "ctrl+o"))
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, ModelPickerModal))
        app.screen.set_focus(None)

        await pilot.press("3")
        await wait_until(pilot, lambda: app.current_mode == "train" and app.screen.query_one("#train-ckpts").row_count)
        check("merge confirmation", await opened(pilot, app, ConfirmModal, "m"))
        await pilot.press("n")

        await pilot.press("8")
        await wait_until(pilot, lambda: app.current_mode == "serve")
        check("start server", await opened(pilot, app, StartServerModal, "n"))
        await pilot.press("escape")

        await pilot.press("2")
        await wait_until(pilot, lambda: app.current_mode == "chat")
        chat = app.screen
        await pilot.press("enter", *"a question", "enter")
        await wait_until(pilot, lambda: chat.session_id is not None and not chat.generating, 30, "the answer")
        check("sessions", await opened(pilot, app, SessionsModal, "ctrl+o"))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is chat)
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Chat: clear")
        await pilot.pause(0.5)
        check("command palette", app.screen)
        check("clear session", await opened(pilot, app, ConfirmModal, "enter"))
        await pilot.press("n")
    assert not failures, f"{theme}: text under {AA}:1\n" + "\n".join(dict.fromkeys(failures))


@pytest.mark.parametrize("mode", [mode.key for mode in MODES])
async def test_each_mode_opened_first_is_styled_as_when_switched_to(mode: str) -> None:
    """`llmdeck convert` and the like open straight on a mode. Its screen must be styled with every
    widget's own CSS, as when a user switches to it: once, a start-up shortcut marked the first
    screen styled before it was mounted, and Convert's checkbox labels and its run line were drawn
    in the background colour (1.0:1)."""
    no_gpu = FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound})
    app = LLMDeckApp(start_mode=mode, options={"nvml": no_gpu})
    async with app.run_test(size=(100, 30)) as pilot:
        fg0, bg0 = themed(app, app.theme)
        await pilot.pause(0.3)
        assert app.current_mode == mode
        failures = low_contrast_text(app.screen, fg0, bg0)
    assert not failures, f"{mode} opened first: text under {AA}:1\n" + "\n".join(dict.fromkeys(failures))
