"""A live server on a tiny random HF Llama (transformers backend): the API, a full queue answered
429/503 at once, and a client that disconnects mid-stream freeing the model."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest

from engine.serve.auth import Limits
from tests.engine.serve_helpers import LiveServer
from tests.helpers.requirements import require_module
from tests.helpers.waiting import wait_for

require_module("transformers")

LONG = 3000  # tokens a 'long' request asks for: minutes on CPU, so only a cancel ends it early


@pytest.fixture(scope="module")
def server():
    from engine.chat.transformers_backend import TransformersBackend
    from tests.helpers.tiny_model import cached_tiny_llama

    backend = TransformersBackend(cached_tiny_llama())
    live = LiveServer(backend, max_queue=0, limits=Limits(max_tokens=LONG), model_id="tiny")
    yield live
    live.stop()
    backend.close()


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=60)


class Occupier:
    """A long streaming request held open in a thread until `release()` closes it."""

    def __init__(self, server) -> None:
        self.server = server
        self.got_text = threading.Event()
        self.close = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # greedy: sampled, a random tiny model can draw its end token early and free the slot too soon
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": LONG, "stream": True, "temperature": 0.0}
        with httpx.stream("POST", self.server.api + "/chat/completions", json=body, timeout=60) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    self.got_text.set()
                if self.close.is_set():
                    break  # leaving the with-block closes the connection mid-stream

    def release(self) -> None:
        self.close.set()
        self.thread.join(30)


def test_chat_and_completion_on_an_hf_model(server):
    c = client(server)
    reply = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=5,
                                      temperature=0)
    assert reply.usage.completion_tokens <= 5 and reply.usage.prompt_tokens > 0
    stream = c.completions.create(model="tiny", prompt="The quick brown", max_tokens=4, temperature=0, stream=True)
    streamed = "".join(ch.choices[0].text for ch in stream if ch.choices)
    plain = c.completions.create(model="tiny", prompt="The quick brown", max_tokens=4, temperature=0)
    assert streamed == plain.choices[0].text


def test_disconnect_mid_stream_cancels_and_frees_the_slot(server):
    before = len(server.records)
    occ = Occupier(server)
    assert occ.got_text.wait(60), "no text streamed"
    assert server.queue.active == 1
    occ.release()
    wait_for(lambda: server.queue.active == 0, 30, "slot freed after the disconnect")
    wait_for(lambda: len(server.records) > before, 10, "request recorded")
    rec = server.records[-1]
    assert rec.status == 499 and rec.finish_reason == "cancelled" and rec.completion_tokens < LONG
    reply = client(server).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                                   max_tokens=2)
    assert reply.choices[0].message.content is not None


def test_full_queue_answers_429_then_503_on_wait_timeout(server):
    occ = Occupier(server)
    try:
        assert occ.got_text.wait(60)
        with pytest.raises(openai.RateLimitError) as busy:  # max_queue=0: nobody may wait
            client(server).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                                   max_tokens=2)
        assert "server busy" in busy.value.message and busy.value.response.headers["retry-after"] == "1"
        server.queue.max_queue, server.queue.max_wait_s = 1, 0.3
        assert occ.thread.is_alive(), "the occupying request ended by itself: the slot is free"
        with pytest.raises(openai.InternalServerError) as timed_out:  # may wait, but not forever: 503
            client(server).completions.create(model="tiny", prompt="x", max_tokens=2)
        assert timed_out.value.status_code == 503 and "waited" in timed_out.value.message
    finally:
        server.queue.max_queue, server.queue.max_wait_s = 0, 120.0
        occ.release()
    wait_for(lambda: server.queue.active == 0, 30, "slot freed")


@pytest.mark.timeout(120)
def test_server_job_cancel_stops_in_flight_generation_and_frees_the_model(tmp_path, monkeypatch):
    """The detached job itself (run in this process): cancel while a stream is generating ends the
    stream, stops uvicorn, frees the model and ends the job `cancelled`."""
    from engine.events import Cancelled, Metric
    from engine.jobs import JobContext, execute
    from engine.serve.server import run
    from tests.helpers.tiny_model import cached_tiny_llama

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    events: list = []
    ctx = JobContext(events.append)
    spec = {"model": str(cached_tiny_llama()), "engine": "transformers", "host": "127.0.0.1", "port": 0,
            "max_tokens": LONG, "api_key": "k"}
    result: list = []
    job = threading.Thread(target=lambda: result.append(execute(run, spec, ctx)), daemon=True)
    job.start()
    wait_for(lambda: (tmp_path / "out" / "server.json").exists() or result, 60, "server listening")
    details = json.loads((tmp_path / "out" / "server.json").read_text())

    got = threading.Event()
    ended = threading.Event()

    def stream() -> None:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": LONG, "stream": True}
        try:
            with httpx.stream("POST", details["api"] + "/chat/completions", json=body, timeout=60,
                              headers={"Authorization": "Bearer k"}) as resp:
                for line in resp.iter_lines():
                    if '"content"' in line:
                        got.set()
        except httpx.HTTPError:
            pass
        ended.set()

    threading.Thread(target=stream, daemon=True).start()
    assert got.wait(60)
    wait_for(lambda: any(isinstance(e, Metric) and e.values.get("gauge") and e.values["active"] == 1 for e in events),
             10, "active gauge")
    ctx.cancel()
    job.join(60)
    assert not job.is_alive() and isinstance(result[0], Cancelled)
    assert ended.wait(10), "the client stream did not end"
    assert not (tmp_path / "out" / "server.json").exists()
