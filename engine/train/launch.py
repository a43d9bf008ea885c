"""Start, resume and inspect training runs as detached runs (shared by the CLI and the TUI).

A resumed run continues in the *same* run folder: its events.jsonl keeps the whole curve (the
steps after the checkpoint are logged again and replace the ones lost with the killed worker),
and the worker is relaunched with `resume_from="latest"` so it picks the newest complete
checkpoint, skipping corrupt ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.runs import RunError, RunInfo, RunStore
from engine.train.checkpoints import Checkpoint, list_checkpoints
from engine.train.rank_status import NodeRow, node_rows
from engine.train.spec import SpecError, TrainSpec

KIND = "train"
TRAINING_KINDS = (KIND, "train.demo")  # the runs that train (and resume): what Train mode lists


def start(spec: TrainSpec, store: RunStore | None = None) -> RunInfo:
    """Validate (paths included) and start a detached training run."""
    spec = spec.validate()
    store = store or RunStore()
    data = spec.to_dict()
    for key in ("model", "dataset", "chat_template", "output"):
        if data.get(key):
            data[key] = str(Path(data[key]).expanduser().resolve())
    cluster = dict(data.get("cluster") or {})
    for key in ("hostfile", "ssh_config"):  # the worker runs in the run folder: relative paths would break
        if cluster.get(key):
            cluster[key] = str(Path(cluster[key]).expanduser().resolve())
    data["cluster"] = cluster
    return store.start(KIND, data, name=spec.label)


def resume(run_id: str, store: RunStore | None = None, *, max_steps: int | None = None) -> RunInfo:
    """Relaunch a stopped, failed or lost training run from its newest complete checkpoint."""
    store = store or RunStore()
    info = store.get(run_id)
    if info.kind not in TRAINING_KINDS:
        raise RunError(f"run {info.id} is a {info.kind} run, not a training run")
    if info.active:
        raise RunError(f"run {info.id} is {info.status}; it is still training")
    if not any(c.complete for c in checkpoints_of(info)):
        raise RunError(f"run {info.id} has no complete checkpoint to resume from; start it again instead")
    spec = dict(info.spec)
    spec["resume_from"] = "latest"
    if max_steps:
        spec["max_steps"] = int(max_steps)
    try:
        TrainSpec.from_dict(spec).validate()
    except SpecError as exc:
        raise RunError(str(exc)) from None
    info = store.update(info.id, spec=spec, **info.relaunch_changes())
    return store.launch(info)


def nodes_of(info: RunInfo) -> list[NodeRow]:
    """One row per node (or per machine) of a multi-process run: liveness, memory, step. Empty
    for a run in one process. Read from the run folder alone (engine.train.rank_status)."""
    if info.kind not in TRAINING_KINDS:
        return []
    return node_rows(info.out_dir, active=info.active)


def checkpoints_of(info: RunInfo) -> list[Checkpoint]:
    return list_checkpoints(info.out_dir / "checkpoints")


def final_output(info: RunInfo) -> Path | None:
    """The adapter or model folder a finished run wrote, if it is there."""
    spec = info.spec or {}
    if spec.get("output"):
        p = Path(spec["output"])
        return p if p.is_dir() else None
    for name in ("adapter", "model"):
        p = info.out_dir / name
        if p.is_dir():
            return p
    return None


def spec_of(info: RunInfo) -> TrainSpec:
    data: dict[str, Any] = {k: v for k, v in (info.spec or {}).items() if k in TrainSpec.__dataclass_fields__}
    return TrainSpec.from_dict(data)
