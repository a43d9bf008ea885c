"""HF -> GGUF: llama.cpp's logits on our GGUF match transformers on the source."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from engine.convert import jobs, preflight
from engine.events import Cancelled, Failed, Finished, Progress
from engine.jobs import JobContext, execute
from tests.engine.test_convert_tiny import make_llama
from tests.helpers.requirements import require_module

require_module("llama_cpp")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hfgguf")
    make_llama(root / "bpe-gqa", tokenizer="bpe", n_kv_heads=2)
    make_llama(root / "spm", tokenizer="spm", n_kv_heads=4, seed=1)
    make_llama(root / "tied", tokenizer="bpe", n_kv_heads=4, seed=2, tie=True)
    return {p.name: p for p in root.iterdir()}


def run(job, spec: dict) -> tuple[object, list]:
    events: list = []
    result = execute(job, spec, JobContext(events.append, min_interval=0.0))
    return result, events


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("model,outtype", [("bpe-gqa", "f16"), ("spm", "f16"), ("bpe-gqa", "f32"), ("spm", "bf16"), ("bpe-gqa", "q8_0"), ("tied", "f16")])
def test_hf_to_gguf_matches_transformers(models: dict[str, Path], tmp_path: Path, model: str, outtype: str) -> None:
    out = tmp_path / f"{model}-{outtype}.gguf"
    result, events = run(jobs.hf_to_gguf, {"input": str(models[model]), "output": str(out), "outtype": outtype})
    assert isinstance(result, Finished), getattr(result, "message", result)
    verify = result.summary["verify"]
    assert verify["ok"] and verify["top1_agreement"] >= 0.9
    assert verify["tokenizer_match"] == "7/7"  # llama.cpp splits the prompts exactly like transformers
    assert out.is_file() and leftovers(tmp_path) == []
    phases = {e.phase for e in events if isinstance(e, Progress)}
    assert "write gguf" in phases and "verify" in phases


def test_gguf_metadata(models: dict[str, Path], tmp_path: Path) -> None:
    import gguf

    out = tmp_path / "m.gguf"
    result, _ = run(jobs.hf_to_gguf, {"input": str(models["bpe-gqa"]), "output": str(out), "outtype": "f16", "verify": False})
    assert isinstance(result, Finished)
    reader = gguf.GGUFReader(out)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.token")}
    assert fields["general.architecture"] == "llama"
    assert fields["llama.attention.head_count_kv"] == 2
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.add_bos_token"] is True
    assert "messages" in fields["tokenizer.chat_template"]
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_norm.weight"] == "F32" and types["blk.0.attn_q.weight"] == "F16"


def test_cancel_leaves_nothing(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "c.gguf"
    cancel = threading.Event()
    events: list = []

    def emit(event) -> None:
        events.append(event)
        if isinstance(event, Progress) and event.phase == "write gguf" and event.done >= 1:
            cancel.set()

    result = execute(jobs.hf_to_gguf, {"input": str(models["spm"]), "output": str(out)}, JobContext(emit, cancel, min_interval=0.0))
    assert isinstance(result, Cancelled)
    assert not out.exists() and leftovers(tmp_path) == []


def test_existing_output_needs_force(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.gguf"
    out.write_bytes(b"old")
    result, _ = run(jobs.hf_to_gguf, {"input": str(models["spm"]), "output": str(out), "verify": False})
    assert isinstance(result, Failed) and "already exists" in result.message and "--force" in result.message
    assert out.read_bytes() == b"old"
    result, _ = run(jobs.hf_to_gguf, {"input": str(models["spm"]), "output": str(out), "verify": False, "force": True})
    assert isinstance(result, Finished) and out.read_bytes()[:4] == b"GGUF"


def test_unknown_pretokenizer_refused_then_forced(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "odd"
    shutil.copytree(models["bpe-gqa"], src)
    data = json.loads((src / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Whitespace"}
    (src / "tokenizer.json").write_text(json.dumps(data))
    verdict = preflight.check({"action": "hf-to-gguf", "input": str(src), "output": str(tmp_path / "o.gguf")})
    assert not verdict.ok() and verdict.ok(force=True)
    assert "pre-tokenizer" in verdict.problems[0].text
    result, _ = run(jobs.hf_to_gguf, {"input": str(src), "output": str(tmp_path / "o.gguf"), "verify": False})
    assert isinstance(result, Failed) and "pre-tokenizer" in result.message


def test_unsupported_architecture(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "gpt"
    shutil.copytree(models["spm"], src)
    cfg = json.loads((src / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (src / "config.json").write_text(json.dumps(cfg))
    verdict = preflight.check({"action": "hf-to-gguf", "input": str(src)})
    assert "GPT2LMHeadModel is not supported" in verdict.problems[0].text
    assert "config.json" in verdict.problems[0].text


def test_truncated_safetensors(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "trunc"
    shutil.copytree(models["spm"], src)
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    verdict = preflight.check({"action": "hf-to-gguf", "input": str(src)})
    assert len(verdict.problems) == 1
    assert "model.safetensors is truncated" in verdict.problems[0].text


def test_missing_input_and_config(tmp_path: Path) -> None:
    verdict = preflight.check({"action": "hf-to-gguf", "input": str(tmp_path / "nope")})
    assert "does not exist" in verdict.problems[0].text
    (tmp_path / "empty").mkdir()
    verdict = preflight.check({"action": "hf-to-gguf", "input": str(tmp_path / "empty")})
    assert "config.json is missing" in verdict.problems[0].text


def test_verification_catches_a_wrong_permutation(models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the q/k rotary permutation: the GGUF still loads, but its logits are wrong, the run
    fails on verification and nothing is left at the output path."""
    from engine.convert import hf_to_gguf

    monkeypatch.setattr(hf_to_gguf, "_permute", lambda w, n_head, n_kv: w)
    out = tmp_path / "wrong.gguf"
    result, _ = run(jobs.hf_to_gguf, {"input": str(models["spm"]), "output": str(out), "outtype": "f32"})
    assert isinstance(result, Failed)
    assert result.message.startswith("verification failed for wrong.gguf vs spm")
    assert not out.exists() and leftovers(tmp_path) == []


