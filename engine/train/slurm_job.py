"""Training as a SLURM job: an sbatch script that runs the same launch under srun, submitted and
followed from the login node.

The run's worker writes `slurm.sbatch` into the run folder (kept there: read it, resubmit it with
`sbatch slurm.sbatch`), submits it with `sbatch --parsable`, and records the job id in the run
(`JobContext.scheduled`), so `llmdeck runs cancel` calls `scancel` and, if this worker is gone,
the run's status is asked of SLURM (engine.cluster.scheduler) instead of being declared lost.
The script starts one srun task per node; each runs `accelerate launch` with its node rank from
SLURM_NODEID and the rendezvous on the job's first node (`scontrol show hostnames
$SLURM_JOB_NODELIST | head -n 1`), with the ranks of engine.train.multi_gpu. The run folder must
be on storage the nodes share (it is where rank 0 writes its events, the checkpoints and its
result); this worker relays rank 0's events into the run while it follows the job.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from engine.cluster import slurm
from engine.cluster.spec import ClusterSpec
from engine.jobs import JobCancelled, JobContext, JobError
from engine.paths import engine_root
from engine.train.accelerate_launch import Machines, launch_args
from engine.train.multi_gpu import backend_name, prepare, read_result, relay
from engine.train.rank_status import NODE_ENV
from engine.train.spec import TrainSpec

POLL_ENV = "LLMDECK_SLURM_POLL_S"  # how often the worker asks squeue (default 10 s; tests use less)
AFTER_CANCEL_S = 120.0  # after a cancel, the ranks get this long to save and stop before scancel
SCRIPT_NAME = "slurm.sbatch"


def per_node(spec: TrainSpec, cluster: ClusterSpec) -> int:
    return cluster.gpus_per_node or spec.processes()


def sbatch_script(spec: TrainSpec, work_dir: Path, run_name: str) -> str:
    """The whole sbatch script for this run (every path absolute: it runs on other machines)."""
    cluster = spec.cluster_spec()
    nodes, procs = cluster.slurm_nodes(), per_node(spec, cluster)
    ddp = work_dir / "ddp"
    header = [f"--job-name=llmdeck-{run_name}", f"--nodes={nodes}", "--ntasks-per-node=1",
              f"--output={ddp / 'slurm-%j.log'}", f"--chdir={work_dir.parent}"]
    if spec.on_cpu():
        header.append(f"--cpus-per-task={procs}")
    elif cluster.gpus_per_node or spec.device_list():
        header.append(f"--gpus-per-node={procs}")
    header += [f"--{name}={value}" for name, value in (("partition", cluster.partition), ("time", cluster.time),
                                                          ("account", cluster.account)) if value]
    header += [line.strip() for line in cluster.sbatch]
    python = cluster.remote_python or sys.executable
    machines = Machines(count=nodes, rank="${SLURM_NODEID}", main_ip="${MAIN_IP}", main_port="${MAIN_PORT}",
                        is_host="${IS_HOST}")
    launch = [python, "-m", "accelerate.commands.launch", *launch_args(spec, work_dir, per_machine=procs,
                                                                      machines=machines)]
    lines = ["#!/bin/bash", *(f"#SBATCH {h}" for h in header), "",
             f"# Written by llmdeck for run {run_name} ({spec.method} of {Path(spec.model).name}, "
             f"{nodes} node(s) x {procs} process(es), {backend_name(spec)}).",
             f"# Resubmit it as it is with: sbatch {work_dir.parent / SCRIPT_NAME}",
             "set -euo pipefail",
             f"export PYTHONPATH={shlex.quote(engine_root())}${{PYTHONPATH:+:$PYTHONPATH}}",
             "export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1"]
    if spec.device_list() and not cluster.gpus_per_node:
        lines.append(f"export CUDA_VISIBLE_DEVICES={','.join(str(d) for d in spec.device_list())}")
    lines += [
        "# rank 0's rendezvous: the job's first node, on a port derived from the job id",
        'export MAIN_IP="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
        "export MAIN_PORT=$((20000 + SLURM_JOB_ID % 20000))",
        "# what each node runs (one srun task per node; SLURM_NODEID is its node rank)",
        "read -r -d '' NODE_LAUNCH <<'LAUNCH' || true",
        f'export {NODE_ENV}="${{SLURMD_NODENAME:-$(hostname -s)}}"',
        'IS_HOST=0; if [ "$SLURM_NODEID" = 0 ]; then IS_HOST=1; fi',
        "exec " + _shell_join(launch),
        "LAUNCH",
        'srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c "$NODE_LAUNCH"',
        "",
    ]
    return "\n".join(lines)


def _shell_join(argv: list[str]) -> str:
    """shlex.join, but "${VAR}" inside a word stays expandable (double quotes, not single)."""
    return " ".join(f'"{a}"' if "${" in a and not any(c in a for c in '"\\`') else shlex.quote(a) for a in argv)


def run_on_slurm(spec: TrainSpec, work_dir: Path, ctx: JobContext) -> dict[str, Any]:
    """Write and submit the sbatch script, follow the job, relay rank 0's events."""
    cluster = spec.cluster_spec()
    ddp = prepare(spec, work_dir)
    run_dir = work_dir.parent
    script = run_dir / SCRIPT_NAME
    script.write_text(sbatch_script(spec, work_dir, ctx.job_id or run_dir.name), encoding="utf-8")
    if ctx.cancelled:
        return {}  # stopped before submitting: the script stays, nothing was queued
    try:
        job_id = slurm.submit(script)
    except slurm.SlurmError as exc:
        raise JobError(f"{exc} (the script is {script})") from None
    record = {"type": "slurm", "job_id": job_id, "script": str(script), "result_file": str(ddp / "result.json")}
    ctx.scheduled(record, "pending", f"SLURM job {job_id} submitted")
    ctx.log(f"submitted SLURM job {job_id} ({cluster.slurm_nodes()} node(s) x {per_node(spec, cluster)} "
            f"process(es), {backend_name(spec)}); script {script}")
    state = _follow(job_id, record, ddp, ctx)
    return _outcome(state, ddp, ctx, cluster)


