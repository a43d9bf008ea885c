"""Starting a server as a detached run, shared by `llmdeck serve --detach` and the Serve mode.

The API key never goes into run.json (which `llmdeck runs show` prints): it is written to a
0600 file in the run's folder before the worker starts, and the spec only names that file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from engine.runs import RunInfo, RunStore

SERVE_KIND = "serve"  # every engine, vLLM included: the spec's `engine` picks the server
ENGINES = ("auto", "llama.cpp", "transformers", "vllm")


def start_detached(store: RunStore, spec: dict[str, Any], api_key: str | None = None, *, name: str = "") -> RunInfo:
    """Create the run, put the key beside it (0600), spawn the worker; returns at once."""
    spec = {k: v for k, v in spec.items() if k != "api_key"}
    if api_key:
        spec["api_key_file"] = "api_key"
    info = store.create(SERVE_KIND, spec, name=name or f"serve {model_label(spec)}")
    if api_key:
        key_path = info.dir / "api_key"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(api_key)
    return store.launch(info)


def model_label(spec: dict[str, Any]) -> str:
    model = spec.get("model") or ""
    return Path(model).name if model else "gemma-3-270m (bundled)"


def server_details(info: RunInfo) -> dict[str, Any] | None:
    """The live server's out/server.json (URL, port, ssh line), or None before it listens."""
    import json

    try:
        return json.loads((info.out_dir / "server.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def wait_until_serving(
    store: RunStore, run_id: str, timeout: float = 300.0, poll: float = 0.2
) -> tuple[RunInfo, dict | None]:
    """Poll until the run writes server.json (serving) or ends (failed); bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    info = store.get(run_id)
    while time.monotonic() < deadline:
        info = store.get(run_id)
        details = server_details(info)
        if details or not info.active:
            return info, details
        time.sleep(poll)
    return info, None
