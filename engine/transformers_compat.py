"""Differences between the transformers releases llmdeck supports (pyproject.toml's floor and up).

Why a module: the floor is the oldest release the suite has run against (5.17, the GPU machine's
image), and newer releases rename things. Each difference is detected from the installed library
itself, never from its version number, so an in-between or patched release still works.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any


def checkpointing_arguments(enabled: bool, fields: Collection[str]) -> dict[str, Any]:
    """`TrainingArguments` keywords that turn activation (gradient) checkpointing on or off.

    transformers 5.24 names them `activation_checkpointing` / `activation_checkpointing_kwargs`;
    older releases (5.17, 5.18) only know `gradient_checkpointing` / `gradient_checkpointing_kwargs`
    (passing the new names there is a TypeError that fails every run). `fields` is
    `TrainingArguments.__dataclass_fields__`. Non-reentrant checkpointing is what torch recommends
    and what works with LoRA's frozen inputs.
    """
    name = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False} if enabled else None}


def gguf_add_bos(path: str | Path) -> bool | None:
    """The GGUF's own `tokenizer.ggml.add_bos_token` (None when it does not say), read with
    engine.gguf_header, which skips the vocabulary arrays (gguf-py walks all of them)."""
    from engine.gguf_header import GGUFHeaderError, read_header

    try:
        value = read_header(path).kv.get("tokenizer.ggml.add_bos_token")
    except GGUFHeaderError:
        return None
    return None if value is None else bool(value)


def match_gguf_bos(tokenizer: Any, add_bos: bool | None) -> None:
    """Make a tokenizer that transformers built from a GGUF add BOS exactly when the GGUF says so.

    transformers 5.24 honours `tokenizer.ggml.add_bos_token`; 5.17 ignores it, so the same GGUF
    tokenizes without BOS there: perplexity through transformers then disagrees with llama.cpp, and
    a GGUF converted to HF keeps a tokenizer without BOS. Setting `add_bos_token` rebuilds the fast
    tokenizer's post-processor (and is saved with it) in both releases.
    """
    if add_bos is None or not hasattr(tokenizer, "add_bos_token") or tokenizer.bos_token_id is None:
        return
    starts_with_bos = (tokenizer("a").get("input_ids") or [None])[0] == tokenizer.bos_token_id
    if starts_with_bos != add_bos:
        tokenizer.add_bos_token = add_bos
