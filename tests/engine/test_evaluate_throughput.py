"""Speed measurement: the statistics, the synthetic prompt, and real runs on both backends."""

from __future__ import annotations

import pytest

from engine.evaluate.models import EvalError
from engine.evaluate.throughput import Spread, measure, prompt_ids
from engine.events import Metric, Progress
from engine.jobs import JobContext
from tests.engine.evaluate_helpers import tiny_gguf, tiny_hf
from tests.helpers.requirements import require_module


def test_spread() -> None:
    s = Spread.of([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.min, s.max) == (2.5, 1.0, 10.0)
    assert s.stdev == pytest.approx(4.0825, rel=1e-4)
    assert Spread.of([5.0]).stdev == 0.0 and Spread.of([5.0]).text() == "5.0"
    assert "±" in s.text()


def test_prompt_ids_reproducible_and_avoid_specials() -> None:
    a = prompt_ids(200, 1000, avoid={300, 301})
    assert a == prompt_ids(200, 1000, avoid={300, 301}) and len(a) == 200
    assert not {300, 301} & set(a) and all(250 <= t < 1000 for t in a)
    assert prompt_ids(10, 100) != prompt_ids(10, 100, seed=1)


@pytest.mark.parametrize("which", ["transformers", "llama.cpp"])
def test_measure_real_model(which: str) -> None:
    if which == "llama.cpp":
        require_module("llama_cpp")
    model = tiny_gguf() if which == "llama.cpp" else tiny_hf()
    events: list = []
    result = measure(model, prompt_len=48, gen_len=8, reps=3, job=JobContext(events.append, min_interval=0),
                     n_threads=1)
    assert result.backend == which and result.reps == 3 and len(result.runs) == 3
    for spread in (result.prompt_tps, result.gen_tps, result.ttft_s):
        assert len(spread.values) == 3 and 0 < spread.min <= spread.median <= spread.max
    for rep in result.runs:
        assert 0 < rep.prompt_s <= rep.ttft_s  # TTFT includes the prompt
        assert result.prompt_tps.min <= 48 / rep.prompt_s <= result.prompt_tps.max
    assert result.details["n_params"] > 0
    assert len([e for e in events if isinstance(e, Metric)]) == 3  # one per timed repetition
    assert [e for e in events if isinstance(e, Progress) and e.phase == "speed"][-1].done == 4  # + warm-up
    assert "tok/s" in result.line()


def test_bad_arguments(tmp_path) -> None:
    with pytest.raises(EvalError, match="at least 1"):
        measure(tiny_hf(), prompt_len=0)
    with pytest.raises(EvalError, match="model not found"):
        measure(tmp_path / "missing.gguf")
    (tmp_path / "fake.gguf").write_bytes(b"NOPE" * 10)
    require_module("llama_cpp")
    with pytest.raises(EvalError, match="not a GGUF"):
        measure(tmp_path / "fake.gguf")
    with pytest.raises(EvalError, match="folder"):
        measure(tiny_hf(), backend="llama.cpp")
