"""The run kinds llmdeck knows: the one place a kind maps to its job function.

A job is a function `job(spec: dict, ctx: JobContext) -> dict | None` (see engine.jobs). Each kind
names its job as "module:function", imported only when the job runs, so starting a run (from the
TUI, the CLI or a test) loads nothing heavy and a worker imports only the job it runs.

Callers start a run by kind (`RunStore().start("convert.quantize", spec)`); nothing else names a
job's module. Adding a kind is one line here plus the job module (docs/ARCHITECTURE.md). A run
folder records only its kind, so a job may move to another module without breaking old runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.jobs import JobFunction

JOB_OF_KIND: dict[str, str] = {
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
    "serve": "engine.serve.job:serve",
}


class UnknownKind(Exception):
    """No job is registered for this kind (or its module cannot be imported)."""


def require_known(kind: str) -> None:
    """Refuse an unknown kind now, in the caller, without importing its job."""
    if kind not in JOB_OF_KIND:
        raise UnknownKind(f"unknown run kind {kind!r}; known kinds: {', '.join(sorted(JOB_OF_KIND))}")


def job_for(kind: str) -> JobFunction:
    """Import and return the job function of `kind`."""
    require_known(kind)
    target = JOB_OF_KIND[kind]
    module_name, _, func_name = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownKind(f"run kind {kind!r} points at {target!r}, which cannot be imported: {exc}") from None
