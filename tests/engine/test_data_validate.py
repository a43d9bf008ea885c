"""Validation: every problem kind with the right line/record number; strict stops at the first;
big files stream."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from engine.data.loaders import open_source
from engine.data.problems import DataError
from engine.data.validate import Validator, choose_format
from tests.helpers.requirements import require_module

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures_data"


def validate(path: Path, **kwargs):
    source = open_source(path)
    validator = Validator(source, choose_format(source, kwargs.pop("fmt", None), kwargs.pop("mapping", None)), **kwargs)
    good = [(where, ex) for where, ex in validator]
    return validator, good


def test_every_problem_kind_with_its_line():
    validator, good = validate(FIXTURES / "problems.jsonl")
    found = [(p.where.line, p.kind) for p in validator.problems]
    assert found == [
        (2, "bad_json"),
        (3, "missing_field"),
        (4, "empty_turn"),
        (5, "unknown_role"),
        (7, "duplicate"),
        (8, "not_object"),
    ]
    assert [where.line for where, _ in good] == [1, 9]
    assert validator.records == 8 and validator.valid == 2  # the blank line 6 is not a record
    assert validator.counts == {k: 1 for _, k in found}
    text = {p.kind: str(p) for p in validator.problems}
    assert text["duplicate"] == "problems.jsonl:7: duplicate of line 1"
    assert text["unknown_role"].startswith("problems.jsonl:5: turn 1 has unknown role 'narrator'")
    assert text["missing_field"] == "problems.jsonl:3: missing field 'messages'"


def test_strict_stops_at_the_first_problem():
    with pytest.raises(DataError) as info:
        validate(FIXTURES / "problems.jsonl", strict=True)
    assert str(info.value).startswith("problems.jsonl:2: bad JSON")
    assert "--strict" in str(info.value)


def test_strict_passes_a_clean_file():
    validator, good = validate(FIXTURES / "openai.jsonl", strict=True)
    assert len(good) == 3 and validator.problem_total == 0


def test_duplicates_can_be_kept():
    validator, good = validate(FIXTURES / "problems.jsonl", dedupe=False)
    assert "duplicate" not in validator.counts and [w.line for w, _ in good] == [1, 7, 9]


def test_json_array_records_keep_their_lines():
    # sharegpt.json is pretty-printed: record 2 starts further down the file.
    path = FIXTURES / "sharegpt.json"
    validator, good = validate(path)
    lines = path.read_text().splitlines()
    starts = [i + 1 for i, line in enumerate(lines) if line.startswith("  {")]
    assert [w.line for w, _ in good] == starts and [w.record for w, _ in good] == [1, 2]


def test_json_array_problem_lines(tmp_path):
    path = tmp_path / "arr.json"
    path.write_text('[\n  {"text": "ok"},\n  {"text": ""},\n  {"txt": "x"},\n  {"text": "ok"}\n]\n')
    validator, good = validate(path, fmt="text")
    assert [(p.where.line, p.kind) for p in validator.problems] == [
        (3, "empty_turn"), (4, "missing_field"), (5, "duplicate")]
    assert str(validator.problems[2]) == "arr.json:5: duplicate of line 2"


def test_csv_lines_count_multiline_cells(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text('prompt,completion\n"two\nlines",fine\n,missing\nok,\nlast,one\n')
    validator, good = validate(path)
    assert [(p.where.line, p.kind) for p in validator.problems] == [(4, "empty_turn"), (5, "empty_turn")]
    assert [w.line for w, _ in good] == [2, 6]


def test_parquet_problems_name_records(tmp_path):
    pa = require_module("pyarrow")
    pq = require_module("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["a", "", "b", "a"]}), path)
    validator, good = validate(path)
    assert [str(p) for p in validator.problems] == ["t.parquet record 2: the text is empty",
                                                    "t.parquet record 4: duplicate of record 1"]


def test_turn_level_problems(tmp_path):
    rows = [
        {"messages": [{"role": "user"}]},
        {"messages": [{"content": "hi"}]},
        {"messages": "hello"},
        {"messages": []},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
        {"messages": [{"role": 3, "content": "x"}]},
    ]
    path = tmp_path / "turns.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    validator, good = validate(path)
    assert not good
    assert [(p.where.line, p.kind) for p in validator.problems] == [
        (1, "missing_field"),
        (2, "missing_field"),
        (3, "wrong_type"),
        (4, "empty_turn"),
        (5, "wrong_type"),
        (6, "wrong_type"),
    ]


def test_problem_list_is_capped_but_counts_are_not(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text('{"text": "a"}\n' + "not json\n" * 50)
    validator, _ = validate(path, keep=10)
    assert len(validator.problems) == 10 and validator.counts["bad_json"] == 50


def test_jsonl_streams_without_holding_the_file(tmp_path):
    """A ~6 MB JSONL is validated with far less than its size in Python memory."""
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i in range(600):
            f.write(json.dumps({"text": f"{i} " + "word " * 2000}) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        validator, count = None, 0
        source = open_source(path)
        validator = Validator(source, choose_format(source))
        for _ in validator:
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 600
    assert peak < size / 10, f"peak {peak} bytes for a {size} byte file"
