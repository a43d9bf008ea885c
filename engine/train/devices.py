"""Where each training process puts a model that must be placed when it is loaded.

A bitsandbytes-quantized model (QLoRA) cannot be moved after loading: its weights are quantized
on their way to the GPU, so `from_pretrained` must be told the device (`device_map`). A
data-parallel run starts one process per GPU and every process sees all the run's GPUs
(CUDA_VISIBLE_DEVICES lists them all, see engine/train/multi_gpu.py), so the device is this
process's local rank: the variable LOCAL_RANK that `accelerate launch` and torchrun set for every
rank, the same number accelerate's `PartialState().local_process_index` reports. A fixed
`{"": 0}` put every rank's copy of the model on the first GPU. Reading the variable (instead of
asking accelerate) keeps this free of torch and testable without GPUs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def local_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's index among the training processes on this machine (0 when alone)."""
    env = os.environ if environ is None else environ
    raw = env.get("LOCAL_RANK", "").strip()
    if not raw:
        return 0
    try:
        rank = int(raw)
    except ValueError:
        raise ValueError(f"LOCAL_RANK must be a whole number, got {raw!r}") from None
    if rank < 0:
        raise ValueError(f"LOCAL_RANK must not be negative, got {rank}")
    return rank


def quantized_device_map(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """`device_map` for loading a quantized model in this process: all of it on this rank's GPU."""
    return {"": local_rank(environ)}
