"""The `accelerate launch` command line for one machine of a run (one machine, SSH nodes, SLURM).

One builder for the three launchers, so a run started over SSH, from an sbatch script or on one
box differs only in the machine figures: `--num_machines`, `--machine_rank`, where rank 0's
rendezvous is (`--main_process_ip/port`, a c10d rendezvous) and the sharding flags that
`--distributed` names. The rank program is always `python -m engine.train.multi_gpu WORK_DIR`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.train.spec import TrainSpec


@dataclass(frozen=True)
class Machines:
    """Where this launch sits among the run's machines. Values are strings so that an sbatch
    script can pass shell variables ("${NODE_RANK}") in their place."""

    count: int = 1
    rank: str = "0"
    main_ip: str = ""
    main_port: str = "0"
    is_host: str = "1"  # the c10d store lives on rank 0's machine: say so instead of guessing


def sharding_flags(spec: TrainSpec, machines: int, processes: int) -> list[str]:
    """accelerate's flags for spec.distributed (CPU processes: gloo; FSDP is switched on in each
    rank by engine/train/cpu_fsdp.py, since accelerate keeps CPU processes on DDP)."""
    if processes == 1:
        return []  # one process in all (a one-node SLURM job): accelerate's plain launcher
    if spec.distributed == "ddp" or (spec.on_cpu() and spec.distributed != "fsdp"):
        # --multi_gpu is accelerate's torchrun path; with the Trainer's use_cpu it gives gloo processes
        return ["--multi_gpu"]
    if spec.distributed == "fsdp":
        # FSDP2; layers to wrap come from the model's _no_split_modules; one full state dict to save
        return ["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                "--fsdp_state_dict_type", "FULL_STATE_DICT", "--fsdp_reshard_after_forward", "true"]
    stage = "3" if spec.distributed == "zero3" else "2"
    flags = ["--use_deepspeed", "--zero_stage", stage]
    if stage == "3":
        flags += ["--zero3_init_flag", "false", "--zero3_save_16bit_model", "true"]
    if machines > 1:
        flags += ["--deepspeed_multinode_launcher", "standard"]  # torchrun per node, not pdsh
    return flags


def launch_args(spec: TrainSpec, work_dir: Path, *, per_machine: int, machines: Machines = Machines()) -> list[str]:
    """Arguments after `python -m accelerate.commands.launch` for this machine."""
    args = ["--num_processes", str(per_machine * machines.count), "--num_machines", str(machines.count),
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", machines.main_port]
    if machines.count > 1:
        args += ["--machine_rank", machines.rank, "--main_process_ip", machines.main_ip,
                 "--rdzv_backend", "c10d", "--rdzv_conf", f"is_host={machines.is_host}",
                 "--max_restarts", "0"]
    args += sharding_flags(spec, machines.count, per_machine * machines.count)
    return args + ["-m", "engine.train.multi_gpu", str(work_dir)]