def test_the_tokenizer_that_reproduces_transformers_is_chosen_and_named(models: dict[str, Path], tmp_path: Path) -> None:
    """A SentencePiece model's folder also holds a tokenizer.json: the GGUF gets the vocabulary
    llama.cpp splits exactly like transformers, and the summary says which."""
    assert (models["spm"] / "tokenizer.json").is_file() and (models["spm"] / "tokenizer.model").is_file()
    out = tmp_path / "spm.gguf"
    result, _ = run(jobs.hf_to_gguf, {"input": str(models["spm"]), "output": str(out), "outtype": "f32"})
    assert isinstance(result, Finished), getattr(result, "message", result)
    assert result.summary["tokenizer_source"] == "tokenizer.model (SentencePiece)"
    assert result.summary["tokenizer_check"] == "7/7" and result.summary["verify"]["tokenizer_match"] == "7/7"


def test_a_wrong_tokenizer_is_refused_and_fails_verification_when_forced(models: dict[str, Path], tmp_path: Path) -> None:
    """The issue-15 failure: a SentencePiece model without its tokenizer.model (what a merged
    fine-tune used to be). Its tokenizer.json exported as byte-level BPE splits text differently:
    refused up front; forced, the verification fails on the tokenizer and leaves nothing."""
    import shutil

    src = tmp_path / "no-spm"
    shutil.copytree(models["spm"], src)
    (src / "tokenizer.model").unlink()
    out = tmp_path / "broken.gguf"
    result, _ = run(jobs.hf_to_gguf, {"input": str(src), "output": str(out), "outtype": "f32"})
    assert isinstance(result, Failed) and "SentencePiece-style tokenizer but the folder has no tokenizer.model" in result.message
    result, _ = run(jobs.hf_to_gguf, {"input": str(src), "output": str(out), "outtype": "f32", "force": True})
    assert isinstance(result, Failed)
    assert result.message.startswith("verification failed for broken.gguf vs no-spm: tokenizer: llama.cpp splits")
    assert re.search(r"splits [1-7] of 7 sample texts differently from transformers \(", result.message)  # the figure
    assert "logits not compared" in result.message
    assert not out.exists() and leftovers(tmp_path) == []
