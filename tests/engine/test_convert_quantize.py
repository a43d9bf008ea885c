"""Quantize with llama.cpp's quantizer: outputs load and generate; imatrix, requantize, cancel."""

from __future__ import annotations

import threading
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
    result = execute(jobs.hf_to_gguf, {"input": str(root / "m"), "output": str(out), "outtype": "f16", "verify": False}, JobContext(lambda e: None))
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
    r2, events = run({"input": str(f16_gguf), "output": str(with_im), "qtype": "Q4_0", "imatrix": str(imatrix), "verify": False})
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
    r, _ = run({"input": str(q8), "output": str(tmp_path / "q4.gguf"), "qtype": "Q4_K_M", "verify": False, "allow_requantize": True})
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


@pytest.mark.parametrize("qtype", ["Q4_K_M", "Q6_K", "Q4_0"])
def test_preflight_size_is_the_quantizers_own_plan(f16_gguf: Path, tmp_path: Path, qtype: str) -> None:
    """The pre-flight size comes from llama.cpp's dry run (its per-tensor type choices, the
    kept-precision tensors included), so it is the size of the file it then writes."""
    out = tmp_path / f"m-{qtype}.gguf"
    verdict = preflight.check({"action": "quantize", "input": str(f16_gguf), "output": str(out), "qtype": qtype})
    assert verdict.ok() and "planned by llama.cpp's quantizer" in verdict.facts["tensor types"]
    result, _ = run({"input": str(f16_gguf), "output": str(out), "qtype": qtype, "verify": False})
    assert isinstance(result, Finished), getattr(result, "message", result)
    actual = out.stat().st_size
    assert abs(verdict.output_bytes - actual) <= 64, (verdict.output_bytes, actual)
