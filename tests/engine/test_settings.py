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
    assert "monitor.interval: expected a number from 0.1 to 60, got 'fast'; using 1.0" in text
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


# -- nothing in the file is lost (issue 14, item 6) ----------------------------------------------
def test_unreadable_file_is_moved_aside_and_a_save_keeps_it(tmp_path):
    path = tmp_path / "settings.toml"
    original = b'[chat]\nopenai_api_key = "sk-\xff\xfe"\nsystem_prompt = "be brief"\n'
    path.write_bytes(original)
    loaded, problems = settings.load(path)
    assert loaded == settings.Settings()
    assert len(problems) == 1 and "cannot read settings" in problems[0]
    assert "kept as settings.toml.corrupt-" in problems[0]
    (kept,) = tmp_path.glob("settings.toml.corrupt-*")
    assert kept.read_bytes() == original
    loaded.ui.theme = "llmdeck-light"  # what ctrl+t does next
    settings.save(loaded, path)
    assert kept.read_bytes() == original
    assert settings.load(path) == (loaded, [])


def test_save_changes_only_its_keys_and_keeps_comments_unknowns_and_rejected_values(tmp_path):
    path = tmp_path / "settings.toml"
    text = (
        "# my llmdeck settings\n"
        "[ui]\n"
        "theme = \"llmdeck-dark\"  # switched with ctrl+t\n"
        "future_option = 3\n"
        "\n"
        "[monitor]\n"
        "interval = \"fast\"  # rejected, kept for me to fix\n"
        "history_minutes = 30\n"
        "\n"
        "[chat]\n"
        "openai_api_key = \"sk-secret\"\n"
        "system_prompt = \"\"\"Answer\nbriefly.\"\"\"\n"
        "\n"
        "[plugins.extra]\n"
        "enabled = true\n"
    )
    path.write_text(text)
    loaded, problems = settings.load(path)
    assert any("monitor.interval" in p for p in problems)
    loaded.ui.theme = "llmdeck-light"
    settings.save(loaded, path)
    assert path.read_text() == text.replace('theme = "llmdeck-dark"', 'theme = "llmdeck-light"')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_into_a_missing_section_adds_only_that_key(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("# hand-written\n[chat]\nsystem_prompt = \"hi\"\n")
    value, _ = settings.load(path)
    value.monitor.interval = 2.5
    settings.save(value, path)
    after = path.read_text()
    assert after.startswith("# hand-written\n[chat]\nsystem_prompt = \"hi\"\n")
    assert "[monitor]\ninterval = 2.5\n" in after and "theme" not in after
    assert settings.load(path)[0].monitor.interval == 2.5


# -- every number has a finite range (issue 14, item 8) ------------------------------------------
def test_numbers_out_of_range_or_not_finite_are_named_and_defaulted(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        "[monitor]\nhistory_minutes = inf\ninterval = 1e-300\nslow_interval = nan\nstall_seconds = -inf\n"
        "[ui]\nstream_interval_ms = 1e309\nstream_cpu_percent = 0\n"
    )
    loaded, problems = settings.load(path)
    assert loaded == settings.Settings()
    text = "\n".join(problems)
    assert "monitor.history_minutes: expected a number from 1 to 240, got inf; using 10.0" in text
    assert "monitor.interval: expected a number from 0.1 to 60, got 1e-300; using 1.0" in text
    for key in ("monitor.slow_interval", "monitor.stall_seconds", "ui.stream_interval_ms", "ui.stream_cpu_percent"):
        assert f"{key}: expected a number from" in text
    assert len(problems) == 6


def test_every_numeric_setting_declares_a_finite_range():
    import dataclasses
    import math

    sections = [s.default_factory() for s in dataclasses.fields(settings.Settings) if s.name != "presets"]
    for section in [*sections, settings.SamplerPreset()]:
        for spec in dataclasses.fields(section):
            if spec.type in ("float", "int", float, int):
                low, high = spec.metadata["range"]
                assert math.isfinite(low) and math.isfinite(high) and low <= spec.default <= high, spec.name


def test_cli_reports_bad_settings_on_stderr_one_line_each(llmdeck_home):
    from tests.engine.test_cli import llmdeck

    config = llmdeck_home / "config"
    config.mkdir(exist_ok=True)
    (config / "settings.toml").write_text("[monitor]\ninterval = inf\nhistory_minutes = 1e-300\n")
    out = llmdeck("monitor", "--once")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("llmdeck: settings: ")]
    assert len(lines) == 2, out.stderr
    assert "monitor.interval: expected a number from 0.1 to 60, got inf" in lines[0]
    assert "monitor.history_minutes" in lines[1] and "Traceback" not in out.stderr

    (config / "settings.toml").write_text("[monitor\n")
    out = llmdeck("monitor", "--once")
    assert out.returncode == 0, out.stderr
    assert "not valid TOML" in out.stderr and "kept as settings.toml.corrupt-" in out.stderr


def test_model_folders_are_a_list_of_strings_and_round_trip(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('[models]\nfolders = ["~/models", 3]\n')
    loaded, problems = settings.load(path)
    assert loaded.models.folders == []
    assert problems == ["models.folders: expected a list of strings, got ['~/models', 3]; using []"]
    loaded.models.folders = ["~/models", "/srv/llm"]
    settings.save(loaded, path)
    again, problems = settings.load(path)
    assert again.models.folders == ["~/models", "/srv/llm"] and problems == []


# -- the user's own sampler presets (issue 17, item 14) ---------------------------------------------
def test_presets_are_saved_as_tables_and_read_back(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("# mine\n[chat]\nsystem_prompt = \"hi\"\n\n[presets.terse]\ntemperature = 0.1  # cold\n")
    loaded, problems = settings.load(path)
    assert problems == [] and loaded.presets == {"terse": settings.SamplerPreset(temperature=0.1)}
    loaded.presets["story"] = settings.SamplerPreset(temperature=1.2, top_p=0.98, top_k=0, min_p=0.0,
                                                     repetition_penalty=1.1)
    settings.save(loaded, path)
    text = path.read_text()
    assert text.startswith("# mine\n[chat]\nsystem_prompt = \"hi\"\n\n[presets.terse]\ntemperature = 0.1  # cold\n")
    assert "[presets.story]" in text and "top_k = 0" in text
    again, problems = settings.load(path)
    assert problems == [] and again.presets == loaded.presets
    # changing one value of an existing preset rewrites that value only
    again.presets["terse"].top_p = 0.5
    settings.save(again, path)
    assert "temperature = 0.1  # cold\ntop_p = 0.5\n" in path.read_text()
    assert settings.load(path)[0].presets["terse"] == settings.SamplerPreset(temperature=0.1, top_p=0.5)


def test_bad_preset_values_are_named_and_defaulted(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("[presets.hot]\ntemperature = 9\nflavour = 1\n[presets]\nlone = 3\n")
    loaded, problems = settings.load(path)
    assert loaded.presets == {"hot": settings.SamplerPreset()}
    assert "presets.hot.temperature: expected a number from 0 to 5, got 9; using 0.7" in problems
    assert "presets.hot.flavour: unknown key, ignored" in problems
    assert "presets.lone: expected a [presets.lone] table, ignored" in problems
