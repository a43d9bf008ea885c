"""The llmdeck application: one mode per area, switched with number keys or the palette.

Start-up stays light: mode screens are imported on first use (see tui.modes), and nothing here
imports torch, transformers, llama_cpp or pynvml. Settings problems and an unwritable data
folder are reported as notifications; they never stop the app from starting.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import themes
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from engine import paths
from engine import settings as settings_mod
from engine.runs import RunStore
from tui.modes import BY_KEY, screen_factory
from tui.modes import MODES as MODE_LIST
from tui.screens.confirm import ConfirmModal
from tui.screens.help import HelpScreen, collect_keys


class LLMDeckApp(App[None]):
    TITLE = "llmdeck"
    CSS_PATH = str(Path(themes.__file__).with_name("base.tcss"))
    MODES = {mode.key: screen_factory(mode) for mode in MODE_LIST}
    BINDINGS = [
        *(
            Binding(str(number), f"switch_mode('{mode.key}')", mode.name, show=False, id=f"mode.{mode.key}")
            for number, mode in enumerate(MODE_LIST, start=1)
        ),
        Binding("question_mark", "help", "help", id="app.help"),
        Binding("ctrl+t", "next_theme", "next theme", show=False, id="app.theme"),
        Binding("q", "quit_app", "quit", id="app.quit"),
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
        self.options: dict[str, Any] = dict(options or {})
        if start_mode not in BY_KEY:
            self.startup_problems.append(f"unknown mode {start_mode!r}; opening Monitor")
            start_mode = "monitor"
        self.start_mode = start_mode
        super().__init__()
        for theme in themes.BUILTIN_THEMES.values():
            self.register_theme(theme)
        requested = self.options.get("theme") or settings.ui.theme
        if requested not in self.available_themes:
            self.startup_problems.append(f"ui.theme: unknown theme {requested!r}; using {themes.DEFAULT_THEME}")
            requested = themes.DEFAULT_THEME
        self.theme = requested
        self._persist_theme = not self.options.get("theme")

    # -- lifecycle ---------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        try:
            paths.ensure_writable(paths.data_dir())
        except OSError as exc:
            self.startup_problems.append(str(exc))
        for problem in self.startup_problems:
            self.notify(problem, title="llmdeck", severity="warning", timeout=10)
        # Temporary outputs of runs that ended without cleaning up (kill -9, OOM) go now.
        self.run_worker(self.store.housekeeping, thread=True, exit_on_error=False, group="housekeeping")
        self.switch_mode(self.start_mode)

    def _remember_theme(self, theme) -> None:
        if not self._persist_theme or theme.name == self.settings.ui.theme:
            self._persist_theme = True
            return
        self.settings.ui.theme = theme.name
        try:
            settings_mod.save(self.settings, self.settings_path)
        except OSError as exc:
            self.notify(f"could not save the theme choice: {exc}", severity="warning")

    # -- actions -----------------------------------------------------------------------------
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        name = getattr(self.screen, "MODE_KEY", "") or self.screen.__class__.__name__
        self.push_screen(HelpScreen(BY_KEY[name].name if name in BY_KEY else name, collect_keys(self)))

    def action_next_theme(self) -> None:
        names = list(themes.BUILTIN_THEMES)
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

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
        for name in themes.BUILTIN_THEMES:
            yield SystemCommand(f"Theme: {name}", "switch and remember this theme", lambda n=name: setattr(self, "theme", n))
