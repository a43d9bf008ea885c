"""Preference, KTO and prompt datasets: detection, normalization of the common shapes, problems
per line, TRL rows, and the Data-mode report with both answers of a pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.commands.data import format_report
from engine.data.dataset import DataSpec, prepare
from engine.data.formats import FormatSpec, detect_format
from engine.data.job import scan_job
from engine.data.preference import PreferenceExample, trl_row
from engine.data.problems import RecordProblem
from engine.jobs import JobContext
from tests.helpers.tiny_model import cached_tiny_tokenizer

HH_CHOSEN = "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.\n\nHuman: Sure?\n\nAssistant: Yes, 4."
HH_REJECTED = "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.\n\nHuman: Sure?\n\nAssistant: No idea."
UF = {
    "prompt": "Name a colour.",
    "prompt_id": "abc",
    "chosen": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    "rejected": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "I won't."}],
    "messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    "score_chosen": 8.0,
    "score_rejected": 2.0,
}


def write(tmp_path: Path, name: str, rows: list) -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_detection_prefers_pairs_and_labels_and_falls_back_to_prompts():
    assert detect_format([UF]) == "preference"  # UltraFeedback rows also carry `messages`
    assert detect_format([{"chosen": HH_CHOSEN, "rejected": HH_REJECTED}]) == "preference"
    assert detect_format([{"prompt": "p", "completion": "c", "label": True}]) == "unpaired"
    assert detect_format([{"prompt": "p", "completion": "c"}]) == "prompt_completion"
    assert detect_format([{"prompt": "p", "answer": "4"}]) == "prompt"
    mapped = {"chosen": "good", "rejected": "bad"}
    assert detect_format([{"question": "q", "good": "a", "bad": "b"}], mapped) == "preference"


def test_anthropic_hh_conversations_split_into_prompt_and_answers():
    ex = FormatSpec("preference").normalize({"chosen": HH_CHOSEN, "rejected": HH_REJECTED})
    assert isinstance(ex, PreferenceExample) and ex.conversational
    assert [m["role"] for m in ex.prompt] == ["user", "assistant", "user"]
    assert ex.prompt[2]["content"] == "Sure?"
    assert ex.chosen == ({"role": "assistant", "content": "Yes, 4."},)
    assert ex.rejected == ({"role": "assistant", "content": "No idea."},)


def test_ultrafeedback_lists_drop_the_repeated_prompt():
    ex = FormatSpec("preference").normalize(UF)
    assert ex.prompt == ({"role": "user", "content": "Name a colour."},)
    assert ex.chosen == ({"role": "assistant", "content": "Blue."},)
    assert ex.rejected == ({"role": "assistant", "content": "I won't."},)


def test_plain_text_pairs_become_turns_for_a_chat_template_and_kto_splits_them():
    ex = FormatSpec("preference").normalize({"prompt": "Q?", "chosen": "good", "rejected": "bad"})
    assert not ex.conversational and ex.chosen == "good"
    conv = ex.as_conversation()
    assert conv.prompt == ({"role": "user", "content": "Q?"},)
    assert conv.rejected == ({"role": "assistant", "content": "bad"},)
    assert trl_row(conv, "dpo") == [{"prompt": [{"role": "user", "content": "Q?"}],
                                     "chosen": [{"role": "assistant", "content": "good"}],
                                     "rejected": [{"role": "assistant", "content": "bad"}]}]
    kto = trl_row(ex, "kto")
    assert [(r["completion"], r["label"]) for r in kto] == [("good", True), ("bad", False)]
    grpo = FormatSpec("prompt").normalize({"prompt": "Q?", "answer": 4, "meta": {"x": 1}})
    assert trl_row(grpo, "grpo") == [{"answer": "4", "prompt": "Q?"}]  # scalar columns kept, as text


@pytest.mark.parametrize("record, needle", [
    ({"chosen": "just text", "rejected": "other"}, "not Human:/Assistant: conversations"),
    ({"prompt": "Q", "chosen": "", "rejected": "b"}, "'chosen' is empty"),
    ({"prompt": "Q", "chosen": "a"}, "missing field 'rejected'"),
    ({"chosen": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
      "rejected": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
     "both answers are the same"),
    ({"prompt": "Q", "chosen": [{"role": "user", "content": "x"}], "rejected": "b"},
     "does not end with an assistant turn"),
])
def test_bad_pairs_say_what_is_wrong(record, needle):
    with pytest.raises(RecordProblem, match=needle):
        FormatSpec("preference").normalize(record)


def test_kto_labels_accept_common_spellings_and_refuse_others():
    spec = FormatSpec("unpaired")
    for value, expected in ((True, True), (0, False), ("yes", True), ("False", False), ("bad", False)):
        assert spec.normalize({"prompt": "p", "completion": "c", "label": value}).label is expected
    with pytest.raises(RecordProblem, match="use true"):
        spec.normalize({"prompt": "p", "completion": "c", "label": "maybe"})


def test_problems_are_reported_per_line(tmp_path):
    path = write(tmp_path, "pairs.jsonl", [
        {"prompt": "A?", "chosen": "yes", "rejected": "no"},
        "{not json",
        {"prompt": "B?", "chosen": "yes"},
        {"prompt": "A?", "chosen": "yes", "rejected": "no"},
    ])
    data = prepare(DataSpec(str(path)), cached_tiny_tokenizer())
    good = list(data.validator)
    assert len(good) == 1
    assert [(p.where.line, p.kind) for p in data.problems] == [(2, "bad_json"), (3, "missing_field"), (4, "duplicate")]


def test_scan_shows_both_answers_rendered_with_lengths_and_the_cut(tmp_path):
    long = "word " * 100
    path = write(tmp_path, "hh.jsonl", [
        {"chosen": HH_CHOSEN, "rejected": HH_REJECTED},
        {"prompt": "Short?", "chosen": "Yes.", "rejected": long},
        {"prompt": "x", "completion": "y"},  # not a pair: a problem on line 3
    ])
    summary = scan_job({"path": str(path), "model": str(cached_tiny_tokenizer()), "max_seq_len": 80,
                        "previews": 10}, JobContext(lambda e: None))
    assert summary["format_name"] == "preference" and summary["valid"] == 2
    assert summary["problem_list"][0]["line"] == 3
    first, second = summary["previews"]
    assert [s["label"] for s in first["sides"]] == ["chosen", "rejected"]
    assert first["prompt"].startswith("<|im_start|>user\nWhat is 2+2?")
    assert first["prompt"].endswith("<|im_start|>assistant\n")
    assert first["sides"][0]["answer"].startswith("Yes, 4.") and first["sides"][1]["answer"].startswith("No idea.")
    chosen, rejected = second["sides"]
    assert chosen["cut_char"] is None and chosen["n_tokens"] <= 80
    assert rejected["n_tokens"] > 80 and 0 < rejected["cut_char"] < len(rejected["answer"])
    assert rejected["n_answer"] == rejected["n_tokens"] - rejected["n_prompt"]
    assert summary["over"] == 1 and summary["length"]["max"] == rejected["n_tokens"]
    text = "\n".join(format_report(summary, show=2))
    assert "── chosen · " in text and "── rejected · " in text and "✂" in text
