"""Actions on a run's outputs: merge a LoRA adapter into its base, export to GGUF.

Both are jobs (kinds "train.merge" and "train.gguf") so the TUI starts them as detached runs.
They are the conversion engine's own jobs (`engine.convert.jobs.merge_lora` and `hf_to_gguf`),
so `m` and `g` in Train mode do exactly what `llmdeck convert merge-lora` and `hf-to-gguf` do:
pre-flight, a staged output renamed into place only after it verified, the base model's
tokenizer files carried along. A failed or cancelled export leaves nothing that looks finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.jobs import JobContext, JobError


def is_adapter(folder: Path) -> bool:
    return (Path(folder) / "adapter_config.json").is_file()


def base_of(adapter: Path) -> Path:
    config = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    base = Path(config.get("base_model_name_or_path") or "").expanduser()
    if not (base / "config.json").is_file():
        raise JobError(f"{adapter.name}: its base model {str(base)!r} is not a local HF folder; merge needs it")
    return base


def merge(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job: {"adapter": folder, "output": folder}: `llmdeck convert merge-lora` on the adapter
    (pre-flight, staged output, verified against base + adapter, tokenizer files carried)."""
    from engine.convert import jobs

    adapter = Path(spec["adapter"]).expanduser()
    if not is_adapter(adapter):
        raise JobError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    base_of(adapter)
    final = Path(spec.get("output") or adapter.with_name(adapter.name + "-merged")).expanduser()
    job = {"input": str(adapter), "output": str(final), "force": bool(spec.get("force")), "verify": spec.get("verify", True)}
    summary = jobs.merge_lora(job, ctx)
    ctx.log(f"merged model written to {final}")
    return summary


def to_gguf(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job: {"model": adapter or HF folder, "output": file.gguf, "outtype": "f16"}: an adapter is
    merged into a hidden folder next to the output first, then `llmdeck convert hf-to-gguf`
    (verified with llama.cpp against the merged model); the hidden folder goes either way."""
    from engine.convert import jobs
    from engine.convert.common import staged

    source = Path(spec["model"]).expanduser()
    outtype = spec.get("outtype") or "f16"
    final = Path(spec.get("output") or source.with_name(f"{source.name}-{outtype}.gguf")).expanduser()
    if final.exists() and not spec.get("force"):
        raise JobError(f"{final} already exists; choose another output or remove it")
    convert = {"output": str(final), "outtype": outtype, "force": bool(spec.get("force")), "name": source.name,
               "verify": spec.get("verify", True)}
    if not is_adapter(source):
        summary = jobs.hf_to_gguf({**convert, "input": str(source)}, ctx)
    else:
        base_of(source)
        with staged(final.with_name(final.name + ".merged"), directory=True) as scratch:
            merged = jobs.merge_lora({"input": str(source), "output": str(scratch), "force": True,
                                      "verify": spec.get("verify", True)}, ctx)
            summary = jobs.hf_to_gguf({**convert, "input": str(scratch)}, ctx)
            summary["merge_verify"] = merged.get("verify")
    ctx.log(f"GGUF written to {final}")
    return summary
