"""Qwen2, Mistral and Gemma 3 (tiny, random): HF -> GGUF verified in llama.cpp, and back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.convert import jobs
from engine.events import Finished
from engine.jobs import JobContext, execute
from tests.engine.test_convert_tiny import (
    make_bpe_tokenizer,
    make_spm_tokenizer,
    spm_hf_tokenizer,
)
from tests.helpers.requirements import require_module

require_module("llama_cpp")


def build(kind: str, folder: Path):
    import torch
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    folder.mkdir(parents=True)
    if kind == "gemma3":
        make_spm_tokenizer(folder)
        tok = spm_hf_tokenizer(folder)
    else:
        tok = make_bpe_tokenizer(folder)
    torch.manual_seed(0)
    common = dict(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.15,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    if kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=False))
    elif kind == "mistral":
        model = MistralForCausalLM(MistralConfig(**common, sliding_window=None))
    else:  # a sliding window shorter than the prompts, so local attention is exercised
        model = Gemma3ForCausalLM(Gemma3TextConfig(**common, head_dim=16, sliding_window=8, query_pre_attn_scalar=16))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("kind", ["qwen2", "mistral", "gemma3"])
def test_arch_round_trip(kind: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    build(kind, tmp_path / "hf")
    gguf_path = tmp_path / f"{kind}.gguf"
    r = execute(jobs.hf_to_gguf, {"input": str(tmp_path / "hf"), "output": str(gguf_path), "outtype": "f32"}, JobContext(lambda e: None))
    assert isinstance(r, Finished), getattr(r, "message", r)
    assert r.summary["verify"]["ok"] and r.summary["verify"]["top1_agreement"] >= 0.99  # f32: near-ties of a random model
    assert r.summary["verify"]["tokenizer_match"] == "7/7"
    back = tmp_path / "back"
    r = execute(jobs.gguf_to_hf, {"input": str(gguf_path), "output": str(back), "verify": False}, JobContext(lambda e: None))
    assert isinstance(r, Finished), getattr(r, "message", r)
    original = load_file(str(tmp_path / "hf" / "model.safetensors"))
    restored = load_file(str(back / "model.safetensors"))
    assert set(restored) == set(original)
    for name, tensor in original.items():
        assert (restored[name] - tensor).abs().max() < 1e-6, name  # gemma norms pass through +1/-1