def _follow(job_id: str, record: dict[str, Any], ddp: Path, ctx: JobContext) -> slurm.JobState:
    poll = float(os.environ.get(POLL_ENV, "10"))
    offset, last_seen, next_ask = 0, ("pending", ""), 0.0
    cancelled_at: float | None = None
    state: slurm.JobState | None = None
    while True:
        offset = relay(ddp / "events.jsonl", offset, ctx)
        now = time.monotonic()
        if ctx.cancelled and cancelled_at is None:
            cancelled_at = now
            (ddp / "cancel").touch()  # running ranks save and stop together at their next step
            if state is None or state.state in slurm.ACTIVE_PENDING:
                _scancel(job_id, ctx)  # nothing trains yet: nothing to save
        if cancelled_at is not None and now - cancelled_at > AFTER_CANCEL_S and state and state.active:
            _scancel(job_id, ctx)
            cancelled_at = now  # ask again later if SLURM is slow to end it
        if now >= next_ask:
            next_ask = now + poll
            state = _ask(job_id, ctx) or state
            if state is not None:
                seen = slurm.run_status(state)
                if state.active and seen != last_seen:
                    last_seen = seen
                    ctx.scheduled(record, *seen)
                    ctx.log(seen[1])
                if not state.active:
                    relay(ddp / "events.jsonl", offset, ctx)
                    return state
        time.sleep(min(0.5, poll))


def _ask(job_id: str, ctx: JobContext) -> slurm.JobState | None:
    """The job's state now; None (after a warning) when SLURM cannot be asked this time."""
    try:
        state = slurm.wait_known(job_id)  # a busy controller may not list a job it just accepted
    except slurm.SlurmError as exc:
        ctx.log(f"cannot ask SLURM about job {job_id}: {exc}", level="warning")
        return None
    if state is None:
        raise JobError(f"SLURM no longer knows job {job_id} (it ended long ago and job accounting is off)")
    return state


def _scancel(job_id: str, ctx: JobContext) -> None:
    try:
        slurm.cancel(job_id)
        ctx.log(f"scancel {job_id}")
    except slurm.SlurmError as exc:
        ctx.log(str(exc), level="warning")


def _outcome(state: slurm.JobState, ddp: Path, ctx: JobContext, cluster: ClusterSpec) -> dict[str, Any]:
    status, detail = slurm.run_status(state)
    if status == "cancelled":
        if ctx.cancelled:
            return {}  # execute() records the cancel this run asked for
        raise JobCancelled(detail)
    if status == "succeeded":
        if ctx.cancelled and not (ddp / "result.json").exists():
            return {}
        summary = read_result(ddp, detail)
        summary.update(slurm_job=state.job_id, nodes=cluster.slurm_nodes())
        return summary
    message = detail
    try:
        read_result(ddp, detail)
    except JobError as exc:
        if "without a result" not in str(exc):
            message = f"{detail}; {exc}"  # rank 0's own words say why
    raise JobError(f"{message} (its output: {ddp / ('slurm-' + state.job_id + '.log')})")
