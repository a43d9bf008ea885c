"""The API the training area uses: prepare -> examples() per epoch, stats, progress, cancel."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from engine.data.dataset import DataSpec, prepare
from engine.data.job import scan_job
from engine.data.problems import DataError
from engine.events import Cancelled, Finished, Progress
from engine.jobs import JobContext, execute
from tests.helpers.requirements import require_module
from tests.helpers.tiny_model import cached_tiny_tokenizer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures_data"


@pytest.fixture(scope="module")
def model() -> Path:
    return cached_tiny_tokenizer("chatml")


def test_examples_are_rows_with_masked_labels_and_fresh_stats_each_pass(model):
    data = prepare({"path": str(FIXTURES / "problems.jsonl")}, str(model))
    first = list(data.examples())
    assert [row.records for row in first] == [(1,), (8,)]  # record numbers (line 6 is blank)
    for row in first:
        assert len(row.input_ids) == len(row.labels) == len(row.position_ids) == sum(row.seq_lengths)
        assert -100 in row.labels and any(label != -100 for label in row.labels)
        assert row.as_dict()["seq_lengths"] == [len(row)]
    assert data.stats.problem_total == 6 and len(data.problems) == 6
    second = list(data.examples())  # the next epoch streams the file again
    assert [r.input_ids for r in second] == [r.input_ids for r in first]
    assert data.stats.problem_total == 6 and data.stats.kept == 2


def test_spec_round_trips_and_checks_itself(tmp_path):
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages[0]['content'] }}")
    spec = DataSpec.from_dict(
        {"path": "x.csv", "map": ["instruction=q"], "max_seq_len": "64", "policy": "pack", "chat_template_file": str(template)}
    )
    # chat_template_file is another name for chat_template (a name, a file or Jinja text)
    assert spec.mapping == {"instruction": "q"} and spec.max_seq_len == 64 and spec.chat_template == str(template)
    assert DataSpec.from_dict(spec.to_dict()) == spec
    json.dumps(spec.to_dict())
    with pytest.raises(DataError, match="packing needs max_seq_len"):
        DataSpec("x", policy="pack")
    with pytest.raises(DataError, match="unknown length policy"):
        DataSpec("x", policy="squeeze")
    with pytest.raises(DataError, match="unknown loss mode"):
        DataSpec("x", loss_on="user")


def test_prepare_fails_fast_on_an_unusable_file(tmp_path, model):
    path = tmp_path / "x.jsonl"
    path.write_text('{"foo": 1}\n')
    with pytest.raises(DataError, match="x.jsonl: cannot detect"):
        prepare(DataSpec(str(path)), str(model))


def test_scan_job_reports_progress_and_previews(model):
    events = []
    ctx = JobContext(events.append, min_interval=0)
    final = execute(scan_job, {"path": str(FIXTURES / "openai.jsonl"), "model": str(model), "max_seq_len": 40, "previews": 2}, ctx)
    assert isinstance(final, Finished)
    summary = final.summary
    json.dumps(summary)
    phases = {e.phase for e in events if isinstance(e, Progress)}
    assert {"tokenizer", "scan"} <= phases
    last_scan = [e for e in events if isinstance(e, Progress) and e.phase == "scan"][-1]
    assert last_scan.done == last_scan.total
    assert len(summary["previews"]) == 2
    first = summary["previews"][0]
    assert [first["text"][s:e] for s, e in first["spans"]] == ["Hi there.<|im_end|>", "Paris.<|im_end|>"]
    assert first["cut_char"] is not None  # 68 tokens > 40: the preview knows where the cut falls


def test_scan_job_cancels_promptly(tmp_path, model):
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(5000)))
    cancel = threading.Event()
    seen = []

    def emit(event):
        seen.append(event)
        if isinstance(event, Progress) and event.phase == "scan":
            cancel.set()

    final = execute(scan_job, {"path": str(path), "model": str(model)}, JobContext(emit, cancel, min_interval=0))
    assert isinstance(final, Cancelled)


def test_scan_job_needs_a_file_and_a_model():
    ctx = JobContext(lambda e: None)
    assert "no dataset file" in execute(scan_job, {"model": "m"}, ctx).message
    assert "no model" in execute(scan_job, {"path": "x.jsonl"}, ctx).message


def test_iterable_dataset_for_trainers(model):
    require_module("datasets")
    data = prepare(DataSpec(str(FIXTURES / "openai.jsonl"), max_seq_len=64, policy="pack"), str(model))
    rows = list(data.to_iterable_dataset())
    assert [row["seq_lengths"] for row in rows] == [r.seq_lengths for r in data.examples()]
    assert all(len(row["input_ids"]) == len(row["labels"]) == sum(row["seq_lengths"]) for row in rows)
