"""FSDP2 for CPU processes (gloo), which accelerate launches but never switches on by itself.

Why this exists: `accelerate launch --use_fsdp --fsdp_version 2` sets ACCELERATE_USE_FSDP and the
FSDP_* variables, and torch's FSDP2 (`fully_shard`) runs on CPU tensors over gloo. But
accelerate 1.15's `AcceleratorState.__init__` (accelerate/state.py, the `elif
self.distributed_type in [MULTI_GPU, MULTI_MLU, ...]` branch) turns `distributed_type` into
FSDP and keeps the `fsdp_plugin` only for the GPU-like distributed types; MULTI_CPU is not in
that list, so a CPU launch silently trains as DDP. Written for accelerate 1.15.0 and
transformers 5.24 (torch 2.13): after the Trainer has made its Accelerator, `switch_on` sets the
shared state's `distributed_type` to FSDP and gives it the plugin accelerate would have kept,
built from the same FSDP_* variables (the way `Accelerator.__init__` builds it). From then on
accelerate's and the Trainer's own FSDP2 code runs unchanged: `fully_shard` per decoder layer in
`prepare`, full state dicts for checkpoints, `load_fsdp_model` on resume.

Nothing else is patched, and only when the launch asked for FSDP and the process is a CPU rank of
several. tests/engine/test_cluster_parts.py::
test_accelerate_keeps_cpu_processes_off_fsdp_and_cpu_fsdp_switches_it_on
fails the day accelerate switches CPU processes to FSDP itself (then this module can go).
"""

from __future__ import annotations

import os
from typing import Any


def wanted(accelerator: Any) -> bool:
    """The launch asked for FSDP, and accelerate left this CPU process of several on MULTI_CPU."""
    from accelerate.utils import DistributedType

    asked = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    return asked and accelerator.state.distributed_type == DistributedType.MULTI_CPU


def switch_on(accelerator: Any) -> bool:
    """Make this CPU rank's accelerator shard with FSDP (version from FSDP_VERSION, 2 from
    llmdeck's launch). Returns whether it switched; call before anything is prepared."""
    if not wanted(accelerator):
        return False
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables accelerate launch set
    if plugin.fsdp_version != 2:
        raise ValueError("FSDP on CPU processes needs FSDP version 2 (torch's fully_shard)")
    state = accelerator.state
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    # as AcceleratorState.__init__ does for GPUs: every later AcceleratorState() copies PartialState's
    # values over its own, so both must say FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    return True


class SwitchOnCpu:
    """Mixin for a transformers Trainer subclass (llmdeck's SFT Trainer, and TRL's DPO/ORPO/KTO/GRPO
    trainers in engine/train/methods.py): CPU ranks of an FSDP launch shard with FSDP2. It runs
    where the Trainer makes its Accelerator, before anything is prepared, so TRL's own FSDP code
    (`prepare_fsdp` of DPO's and KTO's reference model) sees `is_fsdp_enabled` and runs unchanged."""

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()  # type: ignore[misc]
        if switch_on(self.accelerator):  # type: ignore[attr-defined]
            self.is_fsdp_enabled = True


def full_state_dict(trainer: Any) -> dict[str, Any] | None:
    """The whole model's weights gathered from every rank's shard (a collective: every rank calls
    it), or None when the model is not sharded. Saving must not gather on rank 0 alone: the other
    ranks would not join the all-gather and rank 0 would wait for ever."""
    if not getattr(trainer, "is_fsdp_enabled", False):
        return None
    return trainer.accelerator.get_state_dict(trainer.model)


def shard_share(model: Any) -> tuple[int, int] | None:
    """(values this rank holds, values of the whole model) when FSDP2 sharded the weights (they
    are DTensors), None otherwise: the proof, in the run's log, that a run really sharded."""
    from torch.distributed.tensor import DTensor

    params = list(model.parameters())
    if not params or not all(isinstance(p, DTensor) for p in params):
        return None
    return sum(p.to_local().numel() for p in params), sum(p.numel() for p in params)
