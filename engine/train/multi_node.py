"""Training across machines over SSH: one `accelerate launch` per node, started from here.

`--nodes a,b` (or `--hostfile`) makes the run's worker, after the pre-flight has passed on every
node (engine.train.node_preflight), start on each node, over ssh:

    python -m engine.train.node_agent WORK_DIR NODE -- python -m accelerate.commands.launch
        --num_machines N --machine_rank i --main_process_ip IP --main_process_port P
        --rdzv_backend c10d ... -m engine.train.multi_gpu WORK_DIR

with the same run spec (`WORK_DIR/ddp/spec.json`) for every node. WORK_DIR is the run's `out/`
folder, on storage every node sees (the pre-flight checks it): rank 0, wherever the rendezvous
puts it, appends its events to `ddp/events.jsonl`, which this worker relays into the run, as on one
machine; each rank's status file gives the per-node rows; checkpoints land there, so a resume
works from any node. Each node's output goes to `ddp/node-<name>.log`.

Stop: the cancel file and the ranks' all-reduce, as on one machine (every rank saves and stops
at the same step). A node whose session ends with an error fails the run, naming the node that
failed first (engine.train.rank_status.first_failure); the other nodes are then stopped: their
agents stop their process groups when their ssh session closes, and, if they do not, their group
is killed over a new ssh connection.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine.atomic import write_json
from engine.child_process import die_with_parent
from engine.cluster import ssh
from engine.cluster.hosts import HostsError, Node, processes_per_node
from engine.cluster.remote import python_line
from engine.jobs import JobContext, JobError
from engine.paths import engine_root
from engine.train import rank_status
from engine.train.accelerate_launch import Machines, launch_args
from engine.train.multi_gpu import NODE_SPEC, backend_name, prepare, read_result, relay
from engine.train.node_preflight import check_nodes, node_spec, python_of
from engine.train.spec import TrainSpec

AFTER_FAILURE_S = 20.0  # how long the other nodes get to notice a failed node and end by themselves
AFTER_CANCEL_S = 120.0  # how long the ranks get to reach a step, save and stop after a cancel
AFTER_CLOSE_S = 20.0  # how long a node's agent gets to stop its group once its ssh session closes


@dataclass
class NodeSession:
    """One node's ssh session running its agent."""

    node: Node
    index: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    ended_at: float | None = None

    @property
    def code(self) -> int | None:
        return self.proc.poll()


def run_on_nodes(spec: TrainSpec, work_dir: Path, ctx: JobContext) -> dict[str, Any]:
    """Pre-flight, start every node, relay rank 0's events; the summary of rank 0 at the end."""
    cluster = spec.cluster_spec()
    try:
        nodes = cluster.node_list()
        per_node = processes_per_node(nodes, spec.processes())
    except HostsError as exc:
        raise JobError(str(exc)) from None
    ddp = prepare(spec, work_dir)
    plan = check_nodes(spec, nodes, per_node, work_dir, ctx)
    if not plan.ok:
        raise JobError(f"pre-flight failed, nothing was started: {plan.failures()}")
    if ctx.cancelled:
        return {}  # stopped during the pre-flight: nothing to start, nothing to save
    on_nodes = node_spec(spec)
    if on_nodes is not None:  # --sync-dir: the ranks read the copies on their own node
        write_json(ddp / NODE_SPEC, on_nodes.to_dict())
    ctx.log(f"launching {per_node * len(nodes)} training processes on {len(nodes)} nodes: "
            f"accelerate launch ({backend_name(spec)}), c10d rendezvous at {plan.main_ip}:{plan.main_port}")
    sessions = [_start(spec, work_dir, node, i, len(nodes), per_node, plan.main_ip, plan.main_port)
                for i, node in enumerate(nodes)]
    config = ssh.config_file(cluster.ssh_config)
    try:
        failed_at = _watch(sessions, ddp, ctx, config)
    except BaseException:
        _stop_all(sessions, config, work_dir)
        raise
    finally:
        for session in sessions:
            session.log.close()
    if failed_at is not None:
        raise JobError(_failure_text(sessions, work_dir))
    if ctx.cancelled and not (ddp / "result.json").exists():
        return {}
    summary = read_result(ddp, f"the {len(nodes)} nodes ended")
    summary.update(processes=per_node * len(nodes), nodes=[n.name for n in nodes])
    return summary


