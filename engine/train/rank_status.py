"""Every process of a multi-process run reports itself; the run shows one row per node.

Each rank keeps a small JSON file, `WORK_DIR/ddp/ranks/<rank>.json` (node, host, pid, step,
memory, state, last heartbeat), rewritten atomically about once a second by a thread of its
own, and finally once more with its end ("done", or "error" and the message). A launcher may
add what it alone knows about a node (its ssh session ended, and how) in
`WORK_DIR/ddp/nodes/<node>.json`. The run folder is on storage every node sees, so the launching
machine (the worker, the CLI, the TUI) reads all of them; no extra connection is needed.

`node_rows` turns these files into one row per node: state, ranks alive, GPU (or host) memory,
step and the age of the newest heartbeat. The files also tell which node failed first when a
run breaks (`first_failure`): a rank whose file still says "running" after its node ended died
without a word (kill -9, the OOM killer); a rank that raised wrote its error. The earliest of
those is the cause; the others stopped because of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import write_json

HEARTBEAT_S = 1.0
SILENT_AFTER_S = 15.0  # no heartbeat for this long while the run is active: the node is "silent"
NODE_ENV = "LLMDECK_NODE"  # set by the launcher on every node: the node's name as the user gave it


def ranks_dir(work_dir: Path) -> Path:
    return Path(work_dir) / "ddp" / "ranks"


def nodes_dir(work_dir: Path) -> Path:
    return Path(work_dir) / "ddp" / "nodes"


def node_name() -> str:
    return os.environ.get(NODE_ENV) or socket.gethostname()


def _memory_gib() -> tuple[str, float, float]:
    """("gpu", reserved, peak) for this rank's CUDA device, else ("host", RSS, RSS)."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            device = torch.cuda.current_device()
            return ("gpu", torch.cuda.memory_reserved(device) / 2**30, torch.cuda.max_memory_reserved(device) / 2**30)
    except (ImportError, RuntimeError):
        pass
    import psutil

    rss = psutil.Process().memory_info().rss / 2**30
    return ("host", rss, rss)


