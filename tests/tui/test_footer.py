"""KeyFooter (tui/widgets/footer.py): the keys every mode shows, rebuilt only when they change."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input
from textual.widgets._footer import FooterKey

from tests.tui.pilot_wait import wait_until
from tui.widgets.footer import KeyFooter


class CountingFooter(KeyFooter):
    rebuilds = 0

    async def recompose(self) -> None:
        self.rebuilds += 1
        await super().recompose()


class KeysScreen(Screen):
    BINDINGS = [Binding("f2", "alpha", "alpha"), Binding("f3", "beta", "beta")]
    beta_shown = True

    def __init__(self, compact: bool = False) -> None:
        super().__init__()
        self.compact = compact

    def compose(self) -> ComposeResult:
        yield Input(id="field")
        yield CountingFooter(compact=self.compact)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.beta_shown if action == "beta" else True

    def action_alpha(self) -> None:
        pass

    def action_beta(self) -> None:
        pass


class KeysApp(App[None]):
    def __init__(self, compact: bool = False) -> None:
        super().__init__()
        self.compact = compact

    def on_mount(self) -> None:
        self.push_screen(KeysScreen(self.compact))


def descriptions(app: App) -> list[str]:
    return [key.description for key in app.screen.query(FooterKey) if "-command-palette" not in key.classes]


async def test_unchanged_keys_are_not_rebuilt_and_changed_ones_are() -> None:
    app = KeysApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: descriptions(app) == ["alpha", "beta"], what="footer keys")
        footer = app.screen.query_one(CountingFooter)
        keys = list(app.screen.query(FooterKey))
        built = footer.rebuilds
        for _ in range(5):  # what focus changes and mounts do: bindings "updated", the same keys
            app.screen.refresh_bindings()
            await pilot.pause()
        app.screen.query_one("#field").focus()
        await pilot.pause(0.2)
        assert footer.rebuilds == built
        assert list(app.screen.query(FooterKey)) == keys  # the very same widgets: nothing rebuilt

        app.screen.beta_shown = False  # the "beta" key goes away: the footer must follow
        app.screen.refresh_bindings()
        await wait_until(pilot, lambda: descriptions(app) == ["alpha"], what="footer without beta")
        app.screen.beta_shown = True
        app.screen.refresh_bindings()
        await wait_until(pilot, lambda: descriptions(app) == ["alpha", "beta"], what="beta back")


@pytest.mark.parametrize("compact", [False, True])
async def test_keys_follow_the_footers_compact_style(compact: bool) -> None:
    app = KeysApp(compact=compact)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: descriptions(app) == ["alpha", "beta"], what="footer keys")
        bound = [k for k in app.screen.query(FooterKey) if "-command-palette" not in k.classes]
        assert all(k.compact is compact for k in bound)
        assert all(k.has_class("-compact") is compact for k in bound)
        app.screen.query_one(KeyFooter).compact = not compact  # later changes still reach the keys
        await pilot.pause()
        assert all(k.has_class("-compact") is (not compact) for k in bound)
