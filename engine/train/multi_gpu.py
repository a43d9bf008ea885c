"""Data-parallel training: the run's worker relaunches the training under `accelerate launch`.

When more than one device is selected (`devices="0,1"`, or `"cpu:N"` for N gloo processes on
CPU), the detached worker does not train itself: it starts `accelerate launch` with one process
per device running `python -m engine.train.multi_gpu WORK_DIR`, and relays. Every rank runs the
same `runner.train`; the Trainer (through accelerate) wraps the model in DDP (or FSDP/DeepSpeed
when `distributed` says so) and averages gradients. Only rank 0 reports: it appends its events
to `WORK_DIR/ddp/events.jsonl`, which the worker tails into the run's own events, and writes
`result.json` at the end. Stop: the worker touches `ddp/cancel`; every rank checks it at each
step and the ranks agree by an all-reduce, so they all save and stop at the same step (a rank
that stops alone would leave the others hanging in the next collective).
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
from engine.ports import free_port
from engine.train.runner import train
from engine.train.spec import TrainSpec


def launch_command(spec: TrainSpec, work_dir: Path) -> list[str]:
    n = spec.processes()
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n), "--num_machines", "1",
           "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no"]
    if spec.devices.strip().startswith("cpu") or spec.cpu:
        # accelerate's --cpu means its single-process launcher; torchrun (--multi_gpu) with the
        # Trainer's use_cpu gives N gloo processes
        cmd.append("--multi_gpu")
    elif spec.distributed == "fsdp":
        cmd += ["--use_fsdp"]
    elif spec.distributed == "deepspeed":
        cmd += ["--use_deepspeed", "--zero_stage", "2"]
    else:
        cmd.append("--multi_gpu")
    return cmd + ["-m", "engine.train.multi_gpu", str(work_dir)]


def run_distributed(spec: TrainSpec, work_dir: Path, ctx: JobContext) -> dict[str, Any]:
    """Run the training in `spec.processes()` processes and relay rank 0's events to `ctx`."""
    ddp = work_dir / "ddp"
    ddp.mkdir(parents=True, exist_ok=True)
    for name in ("events.jsonl", "result.json", "cancel"):
        (ddp / name).unlink(missing_ok=True)
    (ddp / "events.jsonl").touch()
    write_json(ddp / "spec.json", spec.to_dict())
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    if spec.device_list():
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in spec.device_list())
    cmd = launch_command(spec, work_dir)
    backend = "cpu/gloo" if spec.devices.strip().startswith("cpu") or spec.cpu else spec.distributed
    ctx.log(f"launching {spec.processes()} training processes: accelerate launch ({backend})")
    # the launcher dies with this worker (engine/child_process.py says why a preexec_fn is safe here)
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent())  # noqa: PLW1509
    offset = 0
    try:
        while True:
            offset = _relay(ddp / "events.jsonl", offset, ctx)
            if ctx.cancelled and not (ddp / "cancel").exists():
                (ddp / "cancel").touch()
            if proc.poll() is not None:
                _relay(ddp / "events.jsonl", offset, ctx)
                break
            time.sleep(0.2)
    except BaseException:
        proc.terminate()
        raise
    try:
        result = json.loads((ddp / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise JobError(
            f"the {spec.processes()} training processes ended (exit code {proc.returncode}) without a result; "
            "see the run's log"
        ) from None
    if not result.get("ok"):
        raise JobError(result.get("message") or "distributed training failed")
    summary = dict(result.get("summary") or {})
    summary["processes"] = spec.processes()
    return summary


def _relay(path: Path, offset: int, ctx: JobContext) -> int:
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
    spec = TrainSpec.from_dict(json.loads((ddp / "spec.json").read_text(encoding="utf-8")))
    ctx = JobContext(_FileSink(ddp / "events.jsonl" if rank == 0 else None))
    cancel_file = ddp / "cancel"

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
        summary = train(spec, work, ctx, should_cancel=should_cancel, distributed=True)
        result: dict[str, Any] = {"ok": True, "summary": summary}
    except JobError as exc:
        result = {"ok": False, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported through result.json, traceback to the log
        traceback.print_exc()
        result = {"ok": False, "message": f"{type(exc).__name__}: {exc}"}
    ctx.flush()
    if rank == 0:
        write_json(ddp / "result.json", result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
