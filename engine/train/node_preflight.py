"""Pre-flight for a run over SSH nodes: every node is asked before any process starts.

For each node, over ssh (in parallel): is it reachable without a password, does its Python
import llmdeck, torch, transformers, peft and accelerate in the versions of the launching
machine, can it read the model, the dataset and the chat template (or, with `--sync`, are they
copied to it with rsync or scp), does it see the run folder (the storage checkpoints, events and
resume need), are its GPUs there and free (or "cpu" for gloo processes), and can node 0 bind the
rendezvous port and every other node reach it. The verdict is one table, one row per node, in
the run's log; a single failing node stops the run before anything starts.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.cluster import probe, ssh
from engine.cluster.hosts import Node
from engine.cluster.remote import python_line
from engine.cluster.spec import ClusterSpec
from engine.paths import engine_root
from engine.train.rank_status import record_node
from engine.train.spec import TrainSpec, is_template_name

PROBE_SOURCE = Path(probe.__file__).read_text(encoding="utf-8")
PROBE_TIMEOUT_S = 90.0
PORT_TIMEOUT_S = 30.0


@dataclass
class NodeCheck:
    """One node's answers and verdict."""

    node: Node
    index: int
    host: str = ""
    python: str = ""
    versions: dict[str, str | None] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    shared: bool | None = None
    devices: str = ""
    port: str = ""
    copied: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Plan:
    """What the launch needs from the pre-flight: the rendezvous address and every verdict."""

    checks: list[NodeCheck]
    main_ip: str = ""
    main_port: int = 0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> str:
        return "; ".join(f"{c.node.name}: {', '.join(c.problems)}" for c in self.checks if c.problems)


def python_of(cluster: ClusterSpec) -> str:
    import sys

    return cluster.remote_python or sys.executable


def run_paths(spec: TrainSpec) -> dict[str, str]:
    paths = {"model": spec.model, "dataset": spec.dataset}
    if spec.chat_template and not is_template_name(spec.chat_template):  # a name travels as it is
        paths["chat_template"] = spec.chat_template
    return {k: str(Path(v).expanduser().resolve()) for k, v in paths.items()}


def node_paths(paths: dict[str, str], cluster: ClusterSpec) -> dict[str, str]:
    """Where the nodes read the run's paths: the same paths, or with `--sync-dir DIR` their copies
    under DIR at the same absolute path (/data/d.jsonl -> DIR/data/d.jsonl: no two can collide)."""
    if not (cluster.sync and cluster.sync_dir):
        return dict(paths)
    return {name: str(Path(cluster.sync_dir) / path.lstrip("/")) for name, path in paths.items()}


def node_spec(spec: TrainSpec) -> TrainSpec | None:
    """The spec the nodes' ranks train with when `--sync-dir` moved the paths (None: the run's own)."""
    cluster = spec.cluster_spec()
    if not (cluster.sync and cluster.sync_dir):
        return None
    from dataclasses import replace

    return replace(spec, **node_paths(run_paths(spec), cluster))


