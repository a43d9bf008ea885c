"""LoRA trainable-parameter counts equal peft's on real tiny models."""

from __future__ import annotations

import pytest

from engine.estimate import ModelSpec, lora_trainable_params

TARGETS = [
    ("all-linear", "all-linear"),
    ("qv", ["q_proj", "v_proj"]),
    ("attn", ["q_proj", "k_proj", "v_proj", "o_proj"]),
    ("mlp", ["gate_proj", "up_proj", "down_proj"]),
    ("q_proj,down_proj", ["q_proj", "down_proj"]),
]


def _llama(tied: bool = False):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=176, num_hidden_layers=3, num_attention_heads=8,
                      num_key_value_heads=2, vocab_size=320, tie_word_embeddings=tied)
    return LlamaForCausalLM(cfg), ModelSpec("tiny-llama", 3, 64, 176, 8, 2, 320, tie_embeddings=tied)


def _gemma3():
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=1, head_dim=48, vocab_size=400)
    spec = ModelSpec("tiny-gemma", 2, 64, 128, 4, 1, 400, head_dim=48, tie_embeddings=True, arch="gemma3")
    return Gemma3ForCausalLM(cfg), spec


def _peft_trainable(model, rank: int, targets) -> tuple[int, int]:
    from peft import LoraConfig, get_peft_model

    kwargs = {} if targets is None else {"target_modules": targets}
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, **kwargs))
    return peft_model.get_nb_trainable_parameters()


@pytest.mark.parametrize("ours,theirs", TARGETS)
@pytest.mark.parametrize("rank", [4, 16])
def test_lora_count_equals_peft_llama(ours, theirs, rank):
    model, spec = _llama()
    trainable, total = _peft_trainable(model, rank, theirs)
    assert lora_trainable_params(spec, rank, ours) == trainable
    assert spec.params + trainable == total


def test_lora_default_targets_equal_peft_default():
    model, spec = _llama(tied=True)
    trainable, _ = _peft_trainable(model, 8, None)  # peft's default for llama: q_proj, v_proj
    assert lora_trainable_params(spec, 8, "default") == trainable


@pytest.mark.parametrize(
    "ours,theirs", [("all-linear", "all-linear"), ("attn", ["q_proj", "k_proj", "v_proj", "o_proj"])]
)
def test_lora_count_equals_peft_gemma3_head_dim_not_hidden_over_heads(ours, theirs):
    model, spec = _gemma3()  # head_dim 48 != 64 / 4: q/k/v/o shapes come from head_dim
    trainable, total = _peft_trainable(model, 8, theirs)
    assert lora_trainable_params(spec, 8, ours) == trainable
    assert spec.params + trainable == total


def test_unknown_target_is_a_clear_error():
    _, spec = _llama()
    with pytest.raises(ValueError, match="unknown LoRA target"):
        lora_trainable_params(spec, 8, "q_proj,wq")
