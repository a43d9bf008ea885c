"""The detached training job (kind "train"): train in this process, or in one process per device.

A module of its own so that neither half imports the other: `runner` trains in this process,
`multi_gpu` starts one `runner.train` per device under `accelerate launch`, and this job, which
imports both, chooses. (When the choice lived in `runner`, runner and multi_gpu imported each
other.) Several machines are two more branches: nodes over SSH (`multi_node`) and a SLURM job
(`slurm_job`), each running the same ranks as `multi_gpu` on every node.
"""

from __future__ import annotations

import os
from typing import Any

from engine.jobs import JobContext, JobError
from engine.train.multi_gpu import run_distributed
from engine.train.multi_node import run_on_nodes
from engine.train.runner import train, work_dir_for
from engine.train.slurm_job import run_on_slurm
from engine.train.spec import SpecError, TrainSpec


def run(spec_dict: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Validate the spec, then train on one device here or on several in their own processes."""
    try:
        spec = TrainSpec.from_dict(spec_dict).validate()
    except SpecError as exc:
        raise JobError(str(exc)) from None
    work_dir = work_dir_for(spec)
    mode = spec.cluster_spec().mode
    if mode == "ssh":
        return run_on_nodes(spec, work_dir, ctx)
    if mode == "slurm":
        return run_on_slurm(spec, work_dir, ctx)
    if spec.processes() > 1:
        return run_distributed(spec, work_dir, ctx)
    if spec.device_list():
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in spec.device_list())
    return train(spec, work_dir, ctx)