def ask(node: Node, question: dict[str, Any], cluster: ClusterSpec, timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Run the probe on `node`; returns its answer, or {"error": ...} when it could not answer."""
    line = python_line(python_of(cluster), ["-", json.dumps(question)], env={}, pythonpath=engine_root())
    try:
        done = ssh.run(node.name, line, config=ssh.config_file(cluster.ssh_config), timeout=timeout,
                       input_text=PROBE_SOURCE)
    except ssh.SshError as exc:
        return {"error": str(exc)}
    if done.returncode == 255:
        return {"error": f"ssh: {ssh.last_line(done.stderr) or 'connection failed'}"}
    if done.returncode == 127:
        return {"error": f"python: {python_of(cluster)} is not on this node (set --remote-python)"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"the probe gave no answer (exit {done.returncode}): {ssh.last_line(done.stderr)}"}


def check_nodes(spec: TrainSpec, nodes: list[Node], per_node: int, work_dir: Path, ctx: Any) -> Plan:
    """Ask every node, copy what `--sync` allows, test the rendezvous port; log the table."""
    cluster = spec.cluster_spec()
    token_path = work_dir / "ddp" / f"shared-{secrets.token_hex(4)}.txt"
    token_path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    token_path.write_text(token, encoding="utf-8")
    extra = ("deepspeed",) if spec.distributed in ("zero2", "zero3", "deepspeed") else ()
    here = probe.versions(extra)
    paths = run_paths(spec)
    there = node_paths(paths, cluster)
    gpus = None if spec.on_cpu() else {"wanted": spec.device_list(), "count": per_node}
    try:
        def question(index: int) -> dict[str, Any]:
            q: dict[str, Any] = {"paths": there, "shared_token": {"path": str(token_path), "text": token},
                                 "gpus": gpus, "extra_libraries": list(extra)}
            if index == 0:
                q["bind_port"] = cluster.main_port
            return q

        with ThreadPoolExecutor(max_workers=min(16, len(nodes))) as pool:
            answers = list(pool.map(lambda i: ask(nodes[i], question(i), cluster), range(len(nodes))))
        checks = [_verdict(nodes[i], i, answers[i], here, per_node, spec) for i in range(len(nodes))]
        if cluster.sync:
            _sync(checks, paths, there, cluster, ctx)
    finally:
        token_path.unlink(missing_ok=True)
    plan = Plan(checks)
    if checks[0].ok and checks[0].port:
        plan.main_port = int(checks[0].port.split()[-1])
    if plan.ok:
        try:
            plan.main_ip = cluster.main_ip or ssh.address_of(nodes[0].name, ssh.config_file(cluster.ssh_config))
        except ssh.SshError as exc:
            checks[0].problems.append(str(exc))
    if plan.ok and len(nodes) > 1:
        _check_port(plan, cluster)
    for check in checks:
        record_node(work_dir, check.node.name, index=check.index, host=check.host,
                    state="checked" if check.ok else "failed", reason="; ".join(check.problems))
    for line in table(plan, spec, per_node):
        ctx.log(line)
    return plan


def _verdict(node: Node, index: int, answer: dict[str, Any], here: dict[str, str | None], per_node: int,
             spec: TrainSpec) -> NodeCheck:
    check = NodeCheck(node=node, index=index)
    if "error" in answer:
        check.problems.append(answer["error"])
        return check
    check.host = answer.get("host", "")
    check.python = answer.get("python", "")
    check.versions = answer.get("versions", {})
    for name, want in here.items():
        have = check.versions.get(name)
        if have is None:
            what = "llmdeck (the `engine` package)" if name == "llmdeck" else name
            check.problems.append(f"{what} is not importable by {answer.get('executable')}")
        elif want is not None and have != want:
            check.problems.append(f"{name} {have} here, {want} on the launching machine")
    check.paths = answer.get("paths", {})
    if not spec.cluster_spec().sync:
        check.problems += [f"{name} {run_paths(spec)[name]} is {state} (copy it there, or start with --sync)"
                           for name, state in check.paths.items() if state != "ok"]
    check.shared = answer.get("shared")
    if not check.shared:
        check.problems.append("the run folder is not visible here: checkpoints, events and resume need it on "
                              "storage every node shares (set LLMDECK_HOME to a shared folder)")
    if spec.on_cpu():
        check.devices = f"cpu: {per_node} proc, {answer.get('cpus', '?')} cores"
    else:
        check.devices = _gpu_verdict(answer.get("gpu") or {}, per_node, check.problems)
    if index == 0 and answer.get("port"):
        port = answer["port"]
        if port.get("ok"):
            check.port = f"free {port['port']}"
        else:
            check.problems.append(port.get("error", "rendezvous port unusable"))
    return check


def _gpu_verdict(gpu: dict[str, Any], per_node: int, problems: list[str]) -> str:
    if gpu.get("error"):
        problems.append(gpu["error"])
        return "no GPU"
    chosen = gpu.get("gpus", [])
    if len(chosen) < per_node:
        problems.append(f"{per_node} GPUs wanted, {gpu.get('count', 0)} found")
    busy = [str(g["index"]) for g in chosen if g.get("busy")]
    if busy:
        problems.append(f"GPU {', '.join(busy)} in use by another process (nvidia-smi)")
    free = min((g["total_mib"] - g["used_mib"] for g in chosen), default=0) / 1024
    return f"GPU {','.join(str(g['index']) for g in chosen)} ({free:.0f} GiB free)"


def _sync(checks: list[NodeCheck], paths: dict[str, str], there: dict[str, str], cluster: ClusterSpec,
          ctx: Any) -> None:
    """Copy each path a node lacks to the same place on it (with `--sync-dir`: every path, into
    that folder, where rsync brings an older copy up to date), then ask again."""
    config = ssh.config_file(cluster.ssh_config)
    for check in checks:
        if not check.ok:
            continue  # unreachable, or without the libraries: nothing to copy to
        wanted = list(there) if cluster.sync_dir else [name for name, state in check.paths.items() if state != "ok"]
        for name in wanted:
            to = f" to {there[name]}" if there[name] != paths[name] else ""
            ctx.log(f"{check.node.name}: copying {name} {paths[name]}{to} (--sync)")
            try:
                tool = ssh.copy_to(check.node.name, Path(paths[name]), config=config, dest=there[name] if to else "")
            except ssh.SshError as exc:
                check.problems.append(str(exc))
                continue
            check.copied.append(f"{name} by {tool}")
        if wanted:
            again = ask(check.node, {"paths": {n: there[n] for n in wanted}}, cluster)
            check.problems += [f"{n} {there[n]} is still {again.get('paths', {}).get(n, 'unknown')} after the copy"
                               for n in wanted if again.get("paths", {}).get(n) != "ok"]


def _check_port(plan: Plan, cluster: ClusterSpec) -> None:
    """Node 0 listens on the rendezvous port while every other node connects to it."""
    first, others = plan.checks[0], plan.checks[1:]
    config = ssh.config_file(cluster.ssh_config)
    question = {"action": "listen", "port": plan.main_port, "peers": len(others), "timeout": PORT_TIMEOUT_S}
    line = python_line(python_of(cluster), ["-", json.dumps(question)], env={})
    listener = subprocess.Popen(ssh.command(first.node.name, line, config), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert listener.stdin is not None and listener.stdout is not None
    listener.stdin.write(PROBE_SOURCE)
    listener.stdin.close()
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for text in listener.stdout:  # type: ignore[union-attr]
            lines.append(text)
            if text.strip() == "listening":
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(PROBE_TIMEOUT_S) or not lines or lines[0].strip() != "listening":
        listener.kill()
        first.problems.append(f"cannot listen on port {plan.main_port}: {ssh.last_line(''.join(lines))}")
        return
    question = {"action": "connect", "host": plan.main_ip, "port": plan.main_port, "timeout": PORT_TIMEOUT_S}
    with ThreadPoolExecutor(max_workers=min(16, len(others))) as pool:
        reached = list(pool.map(lambda c: ask(c.node, question, cluster), others))
    for check, answer in zip(others, reached, strict=True):
        if answer.get("ok"):
            check.port = f"reached {plan.main_port}"
        else:
            check.problems.append(answer.get("error", "cannot reach the rendezvous port"))
    try:
        listener.wait(timeout=PORT_TIMEOUT_S + 10)
    except subprocess.TimeoutExpired:
        listener.kill()
    first.port = f"bound {plan.main_port}"


def table(plan: Plan, spec: TrainSpec, per_node: int) -> list[str]:
    """The verdict, one row per node, as log lines."""
    checks = plan.checks
    where = f"{plan.main_ip}:{plan.main_port}" if plan.main_ip else "not chosen"
    head = [f"pre-flight: {len(checks)} nodes x {per_node} processes, {spec.distributed} "
            f"{'over cpu/gloo' if spec.on_cpu() else 'on GPUs'}, rendezvous {where}"]
    rows = [("node", "host", "python", "llmdeck", "torch", "paths", "shared", "devices", "port", "verdict")]
    for c in checks:
        paths = "ok" if c.paths and all(v == "ok" for v in c.paths.values()) else (
            ",".join(f"{k}:{v}" for k, v in c.paths.items() if v != "ok") or "-")
        if c.copied:
            paths = "copied"
        rows.append((c.node.name, c.host or "-", c.python or "-", c.versions.get("llmdeck") or "-",
                     c.versions.get("torch") or "-", paths, {True: "yes", False: "no", None: "-"}[c.shared],
                     c.devices or "-", c.port or "-", "ok" if c.ok else "FAIL: " + "; ".join(c.problems)))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  " + "  ".join(str(v).ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
             for r in rows]
    return head + lines
