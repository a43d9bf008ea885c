"""What a node can do, asked on the node itself: `python - QUESTION_JSON < probe.py`.

The launcher sends this file's source over ssh to each node's Python (stdin), so the node needs
nothing installed to be asked: the answer (one JSON line on stdout) says whether llmdeck and the
training libraries are there and in which versions, which of the run's paths the node can read,
whether the run folder is the same shared folder, whether the GPUs are free, and whether the
rendezvous port can be bound (node 0) or reached (the others). Standard library only.

The same function answers for the local machine (`answer(question)`), so versions are compared
with exactly the same reading on both sides.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from typing import Any

LIBRARIES = ("torch", "transformers", "peft", "accelerate")


def versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in (*LIBRARIES, *extra):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["llmdeck"] = _llmdeck_version()
    return found


def _llmdeck_version() -> str | None:
    """The version of the `engine` package this Python imports (the llmdeck the ranks will run)."""
    if importlib.util.find_spec("engine") is None:
        return None
    try:
        import engine

        return str(getattr(engine, "__version__", "?"))
    except ImportError:
        return None


def readable(paths: dict[str, str]) -> dict[str, str]:
    """"ok", "missing" or "unreadable" for each path (a folder must be listable too)."""
    out: dict[str, str] = {}
    for name, path in paths.items():
        if not os.path.exists(path):
            out[name] = "missing"
        elif not os.access(path, os.R_OK) or (os.path.isdir(path) and not os.access(path, os.X_OK)):
            out[name] = "unreadable"
        else:
            out[name] = "ok"
    return out


def gpus(wanted: list[int] | None, count: int) -> dict[str, Any]:
    """The GPUs this node would use, their memory and whether another process holds them."""
    if shutil.which("nvidia-smi") is None:
        return {"error": "nvidia-smi not found: no NVIDIA GPU or driver on this node"}
    query = ["nvidia-smi", "--query-gpu=index,uuid,memory.used,memory.total", "--format=csv,noheader,nounits"]
    apps = ["nvidia-smi", "--query-compute-apps=gpu_uuid,pid", "--format=csv,noheader"]
    try:
        rows = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
        busy_rows = subprocess.run(apps, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"nvidia-smi failed: {exc}"}
    table = []
    for line in rows.strip().splitlines():
        index, uuid, used, total = (part.strip() for part in line.split(","))
        table.append({"index": int(index), "uuid": uuid, "used_mib": float(used), "total_mib": float(total)})
    held = {line.split(",")[0].strip() for line in busy_rows.strip().splitlines() if line.strip()}
    chosen = [g for g in table if g["index"] in wanted] if wanted else table[:count]
    for gpu in chosen:
        gpu["busy"] = gpu["uuid"] in held
    return {"gpus": chosen, "count": len(table)}


def bind_port(port: int) -> dict[str, Any]:
    """Node 0: can the rendezvous port be bound (0: pick one that can)?"""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError as exc:
            return {"ok": False, "port": port, "error": f"cannot bind port {port}: {exc.strerror or exc}"}
        return {"ok": True, "port": sock.getsockname()[1]}


def listen(port: int, peers: int, timeout: float) -> dict[str, Any]:
    """Node 0: accept `peers` connections on the port (a firewall between nodes shows here)."""
    reached: list[str] = []
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError as exc:
            return {"ok": False, "error": f"cannot bind port {port}: {exc.strerror or exc}"}
        sock.listen(max(1, peers))
        print("listening", flush=True)
        deadline = time.monotonic() + timeout
        while len(reached) < peers and time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                conn, addr = sock.accept()
            except OSError:
                break
            with conn:
                reached.append(str(addr[0]))
    return {"ok": len(reached) >= peers, "reached_from": reached}


def connect(host: str, port: int, timeout: float) -> dict[str, Any]:
    """Another node: can it open a TCP connection to rank 0's rendezvous address?"""
    deadline = time.monotonic() + timeout
    error = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=5):
                return {"ok": True}
        except OSError as exc:
            error = exc.strerror or str(exc)
            time.sleep(0.3)
    return {"ok": False, "error": f"cannot reach {host}:{port}: {error}"}


def answer(question: dict[str, Any]) -> dict[str, Any]:
    """Everything the question asks for, as a JSON-able dict."""
    action = question.get("action", "check")
    if action == "listen":
        return listen(int(question["port"]), int(question["peers"]), float(question.get("timeout", 30)))
    if action == "connect":
        return connect(str(question["host"]), int(question["port"]), float(question.get("timeout", 30)))
    out: dict[str, Any] = {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "versions": versions(tuple(question.get("extra_libraries", ()))),
        "paths": readable(question.get("paths", {})),
        "cpus": os.cpu_count() or 0,
    }
    token = question.get("shared_token")
    if token:
        out["shared"] = os.path.isfile(token["path"]) and _read(token["path"]) == token["text"]
    if question.get("gpus") is not None:
        out["gpu"] = gpus(question["gpus"].get("wanted"), int(question["gpus"].get("count", 1)))
    if question.get("bind_port") is not None:
        out["port"] = bind_port(int(question["bind_port"]))
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


if __name__ == "__main__":
    print(json.dumps(answer(json.loads(sys.argv[1]))), flush=True)