def node_command(spec: TrainSpec, work_dir: Path, node: Node, index: int, count: int, per_node: int,
                 main_ip: str, main_port: int) -> str:
    """The shell line node `index` runs: the agent around its `accelerate launch`."""
    machines = Machines(count=count, rank=str(index), main_ip=main_ip, main_port=str(main_port),
                        is_host="1" if index == 0 else "0")
    python = python_of(spec.cluster_spec())
    launch = [python, "-m", "accelerate.commands.launch", *launch_args(spec, work_dir, per_machine=per_node,
                                                                      machines=machines)]
    env = {rank_status.NODE_ENV: node.name, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if spec.device_list():
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in spec.device_list())
    agent = ["-m", "engine.train.node_agent", str(work_dir), node.name, "--", *launch]
    return python_line(python, agent, env=env, pythonpath=engine_root())


def _start(spec: TrainSpec, work_dir: Path, node: Node, index: int, count: int, per_node: int, main_ip: str,
           main_port: int) -> NodeSession:
    line = node_command(spec, work_dir, node, index, count, per_node, main_ip, main_port)
    log = open(work_dir / "ddp" / f"node-{node.name}.log", "ab")  # noqa: SIM115 - closed by run_on_nodes
    argv = ssh.command(node.name, line, ssh.config_file(spec.cluster_spec().ssh_config))
    # stdin stays an open pipe: when this worker closes it (or dies), the node's agent stops its group;
    # the ssh client itself dies with this worker (engine/child_process.py), which closes the session
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent())  # noqa: PLW1509
    rank_status.record_node(work_dir, node.name, index=index, state="running")
    return NodeSession(node=node, index=index, proc=proc, log=log)


def _watch(sessions: list[NodeSession], ddp: Path, ctx: JobContext, config: str) -> float | None:
    """Relay events until every node has ended; returns when the first node failed (or None)."""
    work_dir = ddp.parent
    offset = 0
    failed_at: float | None = None
    cancelled_at: float | None = None
    while True:
        offset = relay(ddp / "events.jsonl", offset, ctx)
        if ctx.cancelled and cancelled_at is None:
            cancelled_at = time.monotonic()
            (ddp / "cancel").touch()
        for session in sessions:
            if session.ended_at is None and session.code is not None:
                session.ended_at = time.time()
                state = "ended" if session.code == 0 else "failed"
                rank_status.record_node(work_dir, session.node.name, state=state, exit_code=session.code,
                                        reason="" if session.code == 0 else _exit_text(session.code))
                if session.code != 0 and failed_at is None:
                    failed_at = time.monotonic()
                    ctx.log(f"node {session.node.name} ended with {_exit_text(session.code)}; stopping the others",
                            level="warning")
        if all(s.ended_at is not None for s in sessions):
            relay(ddp / "events.jsonl", offset, ctx)
            return failed_at
        late = (failed_at is not None and time.monotonic() - failed_at > AFTER_FAILURE_S) or (
            cancelled_at is not None and time.monotonic() - cancelled_at > AFTER_CANCEL_S)
        if late:
            _stop_all(sessions, config, work_dir)
        time.sleep(0.2)


def _stop_all(sessions: list[NodeSession], config: str, work_dir: Path) -> None:
    """Stop every node still running: close its session (its agent stops its group), then kill
    the group over a new ssh connection, then the local ssh client."""
    running = [s for s in sessions if s.code is None]
    for session in running:
        with contextlib.suppress(OSError, ValueError):
            session.proc.stdin.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + AFTER_CLOSE_S
    while any(s.code is None for s in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    records = rank_status.read_nodes(work_dir)
    for session in (s for s in running if s.code is None):
        pgid = records.get(session.node.name, {}).get("pgid")
        if pgid:
            with contextlib.suppress(ssh.SshError):
                ssh.run(session.node.name, f"kill -KILL -- -{int(pgid)}", config=config, timeout=30)
        session.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            session.proc.wait(timeout=10)


def _exit_text(code: int) -> str:
    if code == 255:
        return "its ssh connection failed or was lost (exit 255)"
    if code > 128:
        return f"signal {code - 128} (exit {code})"
    return f"exit code {code}"


def _failure_text(sessions: list[NodeSession], work_dir: Path) -> str:
    """Name the node that failed first, and why."""
    ended = {s.node.name for s in sessions}
    first = rank_status.first_failure(work_dir, ended)
    lost = [s for s in sessions if s.code == 255]
    if first is not None:
        node, why = first.node, first.text
    elif lost:
        node, why = lost[0].node.name, _exit_text(255)
    else:
        bad = min((s for s in sessions if s.code), key=lambda s: s.ended_at or 0.0)
        node, why = bad.node.name, f"accelerate launch ended with {_exit_text(bad.code or 1)}"
    log = work_dir / "ddp" / f"node-{node}.log"
    return f"node {node} failed: {why}; the other nodes were stopped (its output: {log})"
