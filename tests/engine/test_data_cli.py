"""`llmdeck data inspect` prints the report; bad input is one line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import OpenTUI, run_command
from tests.helpers.tiny_model import cached_tiny_tokenizer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures_data"


@pytest.fixture(scope="module")
def model() -> str:
    return str(cached_tiny_tokenizer("chatml"))


def test_inspect_reports_problems_with_lines_and_exits_1(model, capsys):
    code = run_command(["data", "inspect", str(FIXTURES / "problems.jsonl"), "--model", model, "--max-seq-len", "24"])
    out = capsys.readouterr().out
    assert code == 1
    assert "problems.jsonl: OpenAI messages, detected" in out
    assert "records 8 · valid 2 · problems 6" in out
    problems = [
        (2, "bad_json"), (3, "missing_field"), (4, "empty_turn"),
        (5, "unknown_role"), (7, "duplicate"), (8, "not_object"),
    ]
    rows = out.splitlines()
    for line, kind in problems:
        assert any(row.strip().startswith(f"problems.jsonl:{line}") and kind in row for row in rows), (line, kind)
    assert "max_seq_len 24" in out and "histogram" in out


def test_inspect_clean_file_exits_0_and_shows_marked_records(model, capsys):
    code = run_command(
        ["data", "inspect", str(FIXTURES / "openai.jsonl"), "--model", model, "--show", "1", "--max-seq-len", "40"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "⟦Hi there.<|im_end|>⟧" in out and "⟦Paris.<|im_end|>⟧" in out
    assert "1 of 3 examples longer -> truncated" in out


def test_inspect_json_has_the_numbers(model, capsys):
    code = run_command(
        ["data", "inspect", str(FIXTURES / "qa.csv"), "--model", model,
         "--map", "instruction=question", "--map", "output=answer",
         "--max-seq-len", "32", "--policy", "drop", "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["format_name"] == "alpaca" and report["records"] == 3 and report["policy"] == "drop"
    hist = report["histogram"]
    beyond = sum(hist["counts"][hist["edges"].index(32) :])
    assert report["dropped_too_long"] == report["over"] == beyond > 0
    assert report["kept"] == 3 - beyond
    assert report["columns"] == ["question", "answer", "source"]


def test_strict_is_an_error_naming_the_line(model, capsys):
    code = run_command(["data", "inspect", str(FIXTURES / "problems.jsonl"), "--model", model, "--strict"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (
        "llmdeck: error: problems.jsonl:2: bad JSON: Expecting value (column 49) (--strict stops at the first problem)"
    )


@pytest.mark.parametrize(
    "content, name, expected",
    [
        (b"", "empty.jsonl", "empty.jsonl: the file is empty"),
        ('{"text": "caf\u00e9"}\n'.encode("latin-1"), "latin.jsonl", "latin.jsonl: not UTF-8"),
        (b"a,b\n1,2\n", "nums.csv", "nums.csv: CSV has no usable columns"),
        (b"PAR1garbagePAR1", "bad.parquet", "bad.parquet: cannot read Parquet"),
        (b'{"foo": 1}\n', "odd.jsonl", "odd.jsonl: cannot detect the dataset format"),
    ],
)
def test_bad_input_is_one_line(tmp_path, model, capsys, content, name, expected):
    path = tmp_path / name
    path.write_bytes(content)
    code = run_command(["data", "inspect", str(path), "--model", model])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err and "Traceback" not in err


def test_bad_model_paths(tmp_path, capsys):
    data = str(FIXTURES / "text.jsonl")
    assert run_command(["data", "inspect", data, "--model", str(tmp_path / "nope")]) == 2
    assert "no such model or tokenizer folder" in capsys.readouterr().err
    assert run_command(["data", "inspect", data, "--model", str(tmp_path)]) == 2
    assert "no tokenizer here" in capsys.readouterr().err
    assert run_command(["data", "inspect", data, "--model", str(tmp_path), "--policy", "pack"]) == 2
    assert "--policy pack needs --max-seq-len" in capsys.readouterr().err


def test_data_without_action_opens_the_tui(model):
    result = run_command(["data", "--file", "x.jsonl", "--model", model])
    assert result == OpenTUI(mode="data", options={"file": "x.jsonl", "model": model})
    assert run_command(["data"]) == OpenTUI(mode="data", options={})
    assert run_command(["data", "--max-seq-len", "512"]) == OpenTUI(mode="data", options={"max_seq_len": 512})


def test_help_lists_inspect_without_loading_torch():
    code = (
        "import sys\nfrom engine.cli import build_parser\nbuild_parser()\n"
        "print('transformers' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.split() == ["False", "False"]
