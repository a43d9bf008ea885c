"""Loading and format detection: every format from real-shaped samples, the field mapping
override, and every kind of unusable file as one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.formats import FormatSpec, detect_format, parse_mapping
from engine.data.loaders import open_source
from engine.data.problems import DataError
from engine.data.validate import Validator, choose_format
from tests.helpers.requirements import require_module

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures_data"


def examples(path: Path, fmt: str | None = None, mapping: dict[str, str] | None = None):
    source = open_source(path)
    spec = choose_format(source, fmt, mapping)
    validator = Validator(source, spec)
    return spec, [ex for _, ex in validator], validator


@pytest.mark.parametrize(
    "name, fmt, kind, first_roles",
    [
        ("alpaca.jsonl", "alpaca", "chat", ["user", "assistant"]),
        ("sharegpt.json", "sharegpt", "chat", ["system", "user", "assistant"]),
        ("openai.jsonl", "openai", "chat", ["system", "user", "assistant", "user", "assistant"]),
        ("prompt_completion.jsonl", "prompt_completion", "completion", ["user", "assistant"]),
        ("prompt_completion.csv", "prompt_completion", "completion", ["user", "assistant"]),
        ("text.jsonl", "text", "text", []),
    ],
)
def test_each_format_is_detected(name, fmt, kind, first_roles):
    spec, exs, validator = examples(FIXTURES / name)
    assert spec.name == fmt and spec.detected
    assert validator.problem_total == 0
    assert exs and all(ex.kind == kind for ex in exs)
    assert [m["role"] for m in exs[0].messages] == first_roles


def test_alpaca_input_joins_the_instruction():
    _, exs, _ = examples(FIXTURES / "alpaca.jsonl")
    assert exs[1].messages[0]["content"] == "Translate to German.\n\ngood morning"
    assert exs[0].messages[0]["content"] == "Give the capital of France."  # empty input adds nothing
    assert exs[1].messages[1] == {"role": "assistant", "content": "Guten Morgen."}


def test_openai_content_parts_are_joined():
    _, exs, _ = examples(FIXTURES / "openai.jsonl")
    assert exs[2].messages[0]["content"] == "Count to three."


def test_sharegpt_roles_are_mapped_to_template_roles():
    _, exs, _ = examples(FIXTURES / "sharegpt.json")
    assert [m["role"] for m in exs[1].messages] == ["user", "assistant", "user", "assistant"]


def test_mapping_override_reads_other_column_names():
    with pytest.raises(DataError, match=r"qa\.csv: CSV has no usable columns \(header: question, answer, source\)"):
        examples(FIXTURES / "qa.csv")
    spec, exs, _ = examples(FIXTURES / "qa.csv", mapping={"instruction": "question", "output": "answer"})
    assert spec.name == "alpaca" and "instruction=question" in spec.describe()
    assert exs[1].messages[0]["content"] == "Explain gradient descent\nin one line."
    assert exs[1].messages[1]["content"] == "Follow the slope downhill."


def test_mapping_renames_keys_inside_turns(tmp_path):
    path = tmp_path / "dialog.jsonl"
    rows = [{"dialog": [{"speaker": "human", "text": "Hi"}, {"speaker": "bot", "text": "Hello"}]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec, exs, _ = examples(path, "openai", {"messages": "dialog", "role": "speaker", "content": "text"})
    assert [(m["role"], m["content"]) for m in exs[0].messages] == [("user", "Hi"), ("assistant", "Hello")]


def test_forced_format_beats_detection(tmp_path):
    path = tmp_path / "both.jsonl"
    path.write_text(json.dumps({"text": "raw words", "prompt": "p", "completion": "c"}) + "\n")
    assert examples(path)[0].name == "prompt_completion"
    spec, exs, _ = examples(path, "text")
    assert spec.name == "text" and exs[0].text == "raw words"


def test_parquet_is_read_in_batches(tmp_path):
    pa = require_module("pyarrow")
    pq = require_module("pyarrow.parquet")
    path = tmp_path / "chat.parquet"
    messages = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(1200)]
    pq.write_table(pa.table({"messages": messages}), path)
    spec, exs, validator = examples(path)
    assert spec.name == "openai" and len(exs) == 1200 and validator.problem_total == 0
    assert exs[1199].messages[1]["content"] == "a1199"


def test_json_wrapped_in_an_object_and_jsonl_named_json(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"version": 1, "data": [{"text": "one"}, {"text": "two"}]}))
    assert [ex.text for ex in examples(wrapped)[1]] == ["one", "two"]
    jsonl = tmp_path / "lines.json"
    jsonl.write_text('{"text": "a"}\n{"text": "b"}\n')
    source = open_source(jsonl)
    assert source.kind == "jsonl"


def test_detect_format_and_parse_mapping_units():
    assert detect_format([{"messages": []}]) == "openai"
    assert detect_format([{"conversations": []}]) == "sharegpt"
    assert detect_format([{"instruction": "", "output": ""}]) == "alpaca"
    assert detect_format([{"prompt": "", "completion": ""}]) == "prompt_completion"
    assert detect_format(["just a string"]) == "text"
    assert detect_format([{"q": 1}]) is None
    assert detect_format([{"q": 1, "a": 2}], {"prompt": "q", "completion": "a"}) == "prompt_completion"
    assert parse_mapping(["instruction=question", "output = answer"]) == {"instruction": "question", "output": "answer"}
    with pytest.raises(DataError, match="unknown field 'questoin'"):
        parse_mapping(["questoin=q"])
    with pytest.raises(DataError, match="expected FIELD=NAME"):
        parse_mapping(["instruction"])
    with pytest.raises(DataError, match="unknown format"):
        choose_format(open_source(FIXTURES / "text.jsonl"), "llama-factory")
    assert FormatSpec("text").describe() == "raw text"


# -- unusable files: one line, the file's name, the reason ---------------------------------
def _one_line_error(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        source = open_source(path)
        spec = choose_format(source, kwargs.get("fmt"))
        list(Validator(source, spec))
    message = str(info.value)
    assert "\n" not in message and path.name in message
    return message


def test_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"text": "caf\u00e9"}\n'.encode("latin-1"))
    assert "not UTF-8" in _one_line_error(path)


def test_not_utf8_late_in_a_big_file(tmp_path):
    path = tmp_path / "late.jsonl"
    good = b'{"text": "fine"}\n' * 5000  # past the sniffed head
    path.write_bytes(good + '{"text": "caf\u00e9"}\n'.encode("latin-1"))
    assert "line 5001" in _one_line_error(path)


def test_utf16_is_named(tmp_path):
    path = tmp_path / "utf16.jsonl"
    path.write_bytes('{"text": "x"}\n'.encode("utf-16"))
    assert "UTF-16" in _one_line_error(path)


def test_empty_and_whitespace_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert "empty" in _one_line_error(empty)
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n  \n")
    assert "empty" in _one_line_error(blank)


def test_csv_with_no_usable_columns(tmp_path):
    path = tmp_path / "nums.csv"
    path.write_text("a,b\n1,2\n")
    assert "CSV has no usable columns (header: a, b)" in _one_line_error(path)


def test_unreadable_parquet(tmp_path):
    require_module("pyarrow")
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not really parquet PAR1")
    assert "cannot read Parquet" in _one_line_error(path)


def test_undetectable_format(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"foo": 1, "bar": 2}) + "\n")
    message = _one_line_error(path)
    assert "cannot detect the dataset format (fields: foo, bar)" in message and "--map" in message


def test_broken_json_document(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": "b"\n]\n')
    assert "not valid JSON at line 4" in _one_line_error(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        open_source(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="is a directory"):
        open_source(tmp_path)


def test_one_line_conversation_is_a_record_not_a_wrapper(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}))
    spec, exs, _ = examples(path)
    assert spec.name == "sharegpt" and len(exs) == 1


def test_not_utf8_late_in_a_csv(tmp_path):
    path = tmp_path / "late.csv"
    path.write_bytes(b"text\n" + b"fine words here\n" * 6000 + "caf\u00e9\n".encode("latin-1"))
    assert "not UTF-8" in _one_line_error(path)
