"""`llmdeck serve MODEL` (an OpenAI-compatible API) and `llmdeck web` (the TUI in a browser).

text-generation-webui's flags are accepted where they make sense (`--api`, `--listen`,
`--api-port`, `--gpu-memory`, `--model`), so `python server.py --model X --api --listen` habits
carry over; `--public-api` (a public tunnel to the world) is refused with the ssh -L line to use
instead. Light at import: FastAPI, uvicorn and the backends load only when a server starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from engine.commands.outcome import CommandError, OpenTUI, OpenWeb

EXAMPLES = (
    "llmdeck serve model.gguf          OpenAI-compatible API on http://127.0.0.1:8000/v1",
    "llmdeck serve demo --detach       serve the bundled Gemma 3 270M as a background run",
    "llmdeck serve ./hf-model --listen --api-key K --gpu-memory 20 20   on 0.0.0.0, key required",
    "llmdeck serve --engine vllm ./hf-model --tensor-parallel-size 2   start vLLM's own server",
    "llmdeck serve                     open Serve mode (live servers, start/stop)",
    "llmdeck web --port 8080           the llmdeck TUI in a browser tab (127.0.0.1; open the ?token= URL it prints)",
)

DEMO_NAMES = ("demo", "default", "gemma")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API (no MODEL: Serve mode)")
    p.add_argument("model", nargs="?", default=None,
                   help=".gguf file, HF model folder, or `demo` for the bundled Gemma 3 270M")
    p.add_argument("--model", dest="model_flag", default=None, help="same as MODEL (text-generation-webui style)")
    p.add_argument("--engine", choices=("auto", "llama.cpp", "transformers", "vllm"), default="auto",
                   help="auto: .gguf -> llama.cpp, folder -> transformers; vllm starts vLLM's own server")
    p.add_argument("--port", type=int, default=None, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--api-port", type=int, default=None, dest="api_port", help="same as --port (text-generation-webui)")
    p.add_argument("--api", action="store_true",
                   help="accepted for text-generation-webui habits (the API is always on)")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--listen", action="store_true", help="bind 0.0.0.0 (all interfaces); requires --api-key")
    p.add_argument("--listen-host", default=None, help="address to bind with --listen (default 0.0.0.0)")
    p.add_argument("--public-api", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--api-key", default=None,
                   help="require this key (Bearer token); also LLMDECK_API_KEY, or --api-key-file")
    p.add_argument("--api-key-file", default=None, help="read the key from a file (keeps it out of `ps`)")
    p.add_argument("--max-queue", type=int, default=16, help="requests that may wait for the model (default 16); "
                   "beyond that the server answers 429")
    p.add_argument("--max-tokens", type=int, default=4096, help="largest max_tokens a request may ask for")
    p.add_argument("--max-body-kb", type=int, default=1000, help="largest request body in KiB (default 1000)")
    p.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                   help="allow browser calls from this origin (repeatable; default: no CORS)")
    p.add_argument("--served-model-name", default=None, help="model name clients see (default: the file name)")
    p.add_argument("--detach", action="store_true", help="run in the background as a detached run (see Serve mode)")
    g = p.add_argument_group("model loading")
    g.add_argument("--gpu-memory", type=float, nargs="+", default=None, metavar="GIB",
                   help="per-GPU memory caps in GiB for transformers, e.g. --gpu-memory 20 20")
    g.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context size")
    g.add_argument("--gpu-layers", type=int, default=None, dest="n_gpu_layers", help="llama.cpp layers on the GPU")
    g.add_argument("--threads", type=int, default=None, dest="n_threads", help="llama.cpp CPU threads")
    g.add_argument("--template", default=None, help="chat template (auto, model, chatml, llama-3, gemma, ...)")
    g.add_argument("--dtype", default="auto", help="transformers dtype")
    g.add_argument("--trust-remote-code", action="store_true")
    g.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM: GPUs to split the model over")
    p.set_defaults(func=cmd_serve)

    w = sub.add_parser("web", help="serve the llmdeck TUI in a browser (textual-serve, 127.0.0.1)")
    w.add_argument("--port", type=int, default=8566, help="port (default 8566)")
    w.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    w.add_argument("--mode", dest="web_mode", default="monitor", help="mode the app opens in")
    w.set_defaults(func=cmd_web)


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key:
        return args.api_key
    if args.api_key_file:
        try:
            return Path(args.api_key_file).expanduser().read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise CommandError(f"cannot read --api-key-file {args.api_key_file}: {exc.strerror or exc}") from None
    return os.environ.get("LLMDECK_API_KEY") or None


def build_spec(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """The run spec and the API key (kept apart: the key never lands in run.json)."""
    from engine.serve.auth import check_bind
    from engine.serve.server import DEFAULT_PORT, ssh_tunnel_line

    port = args.port if args.port is not None else (args.api_port if args.api_port is not None else DEFAULT_PORT)
    if args.public_api:
        raise CommandError(
            "--public-api (a public tunnel) is not supported: it exposes the model to the whole internet. "
            f"Keep the server on 127.0.0.1 and reach it from your laptop with `{ssh_tunnel_line(port)}`, "
            f"then use http://127.0.0.1:{port}/v1"
        )
    model = args.model or args.model_flag
    if model and model.lower() in DEMO_NAMES and not Path(model).exists():
        model = ""
    elif model:
        path = Path(model).expanduser()
        if not path.exists() and args.engine != "vllm":
            raise CommandError(f"model not found: {model} (give a .gguf file, an HF model folder, or `demo`)")
        if path.exists():
            model = str(path.resolve())
    host = args.host or ((args.listen_host or "0.0.0.0") if args.listen else "127.0.0.1")
    key = _api_key(args)
    try:
        check_bind(host, key)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if not 0 <= port <= 65535:
        raise CommandError(f"--port must be between 0 and 65535, got {port}")
    if args.max_queue < 0:
        raise CommandError("--max-queue must be 0 or more")
    spec: dict[str, Any] = {
        "model": model, "engine": args.engine, "host": host, "port": port,
        "max_queue": args.max_queue, "max_tokens": args.max_tokens, "max_body_bytes": args.max_body_kb * 1024,
        "cors_origins": list(args.cors_origin or []), "gpu_memory": list(args.gpu_memory or []),
        "n_ctx": args.n_ctx, "n_gpu_layers": args.n_gpu_layers, "n_threads": args.n_threads, "template": args.template,
        "dtype": args.dtype,
        "trust_remote_code": args.trust_remote_code, "tensor_parallel_size": args.tensor_parallel_size,
    }
    if args.served_model_name:
        spec["model_id"] = args.served_model_name
    return spec, key


def cmd_serve(args: argparse.Namespace) -> int | OpenTUI:
    if not (args.model or args.model_flag) and not (args.detach or args.listen or args.public_api or args.api
                                                    or args.engine != "auto"):
        return OpenTUI(mode="serve", options={})
    spec, key = build_spec(args)
    if args.engine == "vllm":
        from engine.serve.vllm import vllm_missing_message

        missing = vllm_missing_message()
        if missing:
            raise CommandError(missing)
        if not spec["model"]:
            raise CommandError("--engine vllm needs a model: an HF model folder or a hub name vLLM can load")
    if args.detach:
        return _detach(spec, key)
    return _foreground(spec, key)


def _detach(spec: dict[str, Any], key: str | None) -> int:
    from engine.runs import RunStore
    from engine.serve.launch import start_detached, wait_until_serving

    store = RunStore()
    info = start_detached(store, spec, key)
    print(f"started run {info.id}; waiting for the server to listen...", flush=True)
    info, details = wait_until_serving(store, info.id)
    if details:
        print(f"serving {details['model_id']} at {details['api']}")
        print(f"from another machine: {details['ssh']}")
        print(f"stop it: llmdeck runs cancel {info.id}   (or in Serve mode: llmdeck serve)")
        return 0
    if info.active:
        print(f"still starting; follow it with `llmdeck runs follow {info.id}`")
        return 0
    tail = store.log_tail(info.id, 5)
    raise CommandError(f"the server did not start ({info.exit_reason or info.status})"
                       + (f": {tail[-1]}" if tail else ""))


def _foreground(spec: dict[str, Any], key: str | None) -> int:
    """Run the same job in this process, printing its log; Ctrl+C stops it gracefully."""
    import signal
    import threading

    from engine.events import Failed, Log, Progress
    from engine.jobs import JobContext, execute
    from engine.kinds import job_for
    from engine.serve.launch import SERVE_KIND

    job = job_for(SERVE_KIND)
    cancel = threading.Event()

    def emit(event: Any) -> None:
        if isinstance(event, Log):
            print(event.text, file=sys.stderr, flush=True)
        elif isinstance(event, Progress) and event.phase:
            print(f"[{event.phase}]", file=sys.stderr, flush=True)
        elif isinstance(event, Failed):
            print(f"llmdeck: error: {event.message}", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmdeck-serve-") as tmp:
        (Path(tmp) / "out").mkdir()
        cwd = os.getcwd()
        os.chdir(tmp)  # the job writes out/server.json relative to its run folder
        try:
            ctx = JobContext(emit, cancel)
            runner = threading.Thread(target=lambda: setattr(ctx, "result",
                                                             execute(job, {**spec, "api_key": key}, ctx)),
                                      daemon=True)
            runner.start()
            try:
                while runner.is_alive():
                    runner.join(0.5)
            except KeyboardInterrupt:
                print("stopping...", file=sys.stderr, flush=True)
                cancel.set()
                runner.join(30)
        finally:
            os.chdir(cwd)
            signal.signal(signal.SIGTERM, previous)
    result = getattr(ctx, "result", None)
    return 1 if isinstance(result, Failed) else 0


def cmd_web(args: argparse.Namespace) -> OpenWeb:
    """Checked here, served by `tui.web` (engine never imports the TUI)."""
    from engine.serve.auth import is_loopback

    if not is_loopback(args.host):
        raise CommandError(
            f"llmdeck web only binds a loopback address such as 127.0.0.1 (asked for {args.host}): it is plain "
            f"HTTP. From your laptop run `ssh -L {args.port}:127.0.0.1:{args.port} this-host` and open the "
            "URL it prints"
        )
    if not 1 <= args.port <= 65535:
        raise CommandError(f"--port must be between 1 and 65535, got {args.port}")
    return OpenWeb(host=args.host, port=args.port, mode=args.web_mode)
