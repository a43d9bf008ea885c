"""The OpenAI-compatible FastAPI app over one loaded chat backend.

`create_app(backend, config)` returns an ASGI app with:

- `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`: OpenAI's wire format,
  streaming (SSE ending with `data: [DONE]`) or not, with usage counts; chat requests go through
  the model's chat template, completions take the prompt as is;
- `GET /health` (always open, for load balancers) and `GET /metrics` (Prometheus text).

Every request that reaches a model passes the bounded `GenerationQueue` first; every answered
request becomes a `RequestRecord` handed to `config.on_record` (the detached run logs it).
"""


import asyncio
import json
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from engine.chat.base import ChatBackend
from engine.serve.auth import Limits, key_from_headers, key_matches
from engine.serve.generation import Generation, check_context
from engine.serve.metrics import RequestRecord, ServerMetrics
from engine.serve.protocol import (
    ApiError,
    GenerationRequest,
    check_model,
    chunk,
    error_body,
    full_response,
    new_id,
    parse_chat,
    parse_completion,
    usage,
    usage_chunk,
)
from engine.serve.queue import GenerationQueue, QueueRejected


@dataclass
class ServeConfig:
    model_id: str
    api_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_queue: int = 16
    queue_timeout_s: float = 120.0
    cors_origins: tuple[str, ...] = ()
    on_record: Callable[[RequestRecord], None] | None = None
    on_start: Callable[[int, int], None] | None = None
    """Called with (active, waiting) when a generation starts (live gauges for the Serve mode)."""


class BodyLimitMiddleware:
    """Answers 401 for a missing or wrong key, 415 for a POST whose body is not declared JSON and
    413 for a body over the limit (by Content-Length, or by counting a chunked body), before the
    app parses anything.

    The JSON content type is what keeps other web sites out of a keyless loopback server: a page
    may send any site a cross-site "simple" POST (text/plain, form data) without asking, but a
    POST declared application/json needs a CORS preflight, which this server answers only for
    --cors-origin origins."""

    def __init__(self, app: Any, config: ServeConfig, metrics: ServerMetrics) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.config.api_key and scope.get("method") != "OPTIONS" and (path.startswith("/v1/") or path == "/metrics"):
            sent = key_from_headers(headers.get("authorization"), headers.get("x-api-key"))
            if not key_matches(sent, self.config.api_key):
                message = ("missing API key: send it as `Authorization: Bearer KEY`" if sent is None
                           else "invalid API key")
                self._record(path, 401, message, scope.get("method", ""))
                await _send_json(send, 401, error_body(message, type_="authentication_error", code="invalid_api_key"))
                return
        if scope.get("method") in ("POST", "PUT", "PATCH") and not is_json(headers.get("content-type")):
            got = headers.get("content-type")
            message = (f"Content-Type must be application/json (got {got!r})" if got
                       else "Content-Type: application/json is required (the request had none)")
            self._record(path, 415, "not JSON", scope.get("method", ""))
            await _send_json(send, 415, error_body(message, code="unsupported_media_type"))
            return
        limit = self.config.limits.max_body_bytes
        declared = headers.get("content-length")
        too_big = error_body(f"request body over this server's limit of {limit} bytes", code="body_too_large")
        if declared and declared.isdigit() and int(declared) > limit:
            self._record(path, 413, "body too large")
            await _send_json(send, 413, too_big)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                self._record(path, 413, "body too large")
                await _send_json(send, 413, too_big)
                return
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _record(self, path: str, status: int, error: str, method: str = "POST") -> None:
        rec = RequestRecord(endpoint=path, status=status, error=error, method=method)
        self.metrics.record(rec)
        if self.config.on_record:
            self.config.on_record(rec)


def is_json(content_type: str | None) -> bool:
    """`application/json`, with or without parameters (`; charset=utf-8`), in any case."""
    return bool(content_type) and content_type.split(";", 1)[0].strip().lower() == "application/json"


