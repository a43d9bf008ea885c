"""The serve job (kind "serve"): one kind for every engine, so every server is listed as a server.

The engine the spec names picks the server: vLLM runs as a child process (`engine.serve.vllm`),
llama.cpp and transformers run in this process behind llmdeck's own API (`engine.serve.server`).
"""

from __future__ import annotations

from typing import Any

from engine.jobs import JobContext


def serve(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Serve the spec's model until cancelled, with the engine it names."""
    if spec.get("engine") == "vllm":
        from engine.serve.vllm import run
    else:
        from engine.serve.server import run
    return run(spec, ctx)
