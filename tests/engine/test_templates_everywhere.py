"""One named set of chat templates (llama-2, llama-3, mistral, chatml, gemma, alpaca) with the same
automatic choice in chat, data preparation, training and GGUF -> HF conversion; a model without
a template of its own is never refused; a name or a file is accepted; training catches a template
problem before its run starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.chat.templates import BUILTIN_TEMPLATES, resolve_template, template_for_tokenizer
from engine.cli import run_command
from engine.data.dataset import DataSpec, prepare
from engine.data.tokenizer import load_tokenizer
from engine.runs import RunStore
from tests.engine.test_convert_tiny import make_llama

CHAT = [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base model: a Llama with a SentencePiece tokenizer and no chat template of its own."""
    folder = tmp_path_factory.mktemp("base") / "llama-base"
    make_llama(folder, tokenizer="spm", n_kv_heads=2)
    assert not load_tokenizer(folder).chat_template
    return folder


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    path = tmp_path / "chat.jsonl"
    rows = [CHAT] + [
        [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": f"{2 * i}."}]
        for i in range(3)
    ]
    path.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    return path


def test_the_named_set_includes_alpaca() -> None:
    assert set(BUILTIN_TEMPLATES) == {"llama-2", "llama-3", "mistral", "chatml", "gemma", "alpaca"}
    text = resolve_template(override="alpaca", eos_token="</s>").render(CHAT)
    assert text == "### Instruction:\nWhat is two plus two?\n\n### Response:\nFour.</s>\n\n### Response:\n"


def test_data_uses_the_builtin_for_the_architecture_and_says_so(base_model: Path, chat_file: Path) -> None:
    data = prepare(DataSpec(str(chat_file)), load_tokenizer(base_model), base_model)
    assert data.template.name == "llama-2"
    assert data.template_text == "built-in llama-2 template (the model has none; chosen for architecture llama)"
    rows = list(data.examples())
    assert len(rows) == 4 and data.stats.template == data.template_text
    tok = load_tokenizer(base_model)
    want = tok(
        resolve_template(override="llama-2", bos_token=tok.bos_token, eos_token=tok.eos_token).render(CHAT, False),
        add_special_tokens=False,
    ).input_ids
    assert rows[0].input_ids == want  # exactly what chat renders for this model


def test_template_for_tokenizer_matches_chats_choice(base_model: Path) -> None:
    tok = load_tokenizer(base_model)
    chosen = template_for_tokenizer(tok, None, base_model)
    assert (chosen.name, chosen.source, chosen.chosen_for) == ("llama-2", "built-in", "llama")
    assert template_for_tokenizer(tok, "chatml", base_model).name == "chatml"


def test_data_inspect_takes_a_name_or_a_file(
    base_model: Path, chat_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_command(["data", "inspect", str(chat_file), "--model", str(base_model)]) == 0
    assert (
        "template: built-in llama-2 template (the model has none; chosen for architecture llama)"
        in capsys.readouterr().out
    )
    assert run_command(["data", "inspect", str(chat_file), "--model", str(base_model), "--chat-template", "gemma"]) == 0
    assert "template: built-in gemma template" in capsys.readouterr().out
    jinja = tmp_path / "mine.jinja"
    jinja.write_text("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}")
    assert (
        run_command(["data", "inspect", str(chat_file), "--model", str(base_model), "--chat-template", str(jinja)]) == 0
    )
    assert "template: chat template mine.jinja (file)" in capsys.readouterr().out
    missing = [
        "data",
        "inspect",
        str(chat_file),
        "--model",
        str(base_model),
        "--chat-template",
        str(tmp_path / "nosuch.jinja"),
    ]
    assert run_command(missing) == 2
    assert "nosuch.jinja does not exist (give a file, or one of auto, llama-2" in capsys.readouterr().err


def test_train_refuses_a_bad_template_before_the_run_starts(
    base_model: Path, chat_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--model", str(base_model), "--data", str(chat_file), "--max-steps", "1", "--cpu", "--detach"]
    assert run_command([*args, "--chat-template", "model"]) == 2
    assert "this model has no chat template of its own" in capsys.readouterr().err
    assert run_command([*args, "--chat-template", "gemmma"]) == 2
    assert "chat_template: 'gemmma' is neither a built-in template" in capsys.readouterr().err
    assert RunStore().list() == []  # nothing was started


def test_train_without_a_template_starts_and_says_which(
    base_model: Path, chat_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "train",
        "--model",
        str(base_model),
        "--data",
        str(chat_file),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--max-seq-len",
        "32",
        "--cpu",
        "--detach",
    ]
    assert run_command(args) == 0
    out = capsys.readouterr().out
    assert "chat template: built-in llama-2 template (the model has none; chosen for architecture llama)" in out
    assert [r.kind for r in RunStore().list()] == ["train"]
