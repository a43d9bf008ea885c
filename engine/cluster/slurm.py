"""SLURM through its own commands: `sbatch --parsable` submits, `squeue` then `sacct` (then
`scontrol show job` where accounting is off) tell a job's state, `scancel` stops it.

How a SLURM job state becomes a run status (the run's status line shows the SLURM state too):

| SLURM state                                   | run status | detail shown                         |
|-----------------------------------------------|------------|--------------------------------------|
| PENDING, REQUEUED, REQUEUE_HOLD, REQUEUE_FED, | pending    | SLURM's reason (Resources, Priority, |
| RESV_DEL_HOLD, CONFIGURING, SUSPENDED,        |            | JobHeldUser, ...)                    |
| STOPPED, RESIZING                             |            |                                      |
| RUNNING, COMPLETING, SIGNALING, STAGE_OUT     | running    | the nodes                            |
| COMPLETED                                     | succeeded  | failed if rank 0's result is missing |
|                                               |            | or says the training failed          |
| CANCELLED (scancel, by llmdeck or anyone)     | cancelled  |                                      |
| REVOKED (a federation ran it elsewhere)       | cancelled  |                                      |
| FAILED, BOOT_FAIL, LAUNCH_FAILED, SPECIAL_EXIT| failed     | the exit code                        |
| TIMEOUT, DEADLINE                             | failed     | "hit its time limit": resume it      |
| NODE_FAIL                                     | failed     | the nodes                            |
| OUT_OF_MEMORY                                 | failed     | "ran out of host memory"             |
| PREEMPTED (not requeued)                      | failed     | "preempted"                          |

`SLURM_CONF` (the environment variable SLURM's own commands read) points every command at a
cluster other than the default one, as it does for sbatch itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ACTIVE_PENDING = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING", "SUSPENDED",
                  "STOPPED", "RESIZING")
ACTIVE_RUNNING = ("RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT")
FAILED_STATES: dict[str, str] = {
    "FAILED": "the job failed",
    "BOOT_FAIL": "a node failed to boot",
    "LAUNCH_FAILED": "the job could not be launched",
    "SPECIAL_EXIT": "the job ended in a special state",
    "TIMEOUT": "the job hit its time limit (--time); resume it from its last checkpoint",
    "DEADLINE": "the job hit its deadline",
    "NODE_FAIL": "a node of the job failed",
    "OUT_OF_MEMORY": "the job ran out of host memory (its memory limit)",
    "PREEMPTED": "the job was preempted by another job",
}
_TIMEOUT_S = 60.0


class SlurmError(RuntimeError):
    """A SLURM command failed or is missing; the text is its own message."""


@dataclass(frozen=True)
class JobState:
    """What SLURM says about a job. `state` is the base state (CANCELLED, not "CANCELLED by 0")."""

    job_id: str
    state: str
    reason: str = ""
    exit_code: str = ""
    nodes: str = ""
    source: str = ""  # squeue, sacct or scontrol: which command answered

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_PENDING or self.state in ACTIVE_RUNNING


def run_status(job: JobState) -> tuple[str, str]:
    """(run status, one-line detail) for a SLURM job state: the table of the module docstring.
    COMPLETED gives "succeeded"; the caller downgrades it when rank 0's result says otherwise."""
    state, what = job.state, f"SLURM job {job.job_id} {job.state}"
    if state in ACTIVE_PENDING:
        reason = job.reason if job.reason not in ("", "None") else "waiting to be scheduled"
        return "pending", f"{what} ({reason})"
    if state in ACTIVE_RUNNING:
        return "running", f"{what} on {job.nodes}" if job.nodes else what
    if state == "COMPLETED":
        return "succeeded", what
    if state in ("CANCELLED", "REVOKED"):
        by = f" ({job.reason})" if job.reason and job.reason != "None" else ""
        return "cancelled", f"{what}{by}"
    why = FAILED_STATES.get(state, "the job ended in a state llmdeck does not know")
    if state == "NODE_FAIL" and job.nodes:
        why += f" ({job.nodes})"
    if job.exit_code and job.exit_code not in ("0:0", ""):
        why += f", exit code {job.exit_code}"
    return "failed", f"{what}: {why}"


def _run(argv: list[str], timeout: float = _TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"`{argv[0]}` is not installed here: run llmdeck on a SLURM login node")
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(argv[:2])}` gave no answer in {timeout:g} s (is slurmctld up?)") from None


def _message(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {done.returncode}"


def submit(script: Path) -> str:
    """`sbatch --parsable SCRIPT` -> the job id."""
    done = _run(["sbatch", "--parsable", str(script)])
    if done.returncode != 0:
        raise SlurmError(f"sbatch refused the job: {_message(done)}")
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch answered {done.stdout.strip()!r}, not a job id")
    return job_id


def query(job_id: str) -> JobState | None:
    """The job's state from squeue (queued and running jobs), else sacct (ended jobs, when
    accounting is on), else `scontrol show job` (ended jobs SLURM still remembers, MinJobAge).
    None: SLURM knows no such job."""
    done = _run(["squeue", "--noheader", "--jobs", job_id, "--format", "%T|%r|%N"])
    line = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    if line:
        state, reason, nodes = (line.split("|") + ["", ""])[:3]
        return JobState(job_id, _base(state), reason, "", nodes, "squeue")
    found = _from_sacct(job_id)
    return found if found is not None else _from_scontrol(job_id)


def _from_sacct(job_id: str) -> JobState | None:
    if shutil.which("sacct") is None:
        return None
    done = _run(["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", job_id,
                 "--format", "State,ExitCode,Reason,NodeList"])
    if done.returncode != 0:
        return None  # accounting disabled ("Slurm accounting storage is disabled") or unreachable
    for line in done.stdout.splitlines():
        parts = (line.split("|") + ["", "", ""])[:4]
        if parts[0].strip():
            return JobState(job_id, _base(parts[0]), parts[2], parts[1], parts[3], "sacct")
    return None


def _from_scontrol(job_id: str) -> JobState | None:
    done = _run(["scontrol", "--oneliner", "show", "job", job_id])
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return None
        raise SlurmError(f"scontrol show job {job_id}: {_message(done)}")
    fields = dict(re.findall(r"(\w+)=(\S*)", done.stdout))
    return JobState(job_id, _base(fields.get("JobState", "")), fields.get("Reason", ""), fields.get("ExitCode", ""),
                    fields.get("NodeList", ""), "scontrol")


def _base(state: str) -> str:
    """"CANCELLED by 0" -> CANCELLED; "CANCELLED+" -> CANCELLED."""
    return state.strip().split(" ")[0].rstrip("+").upper()


def cancel(job_id: str) -> None:
    """`scancel JOB`: SLURM signals every step (SIGTERM, then SIGKILL after KillWait)."""
    done = _run(["scancel", job_id])
    if done.returncode != 0 and "already completing or completed" not in done.stderr:
        raise SlurmError(f"scancel {job_id}: {_message(done)}")


def wait_known(job_id: str, timeout: float = 10.0) -> JobState | None:
    """The job's state, retried briefly: right after sbatch a busy controller may not list it."""
    deadline = time.monotonic() + timeout
    while True:
        found = query(job_id)
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
