"""Each conversion as a job `run(spec, ctx)`, the unit a detached run executes.

Every job follows the same path: pre-flight (refuse, or go on with `force`), convert into a
hidden temporary sibling of the output, verify that temporary output, and only then rename it
to the final path. A cancel, a failure or a failed verification therefore leaves nothing at the
final path. The summary returned (and shown by the CLI and the Convert screen) carries the
output path, sizes, timing and the verification figures.

Spec keys: action, input, output, force, verify, and per action:
  hf-to-gguf  outtype (f32|f16|bf16|q8_0), name
  quantize    qtype (Q4_K_M...), nthread, imatrix, allow_requantize
  gguf-to-hf  dtype (f32|f16|bf16), shard_size
  meta-to-hf  dtype (auto|f32|f16|bf16), shard_size, llama_version, context, tokenizer
  merge-lora  base, dtype, shard_size
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.convert import preflight
from engine.convert.common import ConvertError, commit, interrupt_on_cancel, staged
from engine.formatting import format_bytes
from engine.jobs import JobContext


def _prepare(spec: dict[str, Any], action: str, ctx: JobContext) -> tuple[Path, Path, preflight.Verdict]:
    spec = {**spec, "action": action}
    force = bool(spec.get("force"))
    # The quantize plan (a 1-5 s dry run) only when the header's figures refuse: a start goes on
    # as soon as the disk holds the output's upper bound (preflight.check, exact=False).
    verdict = preflight.check(spec, exact=False)
    if verdict.may_pass_when_exact(force):
        verdict = preflight.check(spec)
    for line in verdict.lines():
        ctx.log(line, "warning" if line.startswith(("warning", "problem")) else "info")
    blocking = verdict.blocking(force)
    if blocking:
        forceable = all(p.forceable for p in blocking) and "--force" not in blocking[0].text
        extra = " (--force overrides this)" if forceable else ""
        raise ConvertError(blocking[0].text + extra)
    return Path(str(spec["input"])).expanduser(), Path(verdict.output), verdict


def _verify_wanted(spec: dict[str, Any], verdict: preflight.Verdict, ctx: JobContext) -> bool:
    if not spec.get("verify", True):
        return False
    if not verdict.verify_fits:
        ctx.log(f"verification skipped: it needs about {format_bytes(verdict.verify_ram)} of RAM", "warning")
        return False
    return True


@contextlib.contextmanager
def _verify_phase(ctx: JobContext, what: str) -> Iterator[None]:
    """Bracket a verification: it shows as its own phase in the progress and the log, and a
    cancel stops it at once (`interrupt_on_cancel`)."""
    ctx.progress(0, 1, "verify", unit="step", force=True)
    ctx.log(f"verifying: {what}")
    with interrupt_on_cancel(ctx):
        yield
    ctx.progress(1, 1, "verify", unit="step")


def _finish(summary: dict[str, Any], output: Path, started: float, verified: bool) -> dict[str, Any]:
    summary["output"] = str(output)
    summary["seconds"] = round(time.monotonic() - started, 2)
    if not verified and "verify" not in summary:
        summary["verify"] = "skipped"
    return summary


def hf_to_gguf(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from engine.convert import hf_to_gguf as conv

    started = time.monotonic()
    source, output, verdict = _prepare(spec, "hf-to-gguf", ctx)
    outtype = str(spec.get("outtype", "f16"))
    verify = _verify_wanted(spec, verdict, ctx)
    with staged(output, directory=False) as tmp:
        summary = conv.convert(source, tmp, ctx, outtype=outtype, force=bool(spec.get("force")),
                               name=str(spec.get("name") or ""))
        ctx.raise_if_cancelled()
        if verify:
            from engine.convert.verify import verify_gguf_against_hf

            with _verify_phase(ctx, "llama.cpp on the GGUF vs transformers on the source"):
                summary["verify"] = verify_gguf_against_hf(
                    source, tmp, outtype, label=f"{output.name} vs {source.name}", check_=ctx.raise_if_cancelled
                )
        ctx.raise_if_cancelled()
        commit(tmp, output)
    return _finish(summary, output, started, verify)


def quantize(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from engine.convert import quantize as quant
    from engine.convert.gguf_source import read_gguf_header

    started = time.monotonic()
    source, output, verdict = _prepare(spec, "quantize", ctx)
    verify = _verify_wanted(spec, verdict, ctx)
    head = read_gguf_header(source)  # the header only: gguf-py's reader would take 10-15 s to count
    n_tensors = len(head.tensors)
    total = head.file_size
    imatrix = Path(str(spec["imatrix"])).expanduser() if spec.get("imatrix") else None
    with staged(output, directory=False) as tmp:
        summary = quant.quantize(
            source,
            tmp,
            str(spec.get("qtype", "Q4_K_M")),
            ctx,
            nthread=int(spec.get("nthread") or 0),
            imatrix=imatrix,
            allow_requantize=bool(spec.get("allow_requantize") or spec.get("force")),
            n_tensors=n_tensors,
            total_bytes=total,
        )
        ctx.raise_if_cancelled()
        if verify:
            from engine.convert.verify import verify_quantized

            with _verify_phase(ctx, "quantized vs source GGUF in llama.cpp, and a short generation"):
                label = f"{output.name} vs {source.name}"
                summary["verify"] = verify_quantized(
                    source, tmp, summary["quant_type"], label=label, check_=ctx.raise_if_cancelled
                )
        ctx.raise_if_cancelled()
        commit(tmp, output)
    return _finish(summary, output, started, verify)


def gguf_to_hf(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from engine.convert import gguf_to_hf as conv
    from engine.convert.gguf_source import is_float_file, read_gguf_header
    from engine.convert.shards import DEFAULT_SHARD_BYTES, parse_size

    started = time.monotonic()
    source, output, verdict = _prepare(spec, "gguf-to-hf", ctx)
    verify = _verify_wanted(spec, verdict, ctx)
    dtype = str(spec.get("dtype", "f32"))
    with staged(output, directory=True) as tmp:
        summary = conv.convert(source, tmp, ctx, dtype=dtype,
                               shard_bytes=parse_size(spec.get("shard_size") or DEFAULT_SHARD_BYTES))
        ctx.raise_if_cancelled()
        if verify:
            from engine.convert.verify import verify_hf_against_gguf

            with _verify_phase(ctx, "transformers on the output vs llama.cpp on the GGUF"):
                kind = (("f16" if dtype == "f32" else dtype) if is_float_file(read_gguf_header(source))
                        else "dequantized")
                summary["verify"] = verify_hf_against_gguf(
                    source, tmp, kind, label=f"{output.name} vs {source.name}", check_=ctx.raise_if_cancelled
                )
        ctx.raise_if_cancelled()
        commit(tmp, output)
    return _finish(summary, output, started, verify)


def meta_to_hf(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from engine.convert import meta_to_hf as conv
    from engine.convert.shards import DEFAULT_SHARD_BYTES, parse_size

    started = time.monotonic()
    source, output, verdict = _prepare(spec, "meta-to-hf", ctx)
    verify = _verify_wanted(spec, verdict, ctx)
    with staged(output, directory=True) as tmp:
        summary = conv.convert(
            source,
            tmp,
            ctx,
            dtype=str(spec.get("dtype", "auto")),
            shard_bytes=parse_size(spec.get("shard_size") or DEFAULT_SHARD_BYTES),
            llama_version=int(spec.get("llama_version") or 2),
            context=int(spec.get("context") or 0),
            tokenizer=Path(str(spec["tokenizer"])).expanduser() if spec.get("tokenizer") else None,
        )
        ctx.raise_if_cancelled()
        if verify:
            from engine.convert.verify import check, compare, hf_logits, hf_tokenize

            with _verify_phase(ctx, "Meta's reference forward on the shards vs transformers on the output"):
                ids = hf_tokenize(tmp)
                reference = conv.meta_reference_logits(source, ids)
                kind = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}.get(summary["dtype"], "bf16")
                result = compare(reference, hf_logits(tmp, ids, ctx.raise_if_cancelled), kind)
                summary["verify"] = check(result, f"{output.name} vs {source.name}")
        ctx.raise_if_cancelled()
        commit(tmp, output)
    return _finish(summary, output, started, verify)


def merge_lora(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    from engine.convert import merge_lora as conv

    started = time.monotonic()
    source, output, verdict = _prepare(spec, "merge-lora", ctx)
    verify = _verify_wanted(spec, verdict, ctx)
    with staged(output, directory=True) as tmp:
        summary = conv.merge(
            source,
            tmp,
            ctx,
            base=Path(str(spec["base"])).expanduser() if spec.get("base") else None,
            dtype=str(spec.get("dtype", "f32")),
            shard_size=str(spec.get("shard_size") or "2GB"),
            verify=verify,
        )
        ctx.raise_if_cancelled()
        commit(tmp, output)
    return _finish(summary, output, started, verify)

