"""Rendering through a real chat template and the loss mask: exactly the assistant tokens and
their end-of-turn token are trained on; "all" trains on everything."""

from __future__ import annotations

import json

import pytest

from engine.data.dataset import DataSpec, prepare
from engine.data.formats import Example
from engine.data.problems import DataError, RecordProblem
from engine.data.render import IGNORE_INDEX, Renderer
from engine.data.tokenizer import load_tokenizer
from tests.helpers.tiny_model import CHATML_TEMPLATE, cached_tiny_tokenizer

CHAT = (
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi there."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
)
EOT = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>"}


def trained_runs(ids: list[int], labels: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    previous = False
    for tok, label in zip(ids, labels, strict=True):
        trained = label != IGNORE_INDEX
        if trained:
            assert label == tok
            if not previous:
                runs.append([])
            runs[-1].append(tok)
        previous = trained
    return runs


@pytest.fixture(params=["chatml", "llama3"])
def style(request):
    return request.param


@pytest.fixture
def tok(style):
    return load_tokenizer(cached_tiny_tokenizer(style))


def test_ids_match_the_template_tokenization(tok):
    rendered = Renderer(tok).render(Example("chat", CHAT))
    assert rendered.input_ids == list(tok.apply_chat_template(list(CHAT), tokenize=True)["input_ids"])


def test_exactly_assistant_tokens_and_end_of_turn_are_trained(tok, style):
    rendered = Renderer(tok).render(Example("chat", CHAT))
    eot = tok.convert_tokens_to_ids(EOT[style])
    expected = [
        tok(m["content"], add_special_tokens=False)["input_ids"] + [eot] for m in CHAT if m["role"] == "assistant"
    ]
    assert trained_runs(rendered.input_ids, rendered.labels) == expected
    # and nothing else: the count of trained tokens is exactly that
    assert rendered.n_trained == sum(len(run) for run in expected)


def test_trained_spans_cover_the_assistant_text(tok, style):
    rendered = Renderer(tok, keep_text=True).render(Example("chat", CHAT))
    spans = [rendered.text[s:e] for s, e in rendered.trained_spans()]
    assert spans == [f"Hi there.{EOT[style]}", f"The capital of France is Paris.{EOT[style]}"]


def test_loss_on_all_unmasks_everything(tok):
    rendered = Renderer(tok, loss_on="all").render(Example("chat", CHAT))
    assert rendered.labels == rendered.input_ids and IGNORE_INDEX not in rendered.labels


def test_raw_text_is_trained_everywhere_and_ends_with_eos(tok):
    rendered = Renderer(tok).render(Example("text", text="The quick brown fox."))
    assert rendered.labels == rendered.input_ids
    assert rendered.input_ids[-1] == tok.eos_token_id


def test_prompt_completion_without_template_trains_the_completion(style, tmp_path):
    tok = load_tokenizer(cached_tiny_tokenizer(style))
    bare = tok.__class__.from_pretrained(str(cached_tiny_tokenizer(style)))
    bare.chat_template = None
    ex = Example(
        "completion",
        ({"role": "user", "content": "The capital of France is"}, {"role": "assistant", "content": " Paris."}),
    )
    rendered = Renderer(bare, keep_text=True).render(ex)
    assert [rendered.text[s:e] for s, e in rendered.trained_spans()] == [" Paris." + bare.eos_token]
    with pytest.raises(DataError, match="no chat template"):
        Renderer(bare).render(Example("chat", CHAT))


def test_generation_tags_are_used_when_the_template_has_them():
    tok = load_tokenizer(cached_tiny_tokenizer("chatml"))
    tagged = (
        "{%- for message in messages %}"
        "{%- if message['role'] == 'assistant' %}"
        "{{- '<|im_start|>assistant\\n' }}{% generation %}"
        "{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
        "{%- else %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    by_tags = Renderer(tok, chat_template=tagged)
    assert by_tags.generation_tags
    plain = Renderer(tok, chat_template=CHATML_TEMPLATE)
    a, b = by_tags.render(Example("chat", CHAT)), plain.render(Example("chat", CHAT))
    assert a.input_ids == b.input_ids and a.labels == b.labels


def test_template_errors_are_record_problems(tok):
    refusing = (
        "{%- if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        + CHATML_TEMPLATE
    )
    with pytest.raises(RecordProblem) as info:
        Renderer(tok, chat_template=refusing).render(Example("chat", CHAT))
    assert info.value.kind == "template" and "System role not supported" in info.value.reason


def test_template_problems_carry_the_line(tmp_path, tok):
    refusing = (
        "{%- if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}" + CHATML_TEMPLATE
    )
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"messages": list(CHAT[1:3])}) + "\n" + json.dumps({"messages": list(CHAT)}) + "\n")
    data = prepare(DataSpec(str(path), chat_template=refusing), tok)
    rows = list(data.examples())
    assert len(rows) == 1 and data.stats.problems == {"template": 1}
    assert str(data.problems[0]).startswith("chat.jsonl:2: chat template error: no system role")


def test_unstable_template_is_reported_not_mismasked(tok):
    # Renders the last assistant turn with a marker only when it is last: prefixes do not line up.
    unstable = (
        "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] }}"
        "{%- if loop.last and message['role'] == 'assistant' %}{{- ' (final)' }}{%- endif %}"
        "{{- '<|im_end|>\\n' }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )
    with pytest.raises(RecordProblem, match="renders turn 3 differently"):
        Renderer(tok, chat_template=unstable).render(Example("chat", CHAT))
    # training on everything needs no assistant spans, so it still works
    assert Renderer(tok, chat_template=unstable, loss_on="all").render(Example("chat", CHAT)).n_trained > 0


def test_truncate_keeps_the_start():
    from engine.data.render import Rendered

    r = Rendered([1, 2, 3, 4, 5], [-100, -100, 3, 4, 5])
    t = r.truncate(3)
    assert t.input_ids == [1, 2, 3] and t.labels == [-100, -100, 3] and t.truncated_from == 5
    assert r.truncate(10) is r


def test_no_assistant_turn_means_nothing_to_train(tmp_path, tok):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "anyone?"}]}) + "\n")
    data = prepare(DataSpec(str(path)), tok)
    assert list(data.examples()) == [] and data.stats.no_target == 1 and data.stats.dropped == 1
    data_all = prepare(DataSpec(str(path), loss_on="all"), tok)
    assert len(list(data_all.examples())) == 1


def test_assistant_first_conversation_masks_the_header(tok, style):
    chat = (
        {"role": "assistant", "content": "I start."},
        {"role": "user", "content": "ok"},
        {"role": "assistant", "content": "done"},
    )
    rendered = Renderer(tok, keep_text=True).render(Example("chat", chat))
    assert [rendered.text[s:e] for s, e in rendered.trained_spans()] == [f"I start.{EOT[style]}", f"done{EOT[style]}"]
