"""Shared bits for the serve tests: a live server on 127.0.0.1 (a free port) in this process."""

from __future__ import annotations

from engine.serve.app import ServeConfig, create_app
from engine.serve.auth import Limits
from engine.serve.metrics import RequestRecord
from engine.serve.server import ServerThread


class LiveServer:
    def __init__(self, backend, *, api_key: str | None = None, max_queue: int = 4, limits: Limits | None = None,
                 model_id: str = "test-model", queue_timeout_s: float = 120.0) -> None:
        self.records: list[RequestRecord] = []
        self.config = ServeConfig(model_id=model_id, api_key=api_key, limits=limits or Limits(), max_queue=max_queue,
                                  queue_timeout_s=queue_timeout_s, on_record=self.records.append)
        self.app = create_app(backend, self.config)
        self.thread = ServerThread(self.app, "127.0.0.1", 0, graceful_s=2.0, queue=self.app.state.queue).start()
        self.url = self.thread.url
        self.api = self.url + "/v1"

    @property
    def queue(self):
        return self.app.state.queue

    def stop(self) -> None:
        self.thread.stop()
