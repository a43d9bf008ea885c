"""The OpenAI wire format: request bodies in, response and stream chunks out.

Requests are validated here by hand, not by pydantic models, so every mistake is answered
with OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`) and a message
that says which field is wrong and what is allowed. Unknown fields are ignored, as OpenAI does
for fields a model does not support (logit_bias, presence_penalty...).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from engine.chat.base import Message
from engine.chat.params import ParamError, SamplingParams
from engine.serve.auth import Limits

MAX_STOPS = 4


class ApiError(Exception):
    """Answered as `status` with OpenAI's error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code
        self.type = type_

    def body(self) -> dict[str, Any]:
        return error_body(str(self), type_=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass
class GenerationRequest:
    kind: str  # "chat" or "completion"
    messages: list[Message]
    params: SamplingParams
    stream: bool
    include_usage: bool
    prompt: str = ""
    echo: bool = False


def _number(body: dict[str, Any], name: str, lo: float, hi: float, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"{name} must be a number, got {value!r}", param=name)
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo:g} and {hi:g}, got {value!r}", param=name)
    return float(value)


def _stops(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ApiError(400, "stop must be a string or a list of strings", param="stop")
    if len(stop) > MAX_STOPS:
        raise ApiError(400, f"stop takes at most {MAX_STOPS} strings, got {len(stop)}", param="stop")
    return tuple(s for s in stop if s)


def _max_tokens(body: dict[str, Any], limits: Limits) -> int:
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name)
    if value is None:
        return min(limits.default_max_tokens, limits.max_tokens)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, f"{name} must be a positive integer, got {value!r}", param=name)
    if value > limits.max_tokens:
        raise ApiError(400, f"{name} is {value}, over this server's limit of {limits.max_tokens} "
                            "(start the server with a higher --max-tokens to allow more)", param=name)
    return value


def _params(body: dict[str, Any], limits: Limits) -> SamplingParams:
    n = body.get("n", 1)
    if n not in (1, None):
        raise ApiError(400, "this server generates one choice per request: n must be 1", param="n")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError(400, f"seed must be an integer, got {seed!r}", param="seed")
    try:
        return SamplingParams(
            temperature=_number(body, "temperature", 0.0, 2.0, 0.7),
            top_p=_number(body, "top_p", 0.0, 1.0, 0.95) or 1e-6,
            max_new_tokens=_max_tokens(body, limits),
            stop=_stops(body),
            seed=seed,
        )
    except ParamError as exc:
        raise ApiError(400, str(exc)) from None


def _content(value: Any, index: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # [{"type": "text", "text": "..."}]
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ApiError(400, f"messages[{index}].content: only text parts are supported", param="messages")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    if value is None:
        return ""
    raise ApiError(400, f"messages[{index}].content must be a string or a list of text parts", param="messages")


def _body_dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _flag(body: dict[str, Any], name: str) -> bool:
    """A true/false field: `"stream": "no"` is a mistake to report, not a truthy string."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {value!r}", param=name)
    return value


def _stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise ApiError(400, f"stream_options must be an object, got {options!r}", param="stream_options")
    try:
        return stream, _flag(options, "include_usage")
    except ApiError as exc:
        raise ApiError(400, f"stream_options.{exc}", param="stream_options") from None


def parse_chat(body: Any, limits: Limits) -> GenerationRequest:
    body = _body_dict(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "messages must be a non-empty list of {role, content} objects", param="messages")
    messages: list[Message] = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise ApiError(400, f"messages[{i}] must be an object with role and content", param="messages")
        role = m.get("role")
        role = "system" if role == "developer" else role
        if role not in ("system", "user", "assistant"):
            raise ApiError(400, f"messages[{i}].role must be system, user or assistant, got {role!r}", param="messages")
        messages.append({"role": role, "content": _content(m.get("content"), i)})
    stream, include_usage = _stream_flags(body)
    return GenerationRequest("chat", messages, _params(body, limits), stream, include_usage)


def parse_completion(body: Any, limits: Limits) -> GenerationRequest:
    body = _body_dict(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt must be a string (one prompt per request)", param="prompt")
    stream, include_usage = _stream_flags(body)
    return GenerationRequest("completion", [{"role": "user", "content": prompt}], _params(body, limits), stream,
                             include_usage, prompt=prompt, echo=_flag(body, "echo"))


def check_model(body: dict[str, Any], model_id: str) -> None:
    """A request naming another model is refused as OpenAI does (404); naming none means this one."""
    name = body.get("model")
    if name is None or name == model_id:
        return
    if not isinstance(name, str):
        raise ApiError(400, f"model must be a string, got {name!r}", param="model")
    raise ApiError(404, f"The model `{name}` does not exist: this server serves `{model_id}` (see GET /v1/models)",
                   param="model", code="model_not_found")


# -- responses ---------------------------------------------------------------------------------
def new_id(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def full_response(req: GenerationRequest, rid: str, model: str, text: str, finish: str,
                  use: dict[str, int]) -> dict[str, Any]:
    created = int(time.time())
    if req.kind == "chat":
        return {"id": rid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                             "finish_reason": finish}],
                "usage": use}
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": (req.prompt + text) if req.echo else text, "logprobs": None,
                         "finish_reason": finish}],
            "usage": use}


def chunk(req: GenerationRequest, rid: str, model: str, created: int, *, text: str | None = None,
          role: bool = False, finish: str | None = None) -> dict[str, Any]:
    if req.kind == "chat":
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}]}


def usage_chunk(req: GenerationRequest, rid: str, model: str, created: int, use: dict[str, int]) -> dict[str, Any]:
    obj = "chat.completion.chunk" if req.kind == "chat" else "text_completion"
    return {"id": rid, "object": obj, "created": created, "model": model, "choices": [], "usage": use}
