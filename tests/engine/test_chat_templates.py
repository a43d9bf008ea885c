"""Template choice and rendering: the model's own, built-ins per architecture, overrides, sandbox."""

from __future__ import annotations

import pytest

from engine.chat.templates import (
    BUILTIN_TEMPLATES,
    TemplateError,
    builtin_for_architecture,
    resolve_template,
)

CONVO = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Capital of France?"},
]


def test_gemma_gets_gemma_turns_not_llama2() -> None:
    tpl = resolve_template(architecture="gemma3", bos_token="<bos>", eos_token="<eos>")
    assert tpl.name == "gemma" and tpl.source == "built-in"
    text = tpl.render(CONVO)
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nCapital of France?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert "[INST]" not in text
    assert "<end_of_turn>" in tpl.stop_strings


@pytest.mark.parametrize(
    ("arch", "tokens", "expected"),
    [
        ("llama", set(), "llama-2"),
        ("llama", {"<|start_header_id|>"}, "llama-3"),
        ("mistral", set(), "mistral"),
        ("qwen2", set(), "chatml"),
        ("gemma2", set(), "gemma"),
        ("somethingnew", set(), "chatml"),
        (None, set(), "chatml"),
    ],
)
def test_builtin_for_architecture(arch, tokens, expected) -> None:
    assert builtin_for_architecture(arch, lambda t: t in tokens) == expected


def test_each_builtin_renders_every_role() -> None:
    for name in BUILTIN_TEMPLATES:
        tpl = resolve_template(override=name, bos_token="<s>", eos_token="</s>")
        text = tpl.render(CONVO)
        assert "Capital of France?" in text and "Hello!" in text and "Be brief." in text, name


def test_llama3_and_chatml_shapes() -> None:
    l3 = resolve_template(override="llama-3", bos_token="<|begin_of_text|>").render(CONVO[:2])
    assert l3.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert l3.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>")
    cm = resolve_template(override="chatml").render(CONVO[1:2])
    assert cm == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    l2 = resolve_template(override="llama-2", bos_token="<s>", eos_token="</s>").render(CONVO)
    assert l2.startswith("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Capital")


def test_model_template_wins_over_builtin_and_can_be_overridden() -> None:
    own = (
        "{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<<assistant>>{% endif %}"
    )
    tpl = resolve_template(model_template=own, architecture="gemma3")
    assert tpl.source == "model"
    assert tpl.render(CONVO[1:2]) == "<<user>>Hi<<assistant>>"
    forced = resolve_template(override="gemma", model_template=own, architecture="llama")
    assert forced.name == "gemma"


def test_override_from_file_and_text(tmp_path) -> None:
    f = tmp_path / "mine.jinja"
    f.write_text("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}")
    assert resolve_template(override=str(f)).render(CONVO[1:2]) == "[user] Hi\n"
    assert resolve_template(override="{{ messages | length }}").render(CONVO) == "4"


def test_errors_are_clear() -> None:
    with pytest.raises(TemplateError, match="unknown chat template 'nope'"):
        resolve_template(override="nope")
    with pytest.raises(TemplateError, match="no chat template of its own"):
        resolve_template(override="model")
    with pytest.raises(TemplateError, match="does not compile"):
        resolve_template(override="{% for %}")
    boom = resolve_template(override="{{ raise_exception('only user/assistant roles') }}")
    with pytest.raises(TemplateError, match="only user/assistant roles"):
        boom.render(CONVO)


def test_sandbox_blocks_python_internals_and_mutation() -> None:
    evil = resolve_template(override="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError):
        evil.render(CONVO)
    mutate = resolve_template(override="{{ messages.append({'role': 'x'}) }}")
    with pytest.raises(TemplateError):
        mutate.render(CONVO)