class RankReporter:
    """This rank's status file and its heartbeat thread."""

    def __init__(self, work_dir: Path) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.path = ranks_dir(work_dir) / f"{self.rank}.json"
        self.step = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {
            "rank": self.rank,
            "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
            "node": node_name(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "state": "running",
            "started": time.time(),
            "peak_gib": 0.0,
        }
        self._thread = threading.Thread(target=self._beat, daemon=True, name="rank-heartbeat")

    def start(self) -> RankReporter:
        self._write()
        self._thread.start()
        return self

    def at_step(self, step: int) -> None:
        self.step = step

    def finish(self, state: str, message: str = "") -> None:
        self._stop.set()
        self._write(state=state, message=message, ended=time.time())

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._write()

    def _write(self, **final: Any) -> None:
        with self._lock:
            if self._data["state"] != "running":
                return  # the end is written once; a late heartbeat must not undo it
            kind, now_gib, peak_gib = _memory_gib()
            self._data.update(memory=kind, mem_gib=round(now_gib, 3), step=self.step, updated=time.time(),
                              peak_gib=round(max(self._data["peak_gib"], peak_gib), 3), **final)
            with contextlib.suppress(OSError):  # a full or vanished disk must not kill the training
                write_json(self.path, self._data)


def record_node(work_dir: Path, name: str, *, by: str = "launcher", **values: Any) -> None:
    """What a launcher knows about a node (its session's state, exit code, why it ended), or what
    the node's own agent says (`by="agent"`: its pid and process group). Each writer has its own
    file, so the two machines never overwrite each other's figures."""
    path = nodes_dir(work_dir) / f"{_safe(name)}.{by}.json"
    current = _read(path) or {"node": name}
    current.update(values, updated=time.time())
    write_json(path, current)


def clear(work_dir: Path) -> None:
    """Forget the files of an earlier launch of this run (a resumed run starts new ranks)."""
    for folder in (ranks_dir(work_dir), nodes_dir(work_dir)):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.json"):
            old.unlink(missing_ok=True)


@dataclass
class NodeRow:
    """One node of a run as the Runs and Train views show it."""

    name: str
    host: str = ""
    state: str = "starting"  # starting | running | silent | done | failed | stopped
    ranks: list[int] = field(default_factory=list)
    alive: int = 0
    memory: str = ""  # "gpu" (reserved by the ranks) or "host" (their resident memory)
    mem_gib: float = 0.0  # the node's live ranks together, now
    peak_gib: float = 0.0  # the node's ranks together, each at its own peak
    step: int = 0
    heartbeat_age_s: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        """One line: name, host, state, ranks alive, step, memory, heartbeat (CLI and TUI)."""
        parts = [self.name, self.host or "-", self.state, f"{self.alive}/{len(self.ranks)} ranks", f"step {self.step}"]
        if self.memory:
            what = "GPU" if self.memory == "gpu" else "RAM"
            parts.append(f"{what} {self.mem_gib:.2f} GiB (peak {self.peak_gib:.2f})")
        if self.heartbeat_age_s is not None and self.state in ("running", "silent"):
            parts.append(f"heartbeat {self.heartbeat_age_s:.0f} s ago")
        if self.detail:
            parts.append(self.detail)
        return "  ".join(parts)


def read_ranks(work_dir: Path) -> list[dict[str, Any]]:
    found = [_read(p) for p in sorted(ranks_dir(work_dir).glob("*.json"))]
    return sorted((r for r in found if r), key=lambda r: int(r.get("rank", 0)))


def read_nodes(work_dir: Path) -> dict[str, dict[str, Any]]:
    """Every node's record: the agent's figures (pid, process group) under the launcher's."""
    merged: dict[str, dict[str, Any]] = {}
    for by in ("agent", "launcher"):
        for path in sorted(nodes_dir(work_dir).glob(f"*.{by}.json")):
            record = _read(path)
            if record and record.get("node"):
                merged.setdefault(record["node"], {}).update(record)
    return merged


def node_rows(work_dir: Path, *, now: float | None = None, active: bool = True) -> list[NodeRow]:
    """One row per node, in the order the launcher listed them (then any other node seen)."""
    now = time.time() if now is None else now
    launched = read_nodes(work_dir)
    ranks = read_ranks(work_dir)
    order = sorted(launched, key=lambda n: launched[n].get("index", 0))
    order += [str(r.get("node")) for r in ranks if r.get("node") not in launched]
    rows: list[NodeRow] = []
    for name in dict.fromkeys(order):
        mine = [r for r in ranks if r.get("node") == name]
        record = launched.get(name, {})
        row = NodeRow(name=name, host=record.get("host") or (mine[0].get("host", "") if mine else ""))
        row.ranks = [int(r["rank"]) for r in mine]
        row.alive = sum(1 for r in mine if r.get("state") == "running")
        row.memory = mine[0].get("memory", "") if mine else ""
        row.mem_gib = round(sum(float(r.get("mem_gib") or 0) for r in mine if r.get("state") == "running"), 3)
        row.peak_gib = round(sum(float(r.get("peak_gib") or 0) for r in mine), 3)  # the node's ranks together
        row.step = max((int(r.get("step") or 0) for r in mine), default=0)
        beats = [float(r["updated"]) for r in mine if r.get("updated")]
        row.heartbeat_age_s = round(now - max(beats), 1) if beats else None
        row.state, row.detail = _node_state(record, mine, row.heartbeat_age_s, active)
        rows.append(row)
    return rows


def _node_state(record: dict[str, Any], mine: list[dict[str, Any]], age: float | None,
                active: bool) -> tuple[str, str]:
    errors = [r for r in mine if r.get("state") == "error"]
    if record.get("state") == "failed":
        return "failed", record.get("reason", "")
    if errors:
        return "failed", f"rank {errors[0]['rank']}: {errors[0].get('message', '')}"
    if mine and all(r.get("state") == "done" for r in mine):
        return "done", ""
    if record.get("state") in ("ended", "stopped") or not active:
        running = [r for r in mine if r.get("state") == "running"]
        if running:
            return "failed", f"rank {running[0]['rank']} stopped without a result"
        return "stopped", record.get("reason", "")
    if not mine:
        return "starting", record.get("reason", "")
    if age is not None and age > SILENT_AFTER_S:
        return "silent", f"no heartbeat for {age:.0f} s"
    return "running", ""


@dataclass
class Failure:
    node: str
    rank: int | None
    at: float
    text: str


def first_failure(work_dir: Path, ended_nodes: set[str]) -> Failure | None:
    """The earliest sign of failure among the ranks: an error a rank wrote, or a rank on an
    ended node whose file still says "running" (it died without a word; its last heartbeat, at
    most HEARTBEAT_S before its death, dates it). When the earliest is such a silent death, every
    silent rank of that node is named: the node's launcher stops a dead rank's siblings at once,
    so which of them died first is not known to a second. None when no rank tells anything."""
    ranks = read_ranks(work_dir)
    silent = [r for r in ranks if r.get("state") == "running" and str(r.get("node", "?")) in ended_nodes]
    candidates = [Failure(str(r.get("node", "?")), int(r.get("rank", -1)),
                          float(r.get("ended") or r.get("updated") or 0),
                          f"rank {r.get('rank')} failed: {r.get('message') or 'an error'}")
                  for r in ranks if r.get("state") == "error"]
    candidates += [Failure(str(r.get("node", "?")), int(r.get("rank", -1)), float(r.get("updated") or 0), "")
                   for r in silent]
    if not candidates:
        return None
    first = min(candidates, key=lambda f: f.at)
    if first.text:
        return first
    dead = [r for r in silent if str(r.get("node", "?")) == first.node]
    which = ", ".join(str(r.get("rank")) for r in dead)
    pids = ", ".join(str(r.get("pid")) for r in dead)
    step = max(int(r.get("step") or 0) for r in dead)
    first.text = (f"rank{'s' if len(dead) > 1 else ''} {which} (pid {pids} on {dead[0].get('host')}) died without a "
                  f"word, last heard of at step {step} (killed: kill -9, the out-of-memory killer, or a crash)")
    return first


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
