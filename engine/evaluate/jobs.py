"""Evaluations as jobs `run(spec, ctx)`: detached runs (`RunStore.start`) with progress.

The jobs of the kinds eval.ppl, bench.speed and bench.sweep (registered in engine/kinds.py):
    ppl     spec: model, file, backend, ctx, stride, max_tokens
    speed   spec: model, backend, prompt_len, gen_len, reps
    sweep   spec: model, types, ppl_file, ctx, stride, max_tokens, prompt_len, gen_len, reps,
            allow_requantize, out_dir
Common spec keys: n_gpu_layers, n_threads (llama.cpp), dtype, device_map (transformers).

Each job writes its record (see `engine.evaluate.results`) to `out/result.json` of its run and
returns it as the Finished summary, so finished results survive and compare across runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine.jobs import JobContext, JobError


def run_out_dir(spec: dict[str, Any], ctx: JobContext) -> Path:
    """Where a job keeps its outputs: spec `out_dir`, else its run's `out/` folder (the
    detached worker runs inside the run folder), else a dated folder under the data dir."""
    if spec.get("out_dir"):
        return Path(spec["out_dir"]).expanduser()
    cwd = Path.cwd()
    if ctx.job_id and cwd.name == ctx.job_id and (cwd / "out").is_dir():
        return cwd / "out"
    from engine import paths

    return paths.data_dir() / "bench" / time.strftime("%Y%m%d-%H%M%S")


def _load_options(spec: dict[str, Any], backend: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if backend == "llama.cpp":
        for key in ("n_gpu_layers", "n_threads"):
            if spec.get(key) is not None:
                opts[key] = int(spec[key])
    elif backend == "transformers":
        for key in ("dtype", "device_map", "base_model"):
            if spec.get(key):
                opts[key] = spec[key]
        if spec.get("n_threads"):
            opts["n_threads"] = int(spec["n_threads"])
    return opts


def _require(spec: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if not spec.get(k)]
    if missing:
        raise JobError(f"the run's spec lacks {', '.join(missing)}")


def _finish(kind: str, result: dict[str, Any], spec: dict[str, Any], ctx: JobContext, *, model: str,
            backend: str) -> dict[str, Any]:
    from engine.evaluate import results

    record = results.make_record(kind, result, model=model, backend=backend, settings=spec, run_id=ctx.job_id)
    out = run_out_dir(spec, ctx)
    path = results.save(record, out)
    ctx.log(f"result saved to {path}")
    return record


def ppl(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from engine.evaluate.models import resolve_backend
    from engine.evaluate.perplexity import DEFAULT_CTX, perplexity

    _require(spec, "model", "file")
    backend = resolve_backend(spec["model"], spec.get("backend") or "auto")
    result = perplexity(
        spec["model"], spec["file"], backend=backend, ctx=int(spec.get("ctx") or DEFAULT_CTX),
        stride=spec.get("stride"), max_tokens=spec.get("max_tokens"), job=ctx, **_load_options(spec, backend),
    )
    ctx.log(f"PPL {result.ppl:.4f} over {result.tokens_evaluated} tokens ({result.windows} windows, "
            f"{result.seconds:.1f} s)")
    return _finish("eval.ppl", result.to_dict(), spec, ctx, model=result.model, backend=backend)


def speed(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from engine.evaluate.models import resolve_backend
    from engine.evaluate.throughput import measure

    _require(spec, "model")
    backend = resolve_backend(spec["model"], spec.get("backend") or "auto")
    result = measure(
        spec["model"], backend=backend, prompt_len=int(spec.get("prompt_len") or 512),
        gen_len=int(spec.get("gen_len") or 128),
        reps=int(spec.get("reps") or 3), job=ctx, **_load_options(spec, backend),
    )
    ctx.log(result.line())
    return _finish("bench.speed", result.to_dict(), spec, ctx, model=result.model, backend=backend)


def sweep(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from engine.evaluate.sweep import sweep as run_sweep

    _require(spec, "model", "types", "ppl_file")
    out = run_out_dir(spec, ctx)
    result = run_sweep(
        spec["model"], spec["types"], spec["ppl_file"], out,
        ctx=int(spec.get("ctx") or 512), stride=spec.get("stride"), max_tokens=spec.get("max_tokens"),
        prompt_len=int(spec.get("prompt_len") or 512), gen_len=int(spec.get("gen_len") or 128),
        reps=int(spec.get("reps") or 3),
        allow_requantize=bool(spec.get("allow_requantize")), n_gpu_layers=spec.get("n_gpu_layers"),
        n_threads=spec.get("n_threads"),
        job=ctx,
    )
    return _finish("bench.sweep", result.to_dict(), spec, ctx, model=result.source, backend="llama.cpp")

