"""The llmdeck application: one mode per area, switched with number keys or the palette.

Start-up stays light: a mode's screen is imported when the mode is first opened (`SCREENS`,
below: the only place that names the screen classes), and nothing here imports torch,
transformers, llama_cpp or pynvml. Settings problems and an unwritable data
folder are reported as notifications; they never stop the app from starting.
"""

from __future__ import annotations

import gc
import importlib
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode
from textual.driver import Driver
from textual.screen import Screen
from textual.theme import BUILTIN_THEMES as TEXTUAL_THEMES
from textual.theme import Theme
from textual.worker import Worker, WorkerState

import themes
from engine import paths
from engine import settings as settings_mod
from engine.runs import RunError, RunStore
from tui.messages import OpenInChat, PickModel, StopRun
from tui.modes import BY_KEY
from tui.modes import MODES as MODE_LIST
from tui.run_watcher import FollowRead, RunWatcher
from tui.screens.confirm import ConfirmModal
from tui.workers import failure_details, failure_line

if TYPE_CHECKING:
    from tui.screens.chat import ChatScreen


SCREENS: dict[str, str] = {
    "monitor": "tui.screens.monitor:MonitorScreen",
    "chat": "tui.screens.chat:ChatScreen",
    "train": "tui.screens.train:TrainScreen",
    "data": "tui.screens.data:DataScreen",
    "convert": "tui.screens.convert:ConvertScreen",
    "estimate": "tui.screens.estimate:EstimateScreen",
    "bench": "tui.screens.bench:BenchScreen",
    "serve": "tui.screens.serve:ServeScreen",
    "runs": "tui.screens.runs:RunsScreen",
}
"""Mode key -> the screen class showing it, imported when the mode is first opened."""


