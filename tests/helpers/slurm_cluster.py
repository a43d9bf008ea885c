"""A real one-node SLURM cluster for tests: munged with a generated key, slurmctld and slurmd on
127.0.0.1 with a generated slurm.conf, every file (state, spool, logs, sockets) in the test's own
folder and every port a free one. As people run SLURM in a container for CI: no cgroups
(proctrack/pgid, task/none), no accounting daemon (so `sacct` is off and ended jobs are read with
`scontrol show job`), the node named `llmdeck-node` whatever the host is called.

Commands find the cluster through SLURM_CONF, which `env()` returns and the test sets for the
run's worker. Starting fails with the daemons' own log lines when the cluster cannot come up.
Needs root (slurmd runs jobs as their user and must be able to switch to it).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

from engine.ports import free_port
from tests.helpers.requirements import apt, require_tool, unavailable

NODE = "llmdeck-node"


class LocalSlurm:
    def __init__(self, folder: Path, cpus: int = 2) -> None:
        self.folder = Path(folder)
        self.cpus = cpus
        self.procs: list[subprocess.Popen[bytes]] = []
        self.conf = self.folder / "slurm.conf"

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def start(self) -> LocalSlurm:
        munged = require_tool("munged", install=apt("munge"))
        slurmctld = require_tool("slurmctld", install=apt("slurm-wlm"))
        slurmd = require_tool("slurmd", install=apt("slurm-wlm"))
        for tool in ("sbatch", "squeue", "scontrol", "scancel", "srun"):
            require_tool(tool, install=apt("slurm-wlm"))
        if os.geteuid() != 0:
            unavailable("the test SLURM cluster needs root (slurmd switches to each job's user)")
        d = self.folder
        for sub in ("state", "spool", "munge"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755)
        key = d / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        os.chmod(key, 0o400)
        socket_path = d / "munge" / "munge.socket"
        self._spawn("munged", [munged, "--foreground", "--force", f"--key-file={key}", f"--socket={socket_path}",
                               f"--pid-file={d / 'munge' / 'munged.pid'}", f"--log-file={d / 'munge' / 'munged.log'}",
                               f"--seed-file={d / 'munge' / 'munged.seed'}"])
        self._wait(lambda: socket_path.exists(), "munged made no socket")
        ctld_port, slurmd_port = free_port(), free_port()
        self.conf.write_text("\n".join([
            "ClusterName=llmdeck-test",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={socket_path}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={d / 'state'}",
            f"SlurmdSpoolDir={d / 'spool'}",
            f"SlurmctldPidFile={d / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'slurmd.pid'}",
            f"SlurmctldLogFile={d / 'slurmctld.log'}",
            f"SlurmdLogFile={d / 'slurmd.log'}",
            "ProctrackType=proctrack/pgid",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            "KillWait=5",
            "MinJobAge=600",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={socket.gethostname()} CPUs={self.cpus} "
            "RealMemory=1000 State=UNKNOWN",
            f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        env = {**os.environ, **self.env()}
        self._spawn("slurmctld", [slurmctld, "-D", "-f", str(self.conf)], env)
        self._spawn("slurmd", [slurmd, "-D", "-f", str(self.conf), "-N", NODE], env)
        self._wait(self.node_idle, "the node never became idle in sinfo", timeout=60)
        return self

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.folder / f"{name}.out", "ab")  # noqa: SIM115 - the daemon's stderr while it runs
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True))
        log.close()

    def node_idle(self) -> bool:
        done = subprocess.run(["sinfo", "--noheader", "--format", "%T"], capture_output=True, text=True,
                              env={**os.environ, **self.env()}, timeout=30)
        return done.returncode == 0 and done.stdout.strip() == "idle"

    def _wait(self, ready, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                                 for p in sorted(self.folder.glob("*.out")) + sorted(self.folder.glob("*.log")))
                self.stop()
                raise RuntimeError(f"the test SLURM cluster did not start: {what}\n{logs}")
            time.sleep(0.3)

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), capture_output=True, text=True, env={**os.environ, **self.env()}, timeout=60)

    def stop(self) -> None:
        """Cancel every job, then stop the daemons (slurmd, slurmctld, munged) and their children."""
        if any(p.poll() is None for p in self.procs):
            self.run("scancel", "--full", "--user", "root")
            time.sleep(1)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
        self.procs.clear()
