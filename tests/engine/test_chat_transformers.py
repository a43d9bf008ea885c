"""The transformers backend with a real tiny random Llama (tokenizer trained on the spot)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from engine.chat.base import BackendError
from engine.chat.params import SamplingParams
from engine.chat.transformers_backend import TransformersBackend, max_memory_map
from tests.helpers.tiny_model import build_tiny_llama

MSGS = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", style="chatml")


@pytest.fixture(scope="module")
def backend(tiny_dir) -> TransformersBackend:
    return TransformersBackend(tiny_dir)


def test_loads_with_its_own_template_and_streams(backend) -> None:
    assert backend.info.backend == "transformers" and backend.template.source == "model"
    assert backend.info.context_size == 512 and backend.device == "cpu" and not backend.static_cache
    assert backend.shares_cpu  # the Chat screen paces its drawing for it
    params = SamplingParams(temperature=0, max_new_tokens=12, repetition_penalty=1.0)
    text = backend.generate(MSGS, params)
    stats = backend.last_stats
    assert stats.generated_tokens >= 1 and stats.prompt_tokens == backend.count_tokens(MSGS)
    assert stats.ttft_s is not None and stats.tokens_per_s and stats.tokens_per_s > 0
    assert backend.generate(MSGS, params) == text  # greedy is deterministic
    if stats.generated_tokens == 12:
        assert stats.finish_reason == "length"


def test_seed_makes_sampling_repeatable(backend) -> None:
    p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, max_new_tokens=10, seed=123)
    assert backend.generate(MSGS, p) == backend.generate(MSGS, p)


def test_cancel_stops_within_one_token(backend) -> None:
    cancel = threading.Event()
    params = SamplingParams(temperature=1.0, max_new_tokens=200, seed=1, stop=())
    for _delta in backend.stream(MSGS, params, cancel):
        cancel.set()
    stats = backend.last_stats
    assert stats.finish_reason == "cancelled"
    assert stats.generated_tokens < 20, stats  # well short of 200: generate stopped at once


def test_lora_adapter_folder_loads_on_its_base(tiny_dir, tmp_path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tiny_dir)
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    b = TransformersBackend(adapter)
    assert b.adapter == adapter and b.info.details["adapter"] == str(adapter)
    assert b.generate(MSGS, SamplingParams(temperature=0, max_new_tokens=3)) is not None
    cfg["base_model_name_or_path"] = "org/not-local"
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(BackendError, match="base model 'org/not-local' is not a local folder"):
        TransformersBackend(adapter)


def test_remote_code_is_refused_unless_asked(tiny_dir, tmp_path) -> None:
    import shutil

    custom = tmp_path / "custom"
    shutil.copytree(tiny_dir, custom)
    cfg = json.loads((custom / "config.json").read_text())
    cfg["model_type"] = "my_secret_arch"
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (custom / "config.json").write_text(json.dumps(cfg))
    (custom / "modeling_evil.py").write_text("raise SystemExit('custom code ran')\n")
    with pytest.raises(BackendError, match="--trust-remote-code"):
        TransformersBackend(custom)


def test_bad_paths_are_clear(tmp_path) -> None:
    with pytest.raises(BackendError, match="model folder not found"):
        TransformersBackend(tmp_path / "nope")
    with pytest.raises(BackendError, match="no config.json"):
        TransformersBackend(tmp_path)
    with pytest.raises(BackendError, match="unknown dtype"):
        TransformersBackend(build_tiny_llama(tmp_path / "t"), dtype="int3")


def test_gpu_memory_caps() -> None:
    assert max_memory_map([20, 20.5]) == {0: "20GiB", 1: "20.5GiB"}
    assert max_memory_map([]) is None


def test_static_cache_path_gives_the_same_greedy_answer(tiny_dir, backend) -> None:
    params = SamplingParams(temperature=0, max_new_tokens=8)
    static = TransformersBackend(tiny_dir, static_cache=True)
    assert static.static_cache and static.info.details["static cache"] is True
    assert static.generate(MSGS, params) == backend.generate(MSGS, params)