class LLMDeckApp(App[None]):
    TITLE = "llmdeck"
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses may live anywhere
    BINDINGS = [
        *(
            Binding(str(number), f"switch_mode('{mode.key}')", mode.name, show=False, id=f"mode.{mode.key}")
            for number, mode in enumerate(MODE_LIST, start=1)
        ),
        Binding("question_mark", "help", "help", id="app.help"),
        Binding("ctrl+t", "next_theme", "next theme", show=False, id="app.theme"),
        Binding("ctrl+l", "redraw", "redraw the screen", show=False, id="app.redraw"),
        Binding("q", "quit_app", "quit", id="app.quit"),
        Binding("f9", "doctor", "doctor: what works here", show=False, id="app.doctor"),
    ]

    def __init__(
        self,
        settings: settings_mod.Settings | None = None,
        *,
        store: RunStore | None = None,
        start_mode: str = "monitor",
        options: dict[str, Any] | None = None,
        settings_path: Path | None = None,
    ) -> None:
        self.settings_path = settings_path or paths.settings_file()
        self.startup_problems: list[str] = []
        if settings is None:
            settings, self.startup_problems = settings_mod.load(self.settings_path)
        self.settings = settings
        self.store = store or RunStore()
        self.run_watcher = RunWatcher(self, self.store, self.read_run_store)
        """The one reader of the run store; screens that show runs subscribe to it."""
        self.options: Mapping[str, Any] = MappingProxyType(dict(options or {}))
        """What the command line asked for (`llmdeck chat MODEL`, `--replay`...): read-only.
        Screens read it when they are built; they talk to each other through tui.messages."""
        self._screen_args: dict[str, dict[str, Any]] = {}
        if start_mode not in BY_KEY:
            self.startup_problems.append(f"unknown mode {start_mode!r}; opening Monitor")
            start_mode = "monitor"
        self.start_mode = start_mode
        # Open straight on the start mode: Textual then builds no placeholder default screen and
        # restyles the app once less before the first frame (bench/startup.py).
        self.DEFAULT_MODE = start_mode
        requested = self.options.get("theme") or settings.ui.theme
        if requested not in {**TEXTUAL_THEMES, **themes.BUILTIN_THEMES}:
            self.startup_problems.append(f"ui.theme: unknown theme {requested!r}; using {themes.DEFAULT_THEME}")
            requested = themes.DEFAULT_THEME
        # The theme is chosen before Textual builds the stylesheet, through `set_reactive` (no
        # watcher): Textual then takes its variables, its dark/light classes and its ANSI colours
        # from this theme, and parses the CSS once. Assigning `self.theme` after `__init__` made
        # Textual re-parse every stylesheet twice before the first frame (once for the theme, once
        # more because the first screen then looked out of date), and the start screen's own file
        # read as it mounted made a third: together about a tenth of llmdeck's time to its first
        # frame (bench/startup.py). That third one stays: it is also the pass that styles the
        # widgets first seen on that screen with their own CSS (read with the app's, Convert's
        # checkbox labels were drawn in the background colour: tests/tui/test_theme_contrast.py
        # ::test_each_mode_opened_first_is_styled_as_when_switched_to).
        self.set_reactive(LLMDeckApp.theme, requested)
        super().__init__()
        self.set_class(True, f"-theme-{requested}", update=False)  # as Textual's theme watcher names it
        for theme in themes.BUILTIN_THEMES.values():
            self.register_theme(theme)
        self.mode_screens: dict[str, Screen] = {}
        """The mode screens built so far (Textual builds one when its mode is first opened)."""
        for mode in MODE_LIST:
            self.add_mode(mode.key, lambda key=mode.key: self._build_mode_screen(key))
        self._first_frame_shown = False
        self.closing = False
        """True from `exit()` on: the app is closing (see `update_styles`, tui.closing_driver)."""
        self._after_first_frame: list[Callable[[], object]] = []

    @property
    def available_themes(self) -> dict[str, Theme]:
        """Textual's themes and llmdeck's, the latter known already while Textual's `__init__` runs
        (see ours), before they can be registered. Read for every line drawn: no copy once they are."""
        known = super().available_themes
        if themes.DEFAULT_THEME not in known:
            known.update(themes.BUILTIN_THEMES)
        return known

    # -- lifecycle ---------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        try:
            paths.ensure_writable(paths.data_dir())
        except OSError as exc:
            self.startup_problems.append(str(exc))
        for problem in self.startup_problems:
            self.notify(problem, title="llmdeck", severity="warning", timeout=10)
        self.after_first_frame(self._housekeeping)
        self.run_watcher.start()
        self.switch_mode(self.start_mode)

    def on_ready(self) -> None:
        """Textual's Ready: the first frame has been laid out and is being written."""
        self._first_frame_shown = True
        waiting, self._after_first_frame = self._after_first_frame, []
        for callback in waiting:
            self.call_after_refresh(callback)

    def after_first_frame(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the first frame is on screen (after the next refresh, if it already is).

        For work the first frame does not show (the Monitor's sampler thread, housekeeping): a
        thread started earlier competes with the first paint for the GIL. Textual's own
        `call_after_refresh` is not enough at start-up: while the app is still mounting, its
        callbacks run before anything is painted (bench/startup.py)."""
        if self._first_frame_shown:
            self.call_after_refresh(callback)
        else:
            self._after_first_frame.append(callback)

    def get_driver_class(self) -> type[Driver]:
        driver = super().get_driver_class()
        from textual.drivers.linux_driver import LinuxDriver

        if driver is LinuxDriver:  # not textual-serve's (TEXTUAL_DRIVER), nor Windows'
            from tui.closing_driver import ClosingLinuxDriver

            return ClosingLinuxDriver
        return driver

    def exit(self, result: None = None, return_code: int = 0, message: Any = None) -> None:
        self.closing = True
        super().exit(result, return_code, message)

    def update_styles(self, node: DOMNode, animate: bool = True) -> None:
        """Not while closing: Textual removes the screens one by one, and each focused widget it
        removes moves the focus and restyles whole screens about to go (cProfile of the quit in
        bench/latency.py: 0.4 s of 1.2 s). Blur and Unmount handlers still run."""
        if not self.closing:
            super().update_styles(node, animate)

    def get_css_variables(self) -> dict[str, str]:
        variables = super().get_css_variables()
        return {**variables, **{alias: variables[source] for alias, source in themes.CSS_ALIASES.items()}}

    def _remember_theme(self, theme) -> None:
        """A theme the user switches to is saved (the one chosen at start is set without this signal,
        so `--theme` for one session is not saved)."""
        if theme.name == self.settings.ui.theme:
            return
        self.settings.ui.theme = theme.name
        try:
            settings_mod.save(self.settings, self.settings_path)
        except OSError as exc:
            self.notify(f"could not save the theme choice: {exc}", severity="warning")

    def _build_mode_screen(self, key: str) -> Screen:
        module, _, name = SCREENS[key].partition(":")
        screen = getattr(importlib.import_module(module), name)(**self._screen_args.pop(key, {}))
        # A new screen is styled as it mounts, from the stylesheet as it is now (its own file is
        # parsed in then). Textual marks it out of date all the same (-1), and on a mode's first
        # visit re-parses every stylesheet and restyles the app, twice (`_init_mode`, then
        # `switch_mode`): about a tenth of the time to the first frame (bench/startup.py) and of
        # each first switch. The same private counter ModeScreen.on_screen_resume reads, and
        # ModeScreen.on_mount records again once the screen's own file is in.
        screen._css_update_count = self._css_update_count  # noqa: SLF001
        self.mode_screens[key] = screen
        # A mode's screen lives as long as the app, and so do the modules it imported (the Chat
        # model's backend, Train's forms...): out of the collector's view, as tui/cli.py does at
        # start, they are not traversed again by every full collection. After a tour of the modes
        # one such pass took 0.2 s of an idle minute (bench/idle.py).
        self.call_after_refresh(gc.freeze)
        return screen

    # -- requests from screens (tui.messages) --------------------------------------------------
    async def on_open_in_chat(self, message: OpenInChat) -> None:
        chat = self.mode_screens.get("chat")
        if chat is None:
            self._screen_args["chat"] = {"model": message.path}  # built on this model, loaded once
        await self.switch_mode("chat")
        if chat is not None:
            cast("ChatScreen", chat).open_model(message.path)

    def on_pick_model(self, message: PickModel) -> None:
        """The one model picker, for every model field (and Chat): the chosen path goes to `done`."""
        from tui.screens.model_picker import ModelPickerModal

        def answered(path: str | None) -> None:
            if path:
                message.done(path)

        picker = ModelPickerModal(message.kinds, message.current, tuple(self.settings.models.folders))
        self.push_screen(picker, answered)

    def on_stop_run(self, message: StopRun) -> None:
        from tui.screens.stop_run import StopRunModal, stop_wording

        run = message.run
        if not run.active:
            self.notify(f"{run.label} is {run.status}; only a running run can be stopped", severity="warning")
            return
        wording = stop_wording(run, message.where)

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.store.cancel(run.id)
            except (RunError, OSError) as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(wording.done, timeout=4)
            self.run_watcher.poke()

        if message.confirm:
            self.push_screen(StopRunModal(run, message.where), answered)
        else:
            answered(True)

    # -- the run watcher's reads ------------------------------------------------------------
    @work(thread=True, group="housekeeping", exit_on_error=False, description="removing leftover temporary outputs")
    def _housekeeping(self) -> None:
        """Temporary outputs of runs that ended without cleaning up (kill -9, OOM) go now."""
        self.store.housekeeping()

    @work(thread=True, group="run-reads", exit_on_error=False, description="reading the run store")
    def read_run_store(self, follows: list[FollowRead], want_runs: bool) -> None:
        self.post_message(RunWatcher.Read(self.run_watcher.scanner.read(follows, want_runs)))

    def on_run_watcher_read(self, message: RunWatcher.Read) -> None:
        self.run_watcher.deliver(message.result)

    # -- the one handler of failed workers (tui.workers) ----------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker that raised ends here (screens and widgets hand theirs on): the user
        gets the one-line reason, the traceback goes to the log file."""
        if event.state is not WorkerState.ERROR:
            return
        if event.worker.group == "run-reads":
            self.run_watcher.read_failed()
        line = failure_line(event.worker)
        where = self._log_failure(line, failure_details(event.worker))
        self.notify(line + (f"\n(traceback in {where})" if where else ""), title="something failed",
                    severity="error", timeout=12)

    def _log_failure(self, line: str, details: str) -> Path | None:
        """Append the failure to <data>/tui.log; None when that cannot be written."""
        self.log.error(line, details)  # also on the Textual console (`textual console`)
        path = paths.data_dir() / "tui.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n{details}\n")
        except OSError:
            return None
        return path

    # -- actions -----------------------------------------------------------------------------
    def action_help(self) -> None:
        from tui.screens.help import HelpScreen, collect_keys  # on first use: it loads DataTable

        if isinstance(self.screen, HelpScreen):
            return
        name = getattr(self.screen, "MODE_KEY", "") or self.screen.__class__.__name__
        self.push_screen(HelpScreen(BY_KEY[name].name if name in BY_KEY else name, collect_keys(self)))

    def action_redraw(self) -> None:
        """ctrl+l, as in a shell: draw the whole screen again (after another program wrote over it)."""
        self.refresh(repaint=True, layout=True)

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """The palette's Screenshot: into <data>/screenshots (a headless box has no ~/Downloads,
        where Textual would save it); the notification names the file."""
        folder = Path(path) if path else paths.data_dir() / "screenshots"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.notify(f"cannot write screenshots into {folder}: {exc.strerror or exc}", title="Screenshot",
                        severity="error")
            return None
        return super().deliver_screenshot(filename, str(folder), time_format)

    def action_doctor(self) -> None:
        from tui.screens.doctor import DoctorScreen  # on first use: keeps start-up light

        if not isinstance(self.screen, DoctorScreen):
            self.push_screen(DoctorScreen())

    def action_next_theme(self) -> None:
        names = list(themes.BUILTIN_THEMES)
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """'q' does not quit (and the footer does not offer it) on a screen where letters write
        a message (Chat); ctrl+q still quits there."""
        return not (action == "quit_app" and getattr(self.screen, "LETTERS_WRITE", False))

    def action_quit_app(self) -> None:
        try:
            active = [run for run in self.store.list() if run.active]
        except OSError:
            active = []
        if not active:
            self.exit()
            return
        listing = "\n".join(f"  • {run.label} ({run.kind}, {run.status})" for run in active[:6])
        more = f"\n  … and {len(active) - 6} more" if len(active) > 6 else ""
        body = (
            f"{len(active)} run(s) will keep running in the background:\n{listing}{more}\n\n"
            "Reopen llmdeck (or `llmdeck runs list`) to see them again."
        )

        def answered(quit_now: bool | None) -> None:
            if quit_now:
                self.exit()

        self.push_screen(ConfirmModal("Quit llmdeck?", body, confirm_label="Quit"), answered)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for number, mode in enumerate(MODE_LIST, start=1):
            yield SystemCommand(
                f"Mode: {mode.name}",
                f"({number}) {mode.blurb}",
                lambda key=mode.key: self.switch_mode(key),
            )
        yield SystemCommand("Doctor", "(F9) what works on this machine, and the command that fixes the rest",
                            self.action_doctor)
        for name in themes.BUILTIN_THEMES:
            yield SystemCommand(f"Theme: {name}", "switch and remember this theme",
                                lambda n=name: setattr(self, "theme", n))
        palette_commands = getattr(screen, "palette_commands", None)  # a mode screen's own commands
        if palette_commands is not None:
            for command in palette_commands():
                yield SystemCommand(command.title, command.help, command.callback)