async def _send_json(send: Callable, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def create_app(backend: ChatBackend, config: ServeConfig, queue: GenerationQueue | None = None):
    """The ASGI app (FastAPI) serving `backend` under the name `config.model_id`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.background import BackgroundTask

    queue = queue or GenerationQueue(config.max_queue, getattr(backend, "MAX_CONCURRENCY", 1), config.queue_timeout_s)
    metrics = ServerMetrics(config.model_id)
    @asynccontextmanager
    async def lifespan(_app: Any):
        yield
        await queue.close()

    app = FastAPI(title="llmdeck", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.queue = queue
    app.state.metrics = metrics
    app.state.backend = backend
    created = int(time.time())

    def record(rec: RequestRecord) -> None:
        metrics.record(rec)
        if config.on_record:
            try:  # noqa: SIM105 - kept as try/except so the deliberate broad catch carries its reason
                config.on_record(rec)
            except Exception:  # noqa: BLE001, S110 - logging must never break a request
                pass

    def fail(path: str, status: int, body: dict[str, Any], started: float, stream: bool = False,
             headers: dict[str, str] | None = None) -> JSONResponse:
        record(RequestRecord(endpoint=path, status=status, stream=stream, latency_s=time.perf_counter() - started,
                             error=str(body.get("error", {}).get("message", ""))[:200]))
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(f"invalid request: {exc.errors()[:1]}"), status_code=400)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        state = queue.state
        return {"status": "ok", "model": config.model_id, "active": state.active, "waiting": state.waiting}

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        state = queue.state
        return PlainTextResponse(metrics.prometheus(state.active, state.waiting),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        info = backend.info
        return {"object": "list", "data": [{"id": config.model_id, "object": "model", "created": created,
                                            "owned_by": "llmdeck", "backend": info.backend,
                                            "context_size": info.context_size}]}

    async def generate(request: Request, kind: str):
        started = time.perf_counter()
        path = request.url.path
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError as exc:
            return fail(path, 400, error_body(f"the request body is not valid JSON ({exc})"), started)
        except RecursionError:
            return fail(path, 400, error_body("the request body is nested too deeply to be a request"), started)
        try:
            req = parse_chat(body, config.limits) if kind == "chat" else parse_completion(body, config.limits)
            check_model(body, config.model_id)
        except ApiError as exc:
            return fail(path, exc.status, exc.body(), started)
        try:
            await queue.acquire()
        except QueueRejected as exc:
            return fail(path, exc.status, error_body(str(exc), type_="server_busy", code=exc.code), started,
                        req.stream, headers={"Retry-After": "1"})
        try:
            await asyncio.to_thread(check_context, backend, req)
        except ApiError as exc:
            await queue.release()
            return fail(path, exc.status, exc.body(), started, req.stream)
        except BaseException:
            await queue.release()
            raise
        if config.on_start:
            state = queue.state
            config.on_start(state.active, state.waiting)
        gen = Generation(backend, req, queue.release_threadsafe).start()
        rid = new_id(kind)
        if req.stream:
            return StreamingResponse(
                _stream(gen, req, rid, path, started), media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                background=BackgroundTask(gen.cancel.set),
            )
        text: list[str] = []
        try:
            async for piece in gen.pieces(request.is_disconnected):
                text.append(piece)
        finally:
            if not gen.finished.is_set():
                gen.cancel.set()
        return _finish_full(gen, req, rid, path, started, "".join(text))

    def _finish_full(gen: Generation, req: GenerationRequest, rid: str, path: str, started: float, text: str):
        latency = time.perf_counter() - started
        stats = gen.stats
        ttft = (gen.first_text_at - started) if gen.first_text_at else None
        p_tok, c_tok = (stats.prompt_tokens, stats.generated_tokens) if stats else (0, 0)
        if gen.interrupted:
            record(RequestRecord(path, 503, False, p_tok, c_tok, latency, ttft, "cancelled", gen.interrupted))
            body = error_body(gen.interrupted, type_="server_error", code="shutting_down")
            return JSONResponse(body, status_code=503)
        if gen.error:
            record(RequestRecord(path, 500, False, p_tok, c_tok, latency, ttft, "error", gen.error[:200]))
            return JSONResponse(error_body(gen.error, type_="server_error"), status_code=500)
        record(RequestRecord(path, 200, False, p_tok, c_tok, latency, ttft, gen.finish_reason))
        finish = "length" if gen.finish_reason == "length" else "stop"
        return full_response(req, rid, config.model_id, text, finish, usage(p_tok, c_tok))

    async def _stream(gen: Generation, req: GenerationRequest, rid: str, path: str, started: float):
        created_at = int(time.time())
        model = config.model_id
        status, ended = 200, False
        try:
            if req.kind == "chat":
                yield _sse(chunk(req, rid, model, created_at, role=True, text=""))
            elif req.echo:
                yield _sse(chunk(req, rid, model, created_at, text=req.prompt))
            async for piece in gen.pieces():
                yield _sse(chunk(req, rid, model, created_at, text=piece))
            if gen.interrupted:  # the server stops: say so, then end the stream properly
                status = 503
                yield _sse(error_body(gen.interrupted, type_="server_error", code="shutting_down"))
            elif gen.error:
                status = 500
                yield _sse(error_body(gen.error, type_="server_error"))
            else:
                finish = "length" if gen.finish_reason == "length" else "stop"
                yield _sse(chunk(req, rid, model, created_at, finish=finish))
                if req.include_usage and gen.stats:
                    yield _sse(usage_chunk(req, rid, model, created_at,
                                           usage(gen.stats.prompt_tokens, gen.stats.generated_tokens)))
            yield "data: [DONE]\n\n"
            ended = True
        finally:
            if not gen.finished.is_set():
                gen.cancel.set()
            stats = gen.stats or backend.last_stats  # still the live stats while the thread winds down
            ttft = (gen.first_text_at - started) if gen.first_text_at else None
            p_tok, c_tok = (stats.prompt_tokens, stats.generated_tokens) if stats else (0, 0)
            reason = gen.finish_reason if ended else "cancelled"
            if not ended:
                status = 499  # nginx's "client closed request"
            error = gen.interrupted or gen.error[:200] or ("" if ended else "client disconnected")
            record(RequestRecord(path, status, True, p_tok, c_tok, time.perf_counter() - started, ttft, reason, error))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await generate(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await generate(request, "completion")

    app.add_middleware(BodyLimitMiddleware, config=config, metrics=metrics)
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["authorization", "content-type", "x-api-key"])
    return app


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
