"""Which machines a run uses: `--nodes host1,host2` or a DeepSpeed-style hostfile.

A hostfile line is `host slots=N` (N processes, usually GPUs, on that host); blank lines and
`#` comments are skipped. That is the format DeepSpeed's launcher and many cluster scripts
already use, so a user's existing file works as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HOST = re.compile(r"^[A-Za-z0-9_.@:\[\]-]+$")


class HostsError(ValueError):
    """The node list or hostfile cannot be used; the text says where and why."""


@dataclass(frozen=True)
class Node:
    """One machine: the name ssh is given (a host, an alias of ~/.ssh/config, user@host) and how
    many processes it runs (None: as many as the run's --devices say)."""

    name: str
    slots: int | None = None


def parse_nodes(text: str) -> list[Node]:
    """`host1,host2` (optionally `host:slots`) -> nodes, in rank order (the first is rank 0)."""
    nodes: list[Node] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, slots = item, None
        if item.count(":") == 1 and not item.startswith("["):
            name, _, count = item.partition(":")
            slots = _slots(count, f"--nodes item {item!r}")
        _check_name(name, f"--nodes item {item!r}")
        nodes.append(Node(name, slots))
    _check_unique(nodes, "--nodes")
    if not nodes:
        raise HostsError("--nodes: give at least one host, e.g. --nodes gpu1,gpu2")
    return nodes


def read_hostfile(path: Path) -> list[Node]:
    """Nodes from a DeepSpeed hostfile (`host slots=N` per line)."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise HostsError(f"hostfile {path}: cannot read it ({exc.strerror or exc})") from None
    nodes: list[Node] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"hostfile {path}, line {number}"
        parts = line.split()
        slots = None
        for extra in parts[1:]:
            key, _, value = extra.partition("=")
            if key != "slots" or not value:
                raise HostsError(f"{where}: expected `host slots=N`, found {extra!r}")
            slots = _slots(value, where)
        _check_name(parts[0], where)
        nodes.append(Node(parts[0], slots))
    _check_unique(nodes, f"hostfile {path}")
    if not nodes:
        raise HostsError(f"hostfile {path}: no hosts in it (one `host slots=N` per line)")
    return nodes


def processes_per_node(nodes: list[Node], from_devices: int) -> int:
    """The processes each node runs: its slots, or the run's device count. accelerate launches
    the same number on every machine, so slots that differ are refused here, before any start."""
    counts = {node.slots if node.slots is not None else from_devices for node in nodes}
    if len(counts) > 1:
        listing = ", ".join(f"{n.name}={n.slots if n.slots is not None else from_devices}" for n in nodes)
        raise HostsError(f"every node must run the same number of processes (accelerate launches the same "
                         f"count per machine); found {listing}")
    return counts.pop()


def _slots(text: str, where: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise HostsError(f"{where}: slots must be a whole number of at least 1, not {text!r}")
    return int(text)


def _check_name(name: str, where: str) -> None:
    if not name or not _HOST.match(name) or name.startswith("-"):
        raise HostsError(f"{where}: {name!r} is not a host name")


def _check_unique(nodes: list[Node], where: str) -> None:
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            raise HostsError(f"{where}: {node.name} is listed twice")
        seen.add(node.name)
