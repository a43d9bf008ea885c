"""OpenAI-compatible remote backend: vLLM, llama.cpp's server, `llmdeck serve`, hosted APIs.

Streams `POST {base_url}/chat/completions` with `stream: true` over httpx and parses the SSE
lines itself (no extra SDK needed). The server applies the chat template. Cancelling closes the
HTTP response between two events, i.e. within one token; the server sees the client go away.
The API key comes from `OPENAI_API_KEY`, else `settings.chat.openai_api_key`; it is sent only in
the Authorization header and never shown.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from engine.chat.base import BackendError, BackendInfo, ChatBackend, Delta, Message, StatsClock
from engine.chat.params import SamplingParams
from engine.chat.prompt_mode import PromptMode


def api_key_from(settings_key: str = "") -> str:
    return os.environ.get("OPENAI_API_KEY") or settings_key


class OpenAIBackend(ChatBackend):
    NAME = "openai"
    COUNTS_PROMPT_TOKENS = False
    # top_k, min_p, repetition_penalty: sent to local servers only (see `extra_sampling`)

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        api_key: str = "",
        timeout: float = 60.0,
        extra_sampling: bool | None = None,
        context_size: int | None = None,
    ) -> None:
        super().__init__()
        import httpx

        if not base_url:
            raise BackendError("no base URL for the OpenAI-compatible backend; pass --base-url http://host:port/v1")
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BackendError(f"base URL {base_url!r} is not an http(s) URL (example: http://127.0.0.1:8000/v1)")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or api_key_from()
        # top_k, min_p and repetition_penalty are not in OpenAI's API (vLLM and llama.cpp's
        # server accept them); hosted OpenAI rejects unknown fields, so send them elsewhere only.
        self.extra_sampling = extra_sampling if extra_sampling is not None else "api.openai.com" not in parsed.netloc
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))
        self.model = model or self._first_model()
        self._context_size = context_size
        self.set_prompt_mode("chat")

    def set_prompt_mode(self, requested: str) -> PromptMode:
        """A server applies its own chat template to /chat/completions: chat only."""
        if (requested or "auto") not in ("auto", "chat"):
            raise BackendError("completion mode needs a local model (.gguf or HF folder): an OpenAI-compatible "
                               "server applies its own chat template")
        self.prompt_mode = PromptMode("chat", "the server applies its chat template", requested or "auto")
        return self.prompt_mode

    def _first_model(self) -> str:
        """The server's first model, for servers that host one (llama.cpp, `llmdeck serve`)."""
        import httpx

        try:
            resp = self._client.get("/models")
            resp.raise_for_status()
            data = resp.json().get("data") or []
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendError(f"cannot list models at {self.base_url}/models ({exc}); pass --openai-model NAME") from None
        if not data:
            raise BackendError(f"{self.base_url} lists no models; pass --openai-model NAME")
        return str(data[0].get("id", ""))

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("openai", f"{self.model} @ {self.base_url}", "server-side", self._context_size,
                           prompt_mode="chat", prompt_mode_reason=self.prompt_mode.reason)

    def close(self) -> None:
        self._client.close()

    def _payload(self, messages: list[Message], params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if self.extra_sampling:
            body["top_k"] = params.top_k
            body["min_p"] = params.min_p
            body["repetition_penalty"] = params.repetition_penalty
        return body

    def _stream(
        self, messages: list[Message], params: SamplingParams, cancel: threading.Event, clock: StatsClock
    ) -> Iterator[Delta]:
        import httpx

        stats = clock.stats
        counted = 0
        try:
            with self._client.stream("POST", "/chat/completions", json=self._payload(messages, params)) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise BackendError(f"{self.base_url} answered HTTP {resp.status_code}: {_error_text(resp)}")
                for line in resp.iter_lines():
                    if cancel.is_set():
                        return
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        continue
                    usage = chunk.get("usage")
                    if usage:
                        stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                        total = int(usage.get("completion_tokens") or counted)
                        if total > counted:
                            clock.token(total - counted)
                            counted = total
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            clock.token(1)
                            counted += 1
                            yield Delta(text, 1)
                        if choice.get("finish_reason") == "length":
                            stats.finish_reason = "length"
        except httpx.HTTPError as exc:
            raise BackendError(f"connection to {self.base_url} failed: {exc}") from None


def _error_text(resp: Any) -> str:
    try:
        err = resp.json().get("error")
        return str(err.get("message") if isinstance(err, dict) else err)[:300]
    except ValueError:
        return resp.text[:300]
