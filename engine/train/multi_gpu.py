"""Data-parallel training: the run's worker relaunches the training under `accelerate launch`.

When more than one device is selected (`devices="0,1"`, or `"cpu:N"` for N gloo processes on
CPU), the detached worker does not train itself: it starts `accelerate launch` with one process
per device running `python -m engine.train.multi_gpu WORK_DIR`, and relays. Every rank runs the
same `runner.train`; the Trainer (through accelerate) wraps the model in DDP (or FSDP/DeepSpeed
when `distributed` says so) and averages gradients. Only rank 0 reports: it appends its events
to `WORK_DIR/ddp/events.jsonl`, which the worker tails into the run's own events, and writes
`result.json` at the end. Every rank keeps its own status file (engine.train.rank_status: node,
step, memory, heartbeat), which gives the run its per-node rows. Stop: the worker touches
`ddp/cancel`; every rank checks it at each step and the ranks agree by an all-reduce, so they
all save and stop at the same step (a rank that stops alone would leave the others hanging in
the next collective). The same ranks run on every node of a multi-node run (engine.train.multi_node,
engine.train.slurm_job).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from engine.atomic import write_json
from engine.child_process import die_with_parent
from engine.events import is_terminal, read_events
from engine.jobs import JobContext, JobError
from engine.paths import engine_root
from engine.ports import free_port
from engine.train import rank_status
from engine.train.accelerate_launch import Machines, launch_args
from engine.train.rank_status import RankReporter
from engine.train.runner import train
from engine.train.spec import TrainSpec


def launch_command(spec: TrainSpec, work_dir: Path) -> list[str]:
    """`accelerate launch` for all of this run's processes on this machine."""
    args = launch_args(spec, work_dir, per_machine=spec.processes(), machines=Machines(main_port=str(free_port())))
    return [sys.executable, "-m", "accelerate.commands.launch", *args]


def prepare(spec: TrainSpec, work_dir: Path) -> Path:
    """The `ddp/` folder every rank reads its spec from, emptied of an earlier launch's files."""
    ddp = work_dir / "ddp"
    ddp.mkdir(parents=True, exist_ok=True)
    for name in ("events.jsonl", "result.json", "cancel", NODE_SPEC):
        (ddp / name).unlink(missing_ok=True)
    (ddp / "events.jsonl").touch()
    rank_status.clear(work_dir)
    write_json(ddp / "spec.json", spec.to_dict())
    return ddp


NODE_SPEC = "node-spec.json"  # the spec SSH nodes' ranks train with when --sync-dir moved its paths


def rank_spec(ddp: Path) -> tuple[TrainSpec, bool]:
    """The spec this rank trains with, and whether it is the nodes' own (paths of --sync copies)."""
    own = ddp / NODE_SPEC
    on_node = bool(os.environ.get(rank_status.NODE_ENV)) and own.exists()
    text = (own if on_node else ddp / "spec.json").read_text(encoding="utf-8")
    return TrainSpec.from_dict(json.loads(text)), on_node


def rank_environment(spec: TrainSpec) -> dict[str, str]:
    """What every rank needs in its environment besides accelerate's own variables."""
    env = {"PYTHONPATH": engine_root() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if spec.device_list():
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in spec.device_list())
    return env


def backend_name(spec: TrainSpec) -> str:
    return f"{spec.distributed} over cpu/gloo" if spec.on_cpu() else spec.distributed


def run_distributed(spec: TrainSpec, work_dir: Path, ctx: JobContext) -> dict[str, Any]:
    """Run the training in `spec.processes()` processes and relay rank 0's events to `ctx`."""
    ddp = prepare(spec, work_dir)
    env = {**os.environ, **rank_environment(spec)}
    cmd = launch_command(spec, work_dir)
    ctx.log(f"launching {spec.processes()} training processes: accelerate launch ({backend_name(spec)})")
    # the launcher dies with this worker (engine/child_process.py says why a preexec_fn is safe here)
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent())  # noqa: PLW1509
    offset = 0
    try:
        while True:
            offset = relay(ddp / "events.jsonl", offset, ctx)
            if ctx.cancelled and not (ddp / "cancel").exists():
                (ddp / "cancel").touch()
            if proc.poll() is not None:
                relay(ddp / "events.jsonl", offset, ctx)
                break
            time.sleep(0.2)
    except BaseException:
        proc.terminate()
        raise
    summary = read_result(ddp, f"the {spec.processes()} training processes ended (exit code {proc.returncode})")
    summary["processes"] = spec.processes()
    return summary


def read_result(ddp: Path, ended: str) -> dict[str, Any]:
    """Rank 0's result: its summary, or its failure as a JobError (`ended` says what stopped)."""
    try:
        result = json.loads((ddp / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise JobError(f"{ended} without a result; see the run's log") from None
    if not result.get("ok"):
        raise JobError(result.get("message") or "distributed training failed")
    return dict(result.get("summary") or {})


def relay(path: Path, offset: int, ctx: JobContext) -> int:
    """Pass rank 0's new events on to this run (its end is the worker's to write, not rank 0's)."""
    events, offset = read_events(path, offset)
    for event in events:
        if not is_terminal(event):
            ctx.emit(event)
    return offset


class _FileSink:
    def __init__(self, path: Path | None) -> None:
        self._handle = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - lives as long as the rank

    def __call__(self, event: Any) -> None:
        if self._handle is not None:
            self._handle.write(json.dumps(event.to_dict(), default=str) + "\n")
            self._handle.flush()


def child_main(work_dir: str) -> int:
    """One rank (started by accelerate launch)."""
    work = Path(work_dir)
    ddp = work / "ddp"
    rank = int(os.environ.get("RANK", "0"))
    spec, copies = rank_spec(ddp)
    if copies and os.environ.get("LOCAL_RANK", "0") == "0":  # into the node's log (ddp/node-NAME.log)
        print(f"{os.environ[rank_status.NODE_ENV]}: training on the --sync copies: model {spec.model}, "
              f"data {spec.dataset}", flush=True)
    ctx = JobContext(_FileSink(ddp / "events.jsonl" if rank == 0 else None))
    cancel_file = ddp / "cancel"
    reporter = RankReporter(work).start()

    def should_cancel() -> bool:
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1.0 if cancel_file.exists() else 0.0])
        if dist.is_available() and dist.is_initialized():
            if dist.get_backend() == "nccl":
                flag = flag.cuda()
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)

    try:
        # one process in all (a one-node SLURM job) trains as a plain process: no process group
        several = int(os.environ.get("WORLD_SIZE", "1")) > 1
        summary = train(spec, work, ctx, should_cancel=should_cancel, distributed=several, on_step=reporter.at_step)
        result: dict[str, Any] = {"ok": True, "summary": summary}
    except JobError as exc:
        result = {"ok": False, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported through result.json, traceback to the log
        traceback.print_exc()
        result = {"ok": False, "message": f"{type(exc).__name__}: {exc}"}
    reporter.finish("done" if result["ok"] else "error", result.get("message", ""))
    ctx.flush()
    if rank == 0:
        write_json(ddp / "result.json", result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
