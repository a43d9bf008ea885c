"""Settings never stop the app: bad keys are named, corrupt files are kept aside."""

from __future__ import annotations

import stat

from engine import settings


def test_missing_file_gives_defaults(tmp_path):
    loaded, problems = settings.load(tmp_path / "none.toml")
    assert loaded == settings.Settings() and problems == []


def test_bad_values_are_named_and_defaulted(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[ui]\ntheme = 3\n[monitor]\ninterval = "fast"\nstall_seconds = -1\nhistory_minutes = 5\nbogus = 1\n[nope]\n')
    loaded, problems = settings.load(path)
    text = "\n".join(problems)
    assert "ui.theme: expected a string, got 3" in text
    assert "monitor.interval: expected a number > 0, got 'fast'; using 1.0" in text
    assert "monitor.stall_seconds" in text
    assert "monitor.bogus: unknown key" in text and "nope: unknown section" in text
    assert loaded.monitor.history_minutes == 5.0 and loaded.monitor.interval == 1.0


def test_corrupt_file_is_kept_aside(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[ui\ntheme = \n")
    loaded, problems = settings.load(path)
    assert loaded == settings.Settings()
    assert len(problems) == 1 and "not valid TOML" in problems[0]
    kept = list(tmp_path.glob("settings.toml.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == "[ui\ntheme = \n"
    assert not path.exists()


def test_save_round_trips_and_is_private(tmp_path):
    path = tmp_path / "cfg" / "settings.toml"
    value = settings.Settings()
    value.ui.theme = "llmdeck-light"
    value.chat.openai_api_key = "sk-secret"
    settings.save(value, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.load(path) == (value, [])
