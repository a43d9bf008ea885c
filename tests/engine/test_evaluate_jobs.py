"""Evaluations as detached runs: results kept in the run folder, read back as tables, and the
`llmdeck eval` / `llmdeck bench` commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.cli import OpenTUI, run_command
from engine.evaluate import results
from engine.runs import RunStore
from tests.engine.evaluate_helpers import PROSE, tiny_gguf, tiny_hf
from tests.helpers.requirements import require_module

require_module("llama_cpp")


def _wait(store: RunStore, run_id: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    info = store.get(run_id)
    while info.active and time.monotonic() < deadline:
        time.sleep(0.2)
        info = store.get(run_id)
    return info


def test_detached_ppl_and_speed_runs_are_kept_and_comparable() -> None:
    store = RunStore()
    ppl = store.start("eval.ppl",
                      {"model": str(tiny_gguf()), "file": str(PROSE), "ctx": 32, "max_tokens": 60, "n_threads": 1})
    speed = store.start("bench.speed",
                        {"model": str(tiny_hf()), "prompt_len": 16, "gen_len": 4, "reps": 2, "n_threads": 1})
    for run in (ppl, speed):
        info = _wait(store, run.id)
        assert info.status == "succeeded", store.log_tail(run.id)
        assert (info.out_dir / "result.json").is_file()
    assert store.last_progress(ppl.id).phase == "perplexity"

    records = results.list_records(store)
    assert {r["kind"] for r in records} == {"eval.ppl", "bench.speed"}
    by_kind = {r["kind"]: r for r in records}
    assert by_kind["eval.ppl"]["run_id"] == ppl.id and by_kind["eval.ppl"]["result"]["tokens_evaluated"] == 60
    assert by_kind["eval.ppl"]["machine"]["cpus"] >= 1 and "llama_cpp" in by_kind["eval.ppl"]["machine"]
    assert by_kind["bench.speed"]["backend"] == "transformers"
    row = results.speed_row(by_kind["bench.speed"])
    assert row[2] == "transformers" and row[3] == "cpu float32" and "±" in row[4]
    text = results.format_table(results.PPL_HEADERS, [results.ppl_row(by_kind["eval.ppl"])])
    assert "tiny-f32.gguf" in text and ppl.id in text

    # the record survives without out/result.json too (read from the Finished event)
    (store.get(ppl.id).out_dir / "result.json").unlink()
    again = results.load_run_record(store.get(ppl.id), store)
    assert again is not None and again["result"]["ppl"] == by_kind["eval.ppl"]["result"]["ppl"]


def test_failed_run_has_one_line_reason(tmp_path: Path) -> None:
    store = RunStore()
    run = store.start("eval.ppl", {"model": str(tiny_gguf()), "file": str(tmp_path / "none.txt")})
    info = _wait(store, run.id)
    assert info.status == "failed" and "text file not found" in info.exit_reason and "Traceback" not in info.exit_reason
    assert results.list_records(store) == []


def test_cli_eval_ppl_and_results(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_command(["eval", "ppl", str(tiny_gguf()), str(PROSE), "--ctx", "32", "--max-tokens", "40",
                        "--threads", "1", "--json"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["kind"] == "eval.ppl" and record["result"]["tokens_evaluated"] == 40
    assert run_command(["bench", "results"]) == 0
    out = capsys.readouterr().out
    assert "perplexity" in out and record["run_id"] in out
    assert run_command(["bench", "results", "--kind", "speed"]) == 0
    assert "no evaluation results" in capsys.readouterr().out


def test_cli_bench_detach_and_tui(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_command(["bench", str(tiny_gguf()), "--prompt-len", "8", "--gen", "2", "--reps", "1",
                        "--threads", "1", "--detach"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("started run ")
    run_id = out.split()[2].rstrip(";")
    assert _wait(RunStore(), run_id).status == "succeeded"
    result = run_command(["bench"])
    assert isinstance(result, OpenTUI) and result.mode == "bench"


@pytest.mark.parametrize("argv,message", [
    (["eval", "ppl", "missing.gguf", "x.txt"], "model not found"),
    (["bench", "missing.gguf"], "model not found"),
    (["bench", "sweep", "{model}", "--types", "Q9", "--ppl-file", "{prose}"], "unknown quantization type"),
    (["bench", "sweep", "{model}", "--types", "Q8_0", "--ppl-file", "nope.txt"], "--ppl-file not found"),
    (["bench", "{model}", "--reps", "0"], "--reps must be at least 1"),
])
def test_cli_user_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(model=tiny_gguf(), prose=PROSE) for a in argv]
    assert run_command(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
