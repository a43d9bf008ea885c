"""Where a training run's processes live when one machine is not enough: the multi-node part of
a run spec (`TrainSpec.cluster`), kept apart so single-machine runs carry none of it.

Two ways, one of them per run:
- over SSH: `nodes="gpu1,gpu2"` or `hostfile=...`; one `accelerate launch` per node, started
  over ssh from the machine that starts the run;
- SLURM: `slurm=True` with `nodes="2"` (a count), partition, GPUs per node, time, account and
  extra `#SBATCH` lines; an sbatch script runs the same launch under srun.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.cluster.hosts import HostsError, Node, parse_nodes, read_hostfile

_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^\d+-\d+$")


@dataclass
class ClusterSpec:
    nodes: str = ""  # SSH: "host1,host2[,...]" (rank order); SLURM: how many nodes ("2")
    hostfile: str = ""  # SSH: a DeepSpeed-style hostfile (`host slots=N` per line)
    ssh_config: str = ""  # SSH: an ssh_config file ("" = LLMDECK_SSH_CONFIG, else ~/.ssh/config)
    sync: bool = False  # SSH: copy model/data/template to nodes that cannot read them (rsync or scp)
    sync_dir: str = ""  # SSH + sync: the nodes' folder for the copies ("" = the same paths as here)
    main_ip: str = ""  # the address other nodes reach rank 0 at ("" = node 0's HostName from `ssh -G`)
    main_port: int = 0  # rendezvous port on node 0 (0 = one that node 0 reports free)
    remote_python: str = ""  # the Python on the nodes ("" = the same path as here)
    slurm: bool = False  # submit to SLURM with sbatch instead of starting over SSH
    partition: str = ""
    gpus_per_node: int = 0  # SLURM: GPUs (= processes) per node; 0 = from --devices
    time: str = ""  # SLURM --time (e.g. 2:00:00 or 1-00:00:00)
    account: str = ""
    sbatch: list[str] = field(default_factory=list)  # extra `#SBATCH` lines, e.g. "--qos=high"

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ClusterSpec:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown multi-node option(s): {', '.join(unknown)}")
        if isinstance(data.get("sbatch"), str):
            data["sbatch"] = [data["sbatch"]]
        if "main_port" in data:
            data["main_port"] = int(data["main_port"] or 0)
        if "gpus_per_node" in data:
            data["gpus_per_node"] = int(data["gpus_per_node"] or 0)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Only what differs from the defaults: a single-machine run's spec stays as it was."""
        default = ClusterSpec()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    @property
    def mode(self) -> str:
        """"slurm", "ssh" or "" (this machine only)."""
        if self.slurm:
            return "slurm"
        return "ssh" if (self.nodes.strip() or self.hostfile.strip()) else ""

    def node_list(self) -> list[Node]:
        """The SSH nodes in rank order (raises HostsError with the place that is wrong)."""
        if self.hostfile:
            return read_hostfile(Path(self.hostfile))
        return parse_nodes(self.nodes)

    def slurm_nodes(self) -> int:
        text = self.nodes.strip() or "1"
        if not text.isdecimal() or int(text) < 1:
            raise ValueError(text)
        return int(text)

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.slurm:
            if self.hostfile:
                out.append("hostfile: SLURM picks the nodes; use --nodes N (a count) with --slurm")
            try:
                self.slurm_nodes()
            except ValueError:
                out.append(f"nodes: with --slurm, --nodes is how many nodes (a number), not {self.nodes!r}")
            if self.time and not _TIME.match(self.time):
                out.append(f"time: {self.time!r} is not a SLURM time (minutes, H:MM:SS or D-HH:MM:SS)")
            if self.gpus_per_node < 0:
                out.append("gpus_per_node: must be 0 (from --devices) or more")
            out += [f"sbatch: {line!r} is not an sbatch option (it must start with -)"
                    for line in self.sbatch if not line.strip().startswith("-")]
            out += [f"{name}: only for SSH nodes, not with --slurm"
                    for name in ("ssh_config", "sync", "sync_dir") if getattr(self, name)]
        else:
            if self.nodes and self.hostfile:
                out.append("nodes: give --nodes or --hostfile, not both")
            elif self.mode == "ssh":
                try:
                    self.node_list()
                except HostsError as exc:
                    out.append(str(exc))
            out += [f"{name}: only with --slurm" for name in ("partition", "time", "account", "gpus_per_node")
                    if getattr(self, name)]
            if self.sbatch:
                out.append("sbatch: only with --slurm")
            if self.sync_dir and not self.sync:
                out.append("sync_dir: only with --sync (it says where the copies go on the nodes)")
            elif self.sync_dir and not self.sync_dir.startswith("/"):
                out.append(f"sync_dir: {self.sync_dir!r} must be an absolute path on the nodes")
        if not 0 <= self.main_port < 65536:
            out.append(f"main_port: {self.main_port} is not a TCP port")
        return out

    def to_cli(self) -> list[str]:
        """The `llmdeck train` flags that give this spec (see CLI_FLAGS)."""
        parts: list[str] = []
        for key, value in self.to_dict().items():
            flag = CLI_FLAGS[key]
            if isinstance(value, bool):
                parts.append(flag)
            elif isinstance(value, list):
                parts += [f"{flag}={item}" for item in value]  # "--sbatch=--qos=high": the value starts with -
            else:
                parts += [flag, str(value)]
        return parts


CLI_FLAGS: dict[str, str] = {
    "nodes": "--nodes",
    "hostfile": "--hostfile",
    "ssh_config": "--ssh-config",
    "sync": "--sync",
    "sync_dir": "--sync-dir",
    "main_ip": "--main-ip",
    "main_port": "--main-port",
    "remote_python": "--remote-python",
    "slurm": "--slurm",
    "partition": "--partition",
    "gpus_per_node": "--gpus-per-node",
    "time": "--time",
    "account": "--account",
    "sbatch": "--sbatch",
}
