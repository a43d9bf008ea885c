"""The run kinds llmdeck knows, as import paths, so a worker imports only the job it runs.

A kind maps to "module:function" where the function is a job `(spec, ctx) -> summary`. Area
packages add their kinds here (convert.*, train, eval.*, bench.*, serve).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.jobs import JobFunction

KINDS: dict[str, str] = {
    "selftest": "engine.selftest:count",
    "data.scan": "engine.data.job:scan_job",
    "convert.meta-to-hf": "engine.convert.jobs:meta_to_hf",
    "convert.hf-to-gguf": "engine.convert.jobs:hf_to_gguf",
    "convert.quantize": "engine.convert.jobs:quantize",
    "convert.merge-lora": "engine.convert.jobs:merge_lora",
    "convert.gguf-to-hf": "engine.convert.jobs:gguf_to_hf",
    "eval.ppl": "engine.evaluate.jobs:ppl",
    "bench.speed": "engine.evaluate.jobs:speed",
    "bench.sweep": "engine.evaluate.jobs:sweep",
    "train": "engine.train.job:run",
    "train.demo": "engine.train.demo:run",
    "train.merge": "engine.train.export:merge",
    "train.gguf": "engine.train.export:to_gguf",
    "serve": "engine.serve.server:run",
    "serve.vllm": "engine.serve.vllm:run",
}


class UnknownKind(Exception):
    pass


def resolve(kind: str, entry: str = "") -> JobFunction:
    """Import and return the job function of `kind` (or of an explicit `entry`)."""
    target = entry or KINDS.get(kind)
    if not target:
        raise UnknownKind(f"unknown run kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownKind(f"run kind {kind!r} points at {target!r}, which cannot be imported: {exc}") from None
