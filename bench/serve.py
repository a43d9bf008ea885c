"""Load test: N concurrent streaming clients for a bounded time against llmdeck's server, side by
side with llama-cpp-python's own `llama_cpp.server` on the same GGUF (where its extras are installed).

Each server runs as its own subprocess on 127.0.0.1 (a free port), one after the other, with the
same model, context, threads and requests: a short chat turn, streamed, temperature 0. Clients
stop starting requests after --duration seconds; requests still running get --timeout seconds.
Reports requests done, errors (target 0), generated tokens/s, p50/p95 latency and TTFT.

    python bench/serve.py [MODEL.gguf] [--clients 8] [--duration 20] [--max-tokens 32] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.ports import free_port  # noqa: E402 - after the path insert, so the bench runs from a checkout

# llama_cpp.server with the same AMX guard as our backend: on VMs that advertise AMX without
# enabling it, llama.cpp's extra CPU buffers crash the process (a general protection fault).
LLAMA_SERVER = """
import contextlib, sys
from engine.llama_runtime import default_params_without_extra_buffers, extra_buffers_safe
from llama_cpp.server.__main__ import main
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
# The whole server process loads one model, so the patch may stay on for its lifetime.
with contextlib.nullcontext() if extra_buffers_safe() else default_params_without_extra_buffers():
    main()
