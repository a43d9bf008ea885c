"""Quantize with llama.cpp's quantizer: outputs load and generate; imatrix, requantize, cancel."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.convert import jobs, preflight
from engine.events import Cancelled, Failed, Finished, Log, Progress
from engine.jobs import JobContext, execute
from tests.engine.test_convert_tiny import make_llama
from tests.helpers.requirements import require_module

require_module("llama_cpp")


@pytest.fixture(scope="module")
def f16_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("quant")
    make_llama(root / "m", tokenizer="spm", n_kv_heads=2, hidden=256)
    out = root / "m-f16.gguf"
    result = execute(jobs.hf_to_gguf, {"input": str(root / "m"), "output": str(out), "outtype": "f16", "verify": False},
                     JobContext(lambda e: None))
    assert isinstance(result, Finished), result
    return out


def run(spec: dict, cancel: threading.Event | None = None, on_event=None) -> tuple[object, list]:
    events: list = []

    def emit(event) -> None:
        events.append(event)
        if on_event:
            on_event(event)

    return execute(jobs.quantize, spec, JobContext(emit, cancel, min_interval=0.0)), events


@pytest.mark.parametrize("qtype", ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q4_0"])
def test_quantize_loads_and_generates(f16_gguf: Path, tmp_path: Path, qtype: str) -> None:
    import gguf

    out = tmp_path / f"m-{qtype}.gguf"
    result, events = run({"input": str(f16_gguf), "output": str(out), "qtype": qtype, "nthread": 2})
    assert isinstance(result, Finished), getattr(result, "message", result)
    verify = result.summary["verify"]
    assert verify["ok"] and verify["correlation"] > 0.75 and verify["tokenizer_match"] == "7/7"  # Q4_0 measured 0.79
    assert len(verify["sample"]) > len("The quick brown fox jumps over")
    assert out.stat().st_size < f16_gguf.stat().st_size
    ftype = gguf.GGUFReader(out).fields["general.file_type"].contents()
    assert gguf.LlamaFileType(ftype).name == f"MOSTLY_{qtype}"
    progress = [e for e in events if isinstance(e, Progress) and e.phase.startswith("quantize")]
    assert progress[-1].done == progress[-1].total == 21


def test_imatrix_passthrough(f16_gguf: Path, tmp_path: Path) -> None:
    import gguf
    import numpy as np

    imatrix = tmp_path / "imatrix.gguf"
    writer = gguf.GGUFWriter(imatrix, arch="imatrix")
    writer.add_string("general.type", "imatrix")
    rng = np.random.default_rng(0)
    source = gguf.GGUFReader(f16_gguf)
    for tensor in source.tensors:
        if tensor.name.startswith("blk.") and len(tensor.shape) == 2:
            ne0 = int(tensor.shape[0])
            writer.add_tensor(f"{tensor.name}.in_sum2", (rng.random((1, ne0)) ** 4 * 100).astype(np.float32))
            writer.add_tensor(f"{tensor.name}.counts", np.array([[10.0]], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    plain = tmp_path / "plain.gguf"
    with_im = tmp_path / "im.gguf"
    r1, _ = run({"input": str(f16_gguf), "output": str(plain), "qtype": "Q4_0", "verify": False})
    r2, events = run({"input": str(f16_gguf), "output": str(with_im), "qtype": "Q4_0", "imatrix": str(imatrix),
                      "verify": False})
    assert isinstance(r1, Finished) and isinstance(r2, Finished), (r1, r2)
    assert r2.summary["imatrix"] == str(imatrix)
    assert any(isinstance(e, Log) and "imatrix: 14 entries" in e.text for e in events)
    assert plain.read_bytes() != with_im.read_bytes()  # the importance weights changed the rounding


def test_requantize_refused(f16_gguf: Path, tmp_path: Path) -> None:
    q8 = tmp_path / "q8.gguf"
    r, _ = run({"input": str(f16_gguf), "output": str(q8), "qtype": "Q8_0", "verify": False})
    assert isinstance(r, Finished)
    verdict = preflight.check({"action": "quantize", "input": str(q8), "qtype": "Q4_K_M"})
    assert not verdict.ok() and "already quantized" in verdict.problems[0].text
    r, _ = run({"input": str(q8), "output": str(tmp_path / "q4.gguf"), "qtype": "Q4_K_M", "verify": False})
    assert isinstance(r, Failed) and "--allow-requantize" in r.message
    r, _ = run({"input": str(q8), "output": str(tmp_path / "q4.gguf"), "qtype": "Q4_K_M", "verify": False,
                "allow_requantize": True})
    assert isinstance(r, Finished)


def test_bad_inputs(tmp_path: Path, f16_gguf: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    assert "is not a GGUF file" in preflight.check({"action": "quantize", "input": str(bad)}).problems[0].text
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(f16_gguf.read_bytes()[:-4096])
    text = preflight.check({"action": "quantize", "input": str(trunc)}).problems[0].text
    assert "trunc.gguf is truncated" in text
    verdict = preflight.check({"action": "quantize", "input": str(f16_gguf), "qtype": "Q3_XYZ"})
    assert "unknown quantization type" in verdict.problems[0].text


def test_cancel_kills_quantizer(f16_gguf: Path, tmp_path: Path) -> None:
    import time

    out = tmp_path / "c.gguf"
    cancel = threading.Event()
    cancel.set()  # cancelled before the first poll: the child is killed at once
    started = time.monotonic()
    result, _ = run({"input": str(f16_gguf), "output": str(out), "qtype": "Q4_K_M"}, cancel)
    assert isinstance(result, Cancelled)
    assert time.monotonic() - started < 5
    assert not out.exists() and [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


class CountedPlans:
    """llama.cpp's real dry run (quantize.planned_types), counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from engine.convert import quantize

        self.real, self.calls = quantize.planned_types, 0
        monkeypatch.setattr(quantize, "planned_types", self)

    def __call__(self, *args: object, **kwargs: object) -> dict[str, str]:
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("qtype", ["Q4_K_M", "Q6_K", "Q4_0", "F16"])
def test_preflight_size_is_the_quantizers_own_plan(f16_gguf: Path, tmp_path: Path, qtype: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-flight size comes from llama.cpp's dry run (its per-tensor type choices, the
    kept-precision tensors included), so it is the size of the file it then writes. Before that
    run, the header's verdict is an estimate whose disk figure is never below what is written."""
    import shutil

    source = shutil.copy(f16_gguf, tmp_path / "src-f16.gguf")  # a file no earlier check has planned
    out = tmp_path / f"m-{qtype}.gguf"
    spec = {"action": "quantize", "input": str(source), "output": str(out), "qtype": qtype}
    plans = CountedPlans(monkeypatch)
    first = preflight.check(spec, exact=False)
    assert plans.calls == 0 and first.estimated and first.ok()
    assert "estimated from the header" in first.facts["output"]
    with ThreadPoolExecutor(2) as pool:  # a check after an output edit while the dry run runs
        verdict, edited = pool.map(preflight.check, [spec, {**spec, "output": str(tmp_path / "other.gguf")}])
    assert plans.calls == 1 and not verdict.estimated and not edited.estimated
    assert verdict.ok() and "planned by llama.cpp's quantizer" in verdict.facts["tensor types"]
    assert not preflight.check(spec, exact=False).estimated  # the plan is kept for the input and type
    result, _ = run({"input": str(source), "output": str(out), "qtype": qtype, "verify": False})
    assert isinstance(result, Finished), getattr(result, "message", result)
    actual = out.stat().st_size
    assert abs(verdict.output_bytes - actual) <= 64, (verdict.output_bytes, actual)
    assert first.disk_bytes >= actual, (first.disk_bytes, actual)


