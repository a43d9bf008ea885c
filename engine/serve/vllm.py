"""`llmdeck serve --engine vllm`: vLLM's own OpenAI server as a detached run.

vLLM is the engine for people who outgrow one process or one GPU (continuous batching, paged
attention, tensor parallelism). We do not wrap it: we start `python -m
vllm.entrypoints.openai.api_server` as a child process of the run, turn its log lines into
startup phases, poll its `/health` until it answers, and stop it with SIGINT (then SIGTERM, then
SIGKILL) on cancel. The run writes the same out/server.json as the built-in server, so the Serve
mode lists both the same way. The API key goes to vLLM through VLLM_API_KEY, not argv.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine.atomic import write_json
from engine.child_process import die_with_parent
from engine.jobs import JobContext, JobError

INSTALL_HINT = (
    "vLLM is not installed in this Python environment. Install it with `pip install vllm` (Linux with an NVIDIA "
    "GPU and a recent CUDA driver; see https://docs.vllm.ai/en/latest/getting_started/installation/), "
    "or serve with the built-in engines: `llmdeck serve MODEL --engine transformers` (HF folder) or a .gguf file"
)

# (pattern in vLLM's log, phase shown) in startup order.
PHASES: tuple[tuple[str, str], ...] = (
    (r"(?i)initializing|vllm api server version|non-default args", "starting vLLM"),
    (r"(?i)starting to load model|loading model weights|loading safetensors", "loading weights"),
    (r"(?i)memory profiling|available kv cache memory|# gpu blocks|kv cache", "profiling memory / KV cache"),
    (r"(?i)cuda graph|capturing", "capturing CUDA graphs"),
    (r"(?i)starting vllm api server|uvicorn running|application startup complete", "opening the API"),
)


def vllm_missing_message() -> str | None:
    """None when vLLM can be imported here, else how to install it."""
    return INSTALL_HINT if importlib.util.find_spec("vllm") is None else None


def vllm_command(spec: dict[str, Any], port: int) -> list[str]:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(spec["model"]),
           "--host", spec.get("host") or "127.0.0.1", "--port", str(port),
           "--tensor-parallel-size", str(int(spec.get("tensor_parallel_size") or 1))]
    if spec.get("model_id"):
        cmd += ["--served-model-name", str(spec["model_id"])]
    if spec.get("trust_remote_code"):
        cmd.append("--trust-remote-code")
    if spec.get("dtype") and spec["dtype"] != "auto":
        cmd += ["--dtype", str(spec["dtype"])]
    for origin in spec.get("cors_origins") or ():
        cmd += ["--allowed-origins", f'["{origin}"]']
    return cmd


def phase_of(line: str) -> str | None:
    for pattern, phase in PHASES:
        if re.search(pattern, line):
            return phase
    return None


def _healthy(url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(proc: subprocess.Popen, ctx: JobContext | None = None) -> None:
    """SIGINT (vLLM shuts down cleanly), then SIGTERM, then SIGKILL, to the whole process group
    (tensor-parallel workers included)."""
    for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            if ctx:
                ctx.log(f"vLLM did not stop after {signal.Signals(sig).name}; escalating", "warning")


def run(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The `serve` run with engine vllm. Spec as for engine.serve.server.run, plus
    tensor_parallel_size; `vllm_command` (a list) replaces the launcher (tests)."""
    from engine.serve.auth import check_bind
    from engine.serve.server import SERVER_FILE, bind_socket, model_id_for, read_key, ssh_tunnel_line

    command = spec.get("vllm_command")
    if not command:
        missing = vllm_missing_message()
        if missing:
            raise JobError(missing)
        if not spec.get("model"):
            raise JobError("--engine vllm needs a model: an HF model folder or a hub model name")
    run_dir = Path.cwd()
    host = spec.get("host") or "127.0.0.1"
    api_key = read_key(spec, run_dir)
    try:
        check_bind(host, api_key)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    port = int(spec.get("port", 8000))
    probe = bind_socket(host, port)  # clear 'port in use' now; port 0 picks a free one
    port = int(probe.getsockname()[1])
    probe.close()
    cmd = list(command) + [str(port)] if command else vllm_command(spec, port)
    env = {**os.environ}
    if api_key:
        env["VLLM_API_KEY"] = api_key
    ctx.progress(0, len(PHASES), "starting vLLM", force=True)
    ctx.log("$ " + " ".join(cmd))
    if spec.get("gpu_memory"):
        ctx.log("vLLM sizes its memory with --gpu-memory-utilization (a fraction per GPU); --gpu-memory is ignored",
                "warning")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, bufsize=1, env=env, start_new_session=True,
                            preexec_fn=die_with_parent())  # noqa: PLW1509 - lock-free, see engine/child_process.py
    lines: list[str] = []
    requests = {"n": 0}

    def pump() -> None:
        assert proc.stdout is not None
        reached = 0
        for raw in proc.stdout:
            line = raw.rstrip()
            lines.append(line)
            del lines[:-200]
            phase = phase_of(line)
            if phase:
                index = [p for _, p in PHASES].index(phase)
                if index >= reached:
                    reached = index + 1
                    ctx.progress(index, len(PHASES), phase, force=True)
            if '"POST /v1/' in line:
                requests["n"] += 1
                ctx.metric(requests["n"], request=1,
                           status=float(m.group(1)) if (m := re.search(r'" (\d{3})', line)) else 0)
            ctx.log(line)

    reader = threading.Thread(target=pump, daemon=True, name="vllm-log")
    reader.start()
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    startup_timeout = float(spec.get("startup_timeout_s") or 1800)
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(url):
            if proc.poll() is not None:
                tail = next((line for line in reversed(lines) if line.strip()), "no output")
                raise JobError(f"vLLM exited with status {proc.returncode} while starting: {tail}")
            if time.monotonic() > deadline:
                raise JobError(f"vLLM did not answer {url}/health within {startup_timeout:.0f} s")
            if not ctx.wait(1.0):
                return {"url": url, "engine": "vllm", "requests": 0}
        model = str(spec.get("model") or "")
        details = {"url": url, "api": f"{url}/v1", "host": host, "port": port, "model": model,
                   "model_id": spec.get("model_id") or model_id_for(model), "engine": "vllm", "auth": bool(api_key),
                   "ssh": ssh_tunnel_line(port, host), "pid": proc.pid, "started": time.time()}
        write_json(run_dir / "out" / SERVER_FILE, details)
        ctx.progress(len(PHASES), len(PHASES), "serving", force=True)
        ctx.log(f"vLLM is serving at {url}/v1; from another machine: {details['ssh']}")
        while ctx.wait(1.0):
            if proc.poll() is not None:
                raise JobError(f"vLLM exited with status {proc.returncode}: {lines[-1] if lines else 'no output'}")
    finally:
        _stop(proc, ctx)
        reader.join(5.0)
        (run_dir / "out" / SERVER_FILE).unlink(missing_ok=True)
    return {"url": url, "engine": "vllm", "requests": requests["n"]}
