"""Merge a peft LoRA adapter into its base model -> a standalone HF model folder.

The reference logits are taken from the peft model itself (base + adapter, unmerged) before the
merge, so verification proves the merged folder computes what the adapter did.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError, TensorProgress, read_json
from engine.jobs import JobContext

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
)


def resolve_base(adapter: Path, base: Path | None) -> Path:
    """The base model folder: given, or the adapter's `base_model_name_or_path` if local."""
    config = read_json(Path(adapter) / "adapter_config.json")
    if base is None:
        named = config.get("base_model_name_or_path")
        if not named:
            raise ConvertError(f"{adapter / 'adapter_config.json'} names no base model; pass --base PATH")
        base = Path(str(named)).expanduser()
        if not base.exists():
            raise ConvertError(
                f"the adapter's base model {named!r} is not a local folder (llmdeck works offline); pass --base PATH"
            )
    base = Path(base)
    if not (base / "config.json").is_file():
        raise ConvertError(f"base model {base} has no config.json")
    return base


def merge(
    adapter: Path,
    folder: Path,
    ctx: JobContext,
    *,
    base: Path | None = None,
    dtype: str = "f32",
    shard_size: str = "2GB",
    verify: bool = True,
) -> dict[str, Any]:
    """Write base+adapter merged into `folder` (staged by the caller)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = Path(adapter)
    base_dir = resolve_base(adapter, base)
    torch_dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}.get(dtype)
    if torch_dtype is None:
        raise ConvertError(f"dtype {dtype!r} is not one of f32, f16, bf16")
    steps = TensorProgress(ctx, "merge", 4, 4)
    ctx.log(f"loading base model {base_dir}")
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch_dtype)
    steps.advance(1)
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter))
    except Exception as exc:  # noqa: BLE001 - peft raises many types for a mismatched adapter
        raise ConvertError(f"{adapter} does not fit base {base_dir} ({type(exc).__name__}: {str(exc)[:160]})") from None
    peft_model.eval()
    steps.advance(1)
    tok_dir = adapter if any((adapter / f).exists() for f in ("tokenizer.json", "tokenizer.model")) else base_dir
    reference = None
    ids = None
    if verify:
        from engine.convert.verify import hf_logits, hf_tokenize

        ids = hf_tokenize(tok_dir)
        reference = hf_logits(peft_model, ids)
    merged = peft_model.merge_and_unload()
    steps.advance(1)
    merged.save_pretrained(str(folder), max_shard_size=shard_size, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tok_dir / name).is_file():
            shutil.copy2(tok_dir / name, folder / name)
    if (base_dir / "generation_config.json").is_file() and not (folder / "generation_config.json").exists():
        shutil.copy2(base_dir / "generation_config.json", folder / "generation_config.json")
    steps.advance(1)
    summary: dict[str, Any] = {"base": str(base_dir), "adapter": str(adapter), "dtype": dtype}
    if verify and reference is not None:
        from engine.convert.verify import check, compare, hf_logits

        ctx.log("verifying: merged model vs the peft model")
        result = compare(reference, hf_logits(folder, ids), "f32" if dtype == "f32" else dtype)
        summary["verify"] = check(result, f"merged model vs base + {adapter.name}")
    return summary
