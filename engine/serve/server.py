"""`llmdeck serve` as a detached run: load a model, serve it over HTTP until cancelled.

The job `run(spec, ctx)` loads the model with the chat backends, binds the socket itself (so a
busy port is one clear line, and port 0 picks a free one), runs uvicorn in a thread, and writes
`out/server.json` (URL, model, the ssh -L line) for the Serve mode. Each request becomes a
Metric event (tokens, latency, TTFT) and a Log line, which is how the Serve mode shows
requests/s, tokens/s, active requests and the request log from any process. Cancel (SIGTERM from
`llmdeck runs cancel` or the Serve mode) stops uvicorn gracefully: in-flight requests get a few
seconds to finish, then the model is freed.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic import write_json
from engine.jobs import JobContext, JobError

if TYPE_CHECKING:
    from engine.serve.queue import GenerationQueue

SERVER_FILE = "server.json"
KEY_FILE = "api_key"
DEFAULT_PORT = 8000
GRACEFUL_S = 5.0
"""How long requests still generating get to finish when the server stops (spec key `graceful_s`)."""
STOP_AFTER_INTERRUPT_S = 10.0
"""How long interrupted requests get to send their last event before uvicorn is forced to stop."""


def ssh_tunnel_line(port: int, host: str = "127.0.0.1") -> str:
    """What to run on a laptop to reach a server bound to this box's loopback."""
    target = "127.0.0.1" if host in ("0.0.0.0", "::", "localhost") else host
    return f"ssh -L {port}:{target}:{port} {_user_at_host()}"


def _user_at_host() -> str:
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
    host = socket.gethostname() or "this-host"
    return f"{user}@{host}" if user else host


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind now, in our code, so 'port in use' is a clear message and not a uvicorn exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise JobError(f"port {port} on {host} is already in use; pick another with --port") from None
        if exc.errno == errno.EACCES:
            raise JobError(f"not allowed to listen on port {port}; ports under 1024 need root, pick one above") from None
        raise JobError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class ServerThread:
    """uvicorn serving an ASGI app from a background thread, on a socket bound here.

    Stopping is ordered so that every client gets a well-formed answer: the queue refuses and
    wakes its waiters (503 JSON), uvicorn stops listening, in-flight generations get `graceful_s`
    to finish, then they are interrupted (a stream ends with an error event and `data: [DONE]`).
    uvicorn's own grace period is longer than ours, so it never has to cancel a request task
    (that cut streams and answered waiters with a plain-text 500).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, graceful_s: float = GRACEFUL_S,
                 queue: GenerationQueue | None = None) -> None:
        import uvicorn

        self.host = host
        self.graceful_s = graceful_s
        self.queue = queue
        self.sock = bind_socket(host, port)
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=graceful_s + STOP_AFTER_INTERRUPT_S, lifespan="on", ws="none")
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="llmdeck-uvicorn")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # noqa: BLE001 - surfaced by start()/alive
            self.error = exc

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise JobError(f"the HTTP server did not start: {self.error or 'timed out'}")
            time.sleep(0.02)
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Graceful stop: waiters answered 503, in-flight requests get `graceful_s`, then interrupted."""
        from engine.serve.generation import cancel_all

        if self.queue is not None:
            self.queue.close_threadsafe()
        self.server.should_exit = True
        self._thread.join(self.graceful_s)
        if self._thread.is_alive():
            cancel_all()  # each generation stops within a token and tells its client why
            self._thread.join(STOP_AFTER_INTERRUPT_S)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(5.0)
        self.sock.close()


def _backend_spec(spec: dict[str, Any]):
    from engine.chat.loader import BackendSpec

    engine = spec.get("engine") or "auto"
    return BackendSpec(
        model=spec.get("model") or "",
        backend="auto" if engine in ("auto", "") else engine,
        template=spec.get("template") or "auto",
        # /v1/chat/completions is chat by definition (a base model gets its built-in template);
        # /v1/completions feeds the prompt as is (generation.prompt_template)
        prompt_mode="chat",
        n_ctx=int(spec.get("n_ctx") or 4096),
        n_gpu_layers=spec.get("n_gpu_layers"),
        n_threads=spec.get("n_threads"),
        dtype=spec.get("dtype") or "auto",
        gpu_memory=list(spec.get("gpu_memory") or []),
        trust_remote_code=bool(spec.get("trust_remote_code")),
        base_model=spec.get("base_model") or "",
    )


def model_id_for(model: str) -> str:
    """The name clients see in /v1/models: the file or folder name, without .gguf."""
    name = Path(model).name if model else "gemma-3-270m"
    return name[:-5] if name.lower().endswith(".gguf") else name


def read_key(spec: dict[str, Any], run_dir: Path | None) -> str | None:
    """The API key: from a 0600 file in the run folder (never stored in run.json) or the spec (tests)."""
    if spec.get("api_key"):
        return str(spec["api_key"])
    name = spec.get("api_key_file")
    if not name:
        return None
    path = Path(name) if Path(name).is_absolute() else (run_dir or Path.cwd()) / name
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise JobError(f"cannot read the API key file {path}: {exc.strerror or exc}") from None