def test_a_disk_that_holds_the_output_but_not_its_bound_waits_for_the_plan(
        f16_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Free space between the planned size and the header's upper bound: the estimate refuses
    (forceably), the job then asks llama.cpp's plan, which fits, and quantizes."""
    import shutil

    measured = shutil.copy(f16_gguf, tmp_path / "measured-f16.gguf")
    source = shutil.copy(f16_gguf, tmp_path / "src-f16.gguf")  # the same bytes, not planned yet
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    spec = {"action": "quantize", "output": str(out_dir / "q.gguf"), "qtype": "Q6_K", "verify": False}
    planned = preflight.check({**spec, "input": str(measured)}).output_bytes
    bound = preflight.check({**spec, "input": str(source)}, exact=False).disk_bytes
    assert planned < bound
    real_usage = shutil.disk_usage

    def usage(path: object) -> object:  # the output's disk, with room for the output but not the bound
        found = real_usage(path)
        room = int(planned * 1.05) + 16 * 1024**2 + (bound - planned) // 2  # preflight's margin and half the gap
        return found._replace(free=room) if Path(str(path)) == out_dir else found

    monkeypatch.setattr(preflight.shutil, "disk_usage", usage)
    estimate = preflight.check({**spec, "input": str(source)}, exact=False)
    assert estimate.estimated and not estimate.ok() and estimate.ok(force=True)
    assert "may need up to" in estimate.problems[0].text
    plans = CountedPlans(monkeypatch)
    result, events = run({**spec, "input": str(source)})
    assert isinstance(result, Finished), getattr(result, "message", result)
    assert plans.calls == 1  # the job asked for the exact size before it went on
    assert any(isinstance(e, Log) and "planned by llama.cpp's quantizer" in e.text for e in events)
