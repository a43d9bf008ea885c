"""Merge a peft LoRA adapter into its base model -> a standalone HF model folder.

The reference logits are taken from the peft model itself (base + adapter, unmerged) before the
merge, so verification proves the merged folder computes what the adapter did.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError, read_json
from engine.convert.tokenizer_files import copy_tokenizer_files, tokenizer_files
from engine.jobs import JobContext

MERGE_STEPS = 4  # load base, load adapter, merge, save


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
    ctx.progress(0, MERGE_STEPS, "merge", unit="steps", force=True)
    ctx.log(f"loading base model {base_dir}")
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch_dtype)
    ctx.raise_if_cancelled()
    ctx.progress(1, MERGE_STEPS, "merge", unit="steps", force=True)
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter))
    except Exception as exc:  # noqa: BLE001 - peft raises many types for a mismatched adapter
        raise ConvertError(f"{adapter} does not fit base {base_dir} ({type(exc).__name__}: {str(exc)[:160]})") from None
    peft_model.eval()
    ctx.raise_if_cancelled()
    ctx.progress(2, MERGE_STEPS, "merge", unit="steps", force=True)
    # the adapter's tokenizer files (a training run saves the chat template it trained with)
    # over the base's, and every file the base had that the adapter lacks (tokenizer.model)
    tok_dir = adapter if tokenizer_files(adapter) else base_dir
    reference = None
    ids = None
    if verify:  # the peft model (base + adapter, unmerged) is the reference
        from engine.convert.verify import GREEDY_PROMPTS, hf_greedy, hf_logits, hf_tokenize

        ids = hf_tokenize(tok_dir)
        reference = (hf_logits(peft_model, ids, ctx.raise_if_cancelled),
                     hf_greedy(peft_model, ids[:GREEDY_PROMPTS], check=ctx.raise_if_cancelled))
    merged = peft_model.merge_and_unload()
    ctx.raise_if_cancelled()
    ctx.progress(3, MERGE_STEPS, "merge", unit="steps", force=True)
    merged.save_pretrained(str(folder), max_shard_size=shard_size, safe_serialization=True)
    copy_tokenizer_files(tok_dir, folder, replace=True)
    copied = copy_tokenizer_files(base_dir, folder)
    if copied and tok_dir != base_dir:
        ctx.log(f"tokenizer files from the base model: {', '.join(copied)}")
    if (base_dir / "generation_config.json").is_file() and not (folder / "generation_config.json").exists():
        shutil.copyfile(base_dir / "generation_config.json", folder / "generation_config.json")
    ctx.progress(4, MERGE_STEPS, "merge", unit="steps", force=True)
    summary: dict[str, Any] = {"base": str(base_dir), "adapter": str(adapter), "dtype": dtype}
    if verify and reference is not None and ids is not None:
        from engine.convert.verify import check, compare, hf_logits, judge_greedy, load_hf_model, teacher_forced

        ctx.log("verifying: merged model vs the peft model")
        ctx.progress(0, 1, "verify", unit="step", force=True)
        merged_model = load_hf_model(folder)
        candidate, ranks = teacher_forced(
            lambda seqs: hf_logits(merged_model, seqs, ctx.raise_if_cancelled), ids, reference[1]
        )
        result = judge_greedy(compare(reference[0], candidate, dtype), ranks)
        summary["verify"] = check(result, f"merged model vs base + {adapter.name}")
        ctx.progress(1, 1, "verify", unit="step", force=True)
    return summary