def run(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The `serve` run kind. Spec: model, engine, host, port, api_key_file, max_queue,
    max_tokens, max_body_bytes, cors_origins, gpu_memory, n_ctx, template, graceful_s."""
    from engine.chat.base import BackendError
    from engine.chat.loader import load_backend, model_path
    from engine.chat.templates import TemplateError
    from engine.serve.app import ServeConfig, create_app
    from engine.serve.auth import Limits, check_bind
    from engine.serve.generation import cancel_all, wait_idle
    from engine.serve.metrics import RequestRecord

    run_dir = Path.cwd()  # the worker runs in the run's folder
    host = spec.get("host") or "127.0.0.1"
    port = int(spec.get("port", DEFAULT_PORT))
    api_key = read_key(spec, run_dir)
    try:
        check_bind(host, api_key)
    except ValueError as exc:
        raise JobError(str(exc)) from None

    ctx.progress(0, 3, "loading model", force=True)
    bspec = _backend_spec(spec)
    try:
        model = model_path(bspec)
        bspec.model = model
        ctx.log(f"loading {model}")
        t0 = time.perf_counter()
        backend = load_backend(bspec)
    except (BackendError, TemplateError) as exc:
        raise JobError(str(exc)) from None
    info = backend.info
    ctx.log(f"loaded in {time.perf_counter() - t0:.1f} s: {info.backend}, template {info.template}, context {info.context_size}")
    if spec.get("gpu_memory") and info.backend == "llama.cpp":
        ctx.log("--gpu-memory caps apply to the transformers engine; llama.cpp places layers with --gpu-layers", "warning")
    ctx.raise_if_cancelled()

    steps = itertools.count(1)
    totals = {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def on_record(rec: RequestRecord) -> None:
        totals["requests"] += 1
        totals["errors"] += rec.status >= 400
        totals["prompt_tokens"] += rec.prompt_tokens
        totals["completion_tokens"] += rec.completion_tokens
        values = {"request": 1, "status": rec.status, "stream": int(rec.stream), "prompt_tokens": rec.prompt_tokens,
                  "completion_tokens": rec.completion_tokens, "latency_s": round(rec.latency_s, 4)}
        if rec.ttft_s is not None:
            values["ttft_s"] = round(rec.ttft_s, 4)
        ctx.metric(next(steps), **values)
        ctx.log(rec.line(), "info" if rec.status < 400 else "warning")

    from engine.serve.queue import GenerationQueue

    limits = Limits(max_body_bytes=int(spec.get("max_body_bytes") or Limits.max_body_bytes),
                    max_tokens=int(spec.get("max_tokens") or Limits.max_tokens))
    config = ServeConfig(
        model_id=spec.get("model_id") or model_id_for(spec.get("model") or ""),
        api_key=api_key, limits=limits, max_queue=int(spec.get("max_queue", 16)),
        cors_origins=tuple(spec.get("cors_origins") or ()), on_record=on_record,
    )
    queue = GenerationQueue(config.max_queue, 1, config.queue_timeout_s)
    app = create_app(backend, config, queue)
    ctx.progress(1, 3, "starting server", force=True)
    server = ServerThread(app, host, port, queue=queue, graceful_s=float(spec.get("graceful_s", GRACEFUL_S)))
    try:
        server.start()
        url = server.url
        details = {"url": url, "api": f"{url}/v1", "host": host, "port": server.port, "model": model,
                   "model_id": config.model_id, "engine": info.backend, "auth": bool(api_key),
                   "ssh": ssh_tunnel_line(server.port, host), "pid": os.getpid(), "started": time.time(),
                   "max_queue": config.max_queue}
        write_json(run_dir / "out" / SERVER_FILE, details)
        ctx.progress(0, None, "serving", unit="requests", force=True)  # the Runs list reads 'serving N'
        served = 0
        ctx.log(f"serving {config.model_id} at {url}/v1 ({'API key required' if api_key else 'no API key'})")
        ctx.log(f"from another machine: {details['ssh']}, then use http://127.0.0.1:{server.port}/v1")
        gauges = (0, 0)
        while ctx.wait(0.25):
            if not server.alive:
                raise JobError(f"the HTTP server stopped unexpectedly: {server.error or 'no error recorded'}")
            if totals["requests"] != served:
                served = totals["requests"]
                ctx.progress(served, None, "serving", unit="requests")
            state = queue.state
            if (state.active, state.waiting) != gauges:  # live gauges for the Serve mode, only on change
                gauges = (state.active, state.waiting)
                ctx.metric(next(steps), gauge=1, active=state.active, waiting=state.waiting)
        ctx.log("stopping: finishing in-flight requests")
    finally:
        server.stop()
        cancel_all()  # requests still generating after the grace period end now
        if wait_idle(30.0):
            backend.close()
        else:
            ctx.log("a generation did not stop within 30 s; leaving the model to the process exit", "warning")
        (run_dir / "out" / SERVER_FILE).unlink(missing_ok=True)
    ctx.progress(3, 3, "stopped", force=True)
    return {"url": server.url, "model": config.model_id, **totals}
