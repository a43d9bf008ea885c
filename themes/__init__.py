"""llmdeck's themes, shipped in the wheel.

Only the TUI imports this package (it imports textual). Colours live here as Textual `Theme`
objects; the stylesheet (tui/app.tcss) uses theme variables only, never raw colours, so every
theme works.
"""

from __future__ import annotations

from textual.theme import Theme

DARK = Theme(
    name="llmdeck-dark",
    primary="#4EA1FF",
    secondary="#9D7CD8",
    accent="#F5A524",
    warning="#F5A524",
    error="#F7768E",
    success="#73D99F",
    foreground="#D8DEE9",
    background="#11151C",
    surface="#181D26",
    panel="#222938",
    dark=True,
)

LIGHT = Theme(
    name="llmdeck-light",
    primary="#0B62C4",
    secondary="#6E4BB8",
    accent="#9A4F00",  # footer keys on $panel: #B35C00 was 3.84:1, under WCAG AA 4.5:1
    warning="#A35200",
    error="#C0243C",
    success="#176B33",  # #1B7F3B was 4.12:1 on $panel
    foreground="#1E2430",
    background="#F7F8FA",
    surface="#FFFFFF",
    panel="#E4E8EF",
    dark=False,
)

# High contrast: pure black/white with saturated accents (WCAG AAA text contrast).
CONTRAST = Theme(
    name="llmdeck-contrast",
    primary="#FFFF00",
    secondary="#00FFFF",
    accent="#FF00FF",
    warning="#FFFF00",
    error="#FF5555",
    success="#00FF00",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#1A1A1A",
    dark=True,
)

BUILTIN_THEMES: dict[str, Theme] = {theme.name: theme for theme in (DARK, LIGHT, CONTRAST)}
DEFAULT_THEME = DARK.name

CSS_ALIASES: dict[str, str] = {
    "border": "panel-lighten-2",
    "border-focus": "primary",
    "title": "primary",
    "muted": "text-muted",
    "bad": "error",
    "good": "success",
}
"""llmdeck's own CSS variables -> the theme variable each stands for (tui/app.tcss says what for).
The app adds them for the current theme, so every stylesheet and DEFAULT_CSS may use them."""

