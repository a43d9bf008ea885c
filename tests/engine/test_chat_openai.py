"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 speaking SSE."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.chat.base import BackendError
from engine.chat.openai_backend import OpenAIBackend
from engine.chat.params import SamplingParams


class FakeOpenAIServer:
    """A real HTTP server that streams `words` as chat.completion.chunk events."""

    def __init__(self, words: list[str], delay: float = 0.0, status: int = 200) -> None:
        self.words, self.delay, self.status = words, delay, status
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.sent = 0
        self.disconnected = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                body = json.dumps({"object": "list", "data": [{"id": "tiny-model", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                outer.requests.append(json.loads(self.rfile.read(length)))
                outer.headers.append(dict(self.headers))
                if outer.status != 200:
                    body = json.dumps({"error": {"message": "model overloaded"}}).encode()
                    self.send_response(outer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for word in outer.words:
                        chunk = {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        outer.sent += 1
                        time.sleep(outer.delay)
                    done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": len(outer.words)}}
                    self.wfile.write(f"data: {json.dumps(done)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    outer.disconnected.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(["Hel", "lo", ", ", "world", "!"]) as srv:
        yield srv


def test_streams_deltas_and_usage(server, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    backend = OpenAIBackend(server.url)  # model picked from /models
    assert backend.model == "tiny-model" and not backend.shares_cpu
    params = SamplingParams(temperature=0.2, max_new_tokens=20, stop=("###",), seed=7, system_prompt="Be nice.")
    deltas = list(backend.stream([{"role": "user", "content": "hi"}], params))
    assert "".join(d.text for d in deltas) == "Hello, world!"
    stats = backend.last_stats
    assert (stats.prompt_tokens, stats.generated_tokens, stats.finish_reason) == (9, 5, "stop")
    assert stats.ttft_s is not None and stats.ttft_s < 5
    req = server.requests[0]
    assert req["messages"][0] == {"role": "system", "content": "Be nice."}
    assert (req["model"], req["stream"], req["max_tokens"], req["stop"], req["seed"]) == ("tiny-model", True, 20, ["###"], 7)
    assert req["top_k"] == 40  # a local server gets the extra sampling fields
    assert server.headers[0]["Authorization"] == "Bearer sk-test-123"
    backend.close()


def test_a_server_chats_only(server) -> None:
    from engine.chat.base import BackendError
    from engine.chat.loader import BackendSpec, load_backend

    backend = OpenAIBackend(server.url, "m")
    assert backend.info.prompt_mode == "chat" and "server applies its chat template" in backend.info.prompt_mode_reason
    with pytest.raises(BackendError, match="completion mode needs a local model"):
        backend.set_prompt_mode("completion")
    backend.close()
    with pytest.raises(BackendError, match="completion mode needs a local model"):
        load_backend(BackendSpec(base_url=server.url, model="m", backend="openai", prompt_mode="completion"))


def test_settings_key_used_without_env_and_hosted_api_gets_no_extras(server, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend = OpenAIBackend(server.url, "m", api_key="from-settings", extra_sampling=False)
    backend.generate([{"role": "user", "content": "x"}])
    assert server.headers[0]["Authorization"] == "Bearer from-settings"
    assert "top_k" not in server.requests[0] and "min_p" not in server.requests[0]


def test_cancel_mid_stream_closes_the_connection() -> None:
    words = [f"w{i} " for i in range(200)]
    with FakeOpenAIServer(words, delay=0.01) as srv:
        backend = OpenAIBackend(srv.url, "m")
        cancel = threading.Event()
        got = []
        for delta in backend.stream([{"role": "user", "content": "go"}], SamplingParams(), cancel):
            got.append(delta.text)
            if len(got) == 3:
                cancel.set()
        assert len(got) == 3  # nothing after the cancel reached the caller
        assert backend.last_stats.finish_reason == "cancelled"
        assert srv.disconnected.wait(5), "the server never saw the client go away"
        assert srv.sent < 200


def test_http_error_and_bad_url_are_clear() -> None:
    with FakeOpenAIServer([], status=503) as srv:
        backend = OpenAIBackend(srv.url, "m")
        with pytest.raises(BackendError, match="HTTP 503: model overloaded"):
            backend.generate([{"role": "user", "content": "x"}])
        assert backend.last_stats.finish_reason == "error"
    with pytest.raises(BackendError, match="not an http"):
        OpenAIBackend("localhost:8000", "m")
    with pytest.raises(BackendError, match="cannot list models"):
        OpenAIBackend("http://127.0.0.1:9/v1")
