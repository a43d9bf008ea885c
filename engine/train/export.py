"""Actions on a run's outputs: merge a LoRA adapter into its base, export to GGUF.

Both are jobs (kinds "train.merge" and "train.gguf") so the TUI starts them as detached runs.
Merging uses peft's `merge_and_unload`; GGUF export reuses the conversion engine
(`engine.convert.hf_to_gguf`). Outputs are written to a temporary sibling and renamed into
place (`engine.convert.common.staged/commit`), so a failed or cancelled export leaves nothing
that looks finished.
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


def merge_into(adapter: Path, out: Path, ctx: Any) -> Path:
    """Write base + adapter merged into `out` (a folder that must not exist yet)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = base_of(adapter)
    ctx.log(f"merging {adapter.name} into {base.name}")
    ctx.progress(0, 3, "merge")
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32, local_files_only=True)
    ctx.progress(1, 3, "merge")
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    ctx.raise_if_cancelled()
    ctx.progress(2, 3, "merge")
    model.save_pretrained(str(out))
    tok_dir = adapter if (adapter / "tokenizer_config.json").is_file() else base
    AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True).save_pretrained(str(out))
    ctx.progress(3, 3, "merge")
    return out


def merge(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job: {"adapter": folder, "output": folder}."""
    from engine.convert.common import commit, staged

    adapter = Path(spec["adapter"]).expanduser()
    if not is_adapter(adapter):
        raise JobError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    final = Path(spec.get("output") or adapter.with_name(adapter.name + "-merged")).expanduser()
    if final.exists() and not spec.get("force"):
        raise JobError(f"{final} already exists; choose another output or remove it")
    with staged(final, directory=True) as tmp:
        tmp.rmdir()
        merge_into(adapter, tmp, ctx)
        commit(tmp, final)
    ctx.log(f"merged model written to {final}")
    return {"output": str(final)}


def to_gguf(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job: {"model": adapter or HF folder, "output": file.gguf, "outtype": "f16"}."""
    from engine.convert.common import commit, staged
    from engine.convert.hf_to_gguf import convert

    source = Path(spec["model"]).expanduser()
    outtype = spec.get("outtype") or "f16"
    final = Path(spec.get("output") or source.with_name(f"{source.name}-{outtype}.gguf")).expanduser()
    if final.exists() and not spec.get("force"):
        raise JobError(f"{final} already exists; choose another output or remove it")
    # The merged scratch model is a staged output too (listed in the run, removed after a crash).
    with staged(final.with_name(final.name + ".merge"), directory=True) as scratch:
        model_dir = source
        if is_adapter(source):
            model_dir = merge_into(source, scratch / "merged", ctx)
        with staged(final, directory=False) as tmp:
            result = convert(model_dir, tmp, ctx, outtype=outtype, name=source.name)
            commit(tmp, final)
    ctx.log(f"GGUF written to {final}")
    return {"output": str(final), **result}
