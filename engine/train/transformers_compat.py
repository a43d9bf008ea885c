"""Differences between the transformers releases llmdeck supports (pyproject.toml's floor and up).

Why a module: the floor is the oldest release the suite has run against (5.17, the GPU machine's
image), and newer releases rename things. Each difference is detected from the installed library
itself, never from its version number, so an in-between or patched release still works.
"""

from __future__ import annotations

from collections.abc import Collection
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