"""

PROMPTS = ("The sea is", "Three fruits are", "A GPU is a", "In French, hello is")


@dataclass
class Result:
    server: str
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    note: str = ""

    def row(self) -> dict:
        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

        return {"server": self.server, "requests": self.requests, "errors": self.errors,
                "tokens_per_s": self.tokens / self.wall_s if self.wall_s else 0.0,
                "p50_latency_s": pct(self.latencies, 0.5), "p95_latency_s": pct(self.latencies, 0.95),
                "p50_ttft_s": pct(self.ttfts, 0.5), "p95_ttft_s": pct(self.ttfts, 0.95),
                "note": self.note, "error_samples": self.error_samples[:3]}


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server did not answer {url} within {timeout:.0f} s")


async def one_request(client, url: str, body: dict, res: Result) -> None:
    started = time.perf_counter()
    first = None
    tokens = 0
    usage_tokens = None
    try:
        async with client.stream("POST", url, json=body) as resp:
            if resp.status_code != 200:
                res.errors += 1
                res.error_samples.append(f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}")
                return
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line[6:])
                if data.get("usage"):
                    usage_tokens = data["usage"].get("completion_tokens")
                for choice in data.get("choices") or ():
                    if (choice.get("delta") or {}).get("content") or choice.get("text"):
                        tokens += 1
                        if first is None:
                            first = time.perf_counter()
    except Exception as exc:  # noqa: BLE001 - every failure is counted, the run goes on
        res.errors += 1
        res.error_samples.append(f"{type(exc).__name__}: {exc}")
        return
    res.requests += 1
    res.tokens += usage_tokens if usage_tokens is not None else tokens
    res.latencies.append(time.perf_counter() - started)
    if first is not None:
        res.ttfts.append(first - started)


async def load(base: str, name: str, clients: int, duration: float, max_tokens: int, timeout: float,
               endpoint: str = "completions") -> Result:
    import httpx

    res = Result(name)
    url = f"{base}/v1/{'chat/completions' if endpoint == 'chat' else 'completions'}"
    deadline = time.perf_counter() + duration

    async def worker(i: int) -> None:
        n = 0
        async with httpx.AsyncClient(timeout=timeout) as client:
            while time.perf_counter() < deadline:
                prompt = PROMPTS[(i + n) % len(PROMPTS)]
                body = {"max_tokens": max_tokens, "temperature": 0, "stream": True,
                        "stream_options": {"include_usage": True}}
                if endpoint == "chat":
                    body["messages"] = [{"role": "user", "content": prompt}]
                else:
                    body["prompt"] = prompt
                await one_request(client, url, body, res)
                n += 1

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(clients))), duration + timeout + 10)
    res.wall_s = time.perf_counter() - start
    return res


def run_server(name: str, cmd: list[str], port: int, args: argparse.Namespace, env: dict | None = None) -> Result:
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below, after the server stops
        "w+", prefix=f"bench-serve-{name.split()[0]}-", suffix=".log", delete=False)
    env = env or {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), env=env,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{base}/v1/models", proc, args.startup_timeout)
        return asyncio.run(load(base, name, args.clients, args.duration, args.max_tokens, args.timeout, args.endpoint))
    except RuntimeError as exc:
        log.seek(0)
        tail = log.read().strip().splitlines()[-3:]
        return Result(name, note=f"{exc}: {' | '.join(tail)}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def llama_server_missing() -> str | None:
    needed = ("llama_cpp", "sse_starlette", "starlette_context", "pydantic_settings")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        return (f"llama_cpp.server not run: missing {', '.join(missing)} "
                "(install with `pip install 'llama-cpp-python[server]'`)")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=None, help="GGUF file (default: the bundled Gemma 3 270M)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds during which clients start requests")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--endpoint", choices=("completions", "chat"), default="completions",
                        help="completions (default): the same raw prompt on both servers; chat: each server's own "
                             "chat template (llama_cpp.server falls back to llama-2 for GGUFs without a template)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout (s)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads for both servers")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--only", choices=("llmdeck", "llama_cpp.server"), default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model = args.model
    if not model:
        from engine.chat.default_model import default_model_path

        model = str(default_model_path())
    threads = args.threads or max(1, (os.cpu_count() or 2) // 2)
    results: list[Result] = []
    if args.only in (None, "llmdeck"):
        port = free_port()
        queue = max(64, args.clients * 2)
        cmd = [sys.executable, "-m", "engine.cli", "serve", model, "--port", str(port), "--n-ctx", str(args.n_ctx),
               "--threads", str(threads), "--max-queue", str(queue), "--max-tokens", str(max(args.max_tokens, 64))]
        results.append(run_server("llmdeck serve", cmd, port, args))
    if args.only in (None, "llama_cpp.server"):
        missing = llama_server_missing()
        if missing:
            results.append(Result("llama_cpp.server", note=missing))
        else:
            port = free_port()
            cmd = [sys.executable, "-c", LLAMA_SERVER, "--model", model, "--host", "127.0.0.1", "--port", str(port),
                   "--n_ctx", str(args.n_ctx), "--n_threads", str(threads),
                   # its default interrupts a running stream whenever a new request arrives
                   "--interrupt_requests", "False"]
            results.append(run_server("llama_cpp.server", cmd, port, args))

    rows = [r.row() for r in results]
    if args.json:
        print(json.dumps({"model": model, "clients": args.clients, "duration_s": args.duration,
                          "max_tokens": args.max_tokens, "threads": threads, "results": rows}, indent=2))
        return 0
    print(f"model {Path(model).name} · /v1/{args.endpoint} · {args.clients} clients · {args.duration:g} s · max_tokens "
          f"{args.max_tokens} · "
          f"{threads} threads")

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    print(f"{'server':18} {'requests':>8} {'errors':>6} {'tok/s':>7} "
          f"{'p50 lat':>8} {'p95 lat':>8} {'p50 TTFT':>9} {'p95 TTFT':>9}")
    for row in rows:
        if row["note"] and not row["requests"]:
            print(f"{row['server']:18} {row['note']}")
            continue
        print(f"{row['server']:18} {row['requests']:>8} {row['errors']:>6} {row['tokens_per_s']:>7.1f} "
              f"{fmt(row['p50_latency_s']):>8} {fmt(row['p95_latency_s']):>8} {fmt(row['p50_ttft_s']):>9} "
              f"{fmt(row['p95_ttft_s']):>9}")
        for sample in row["error_samples"]:
            print(f"{'':18} error: {sample}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
