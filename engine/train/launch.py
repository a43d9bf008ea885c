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
from engine.train.spec import SpecError, TrainSpec, is_template_name

KIND = "train"
TRAINING_KINDS = (KIND, "train.demo")  # the runs that train (and resume): what Train mode lists


def start(spec: TrainSpec, store: RunStore | None = None, *, check_data: bool = True) -> RunInfo:
    """Validate (paths included), check the data renders (`check_data`), start a detached run."""
    spec = spec.validate()
    if check_data:
        data_check(spec)
    store = store or RunStore()
    data = spec.to_dict()
    for key in ("model", "dataset", "chat_template", "output"):
        if data.get(key) and not (key == "chat_template" and is_template_name(data[key])):
            data[key] = str(Path(data[key]).expanduser().resolve())
    cluster = dict(data.get("cluster") or {})
    for key in ("hostfile", "ssh_config"):  # the worker runs in the run folder: relative paths would break
        if cluster.get(key):
            cluster[key] = str(Path(cluster[key]).expanduser().resolve())
    data["cluster"] = cluster
    return store.start(KIND, data, name=spec.label)


def data_check(spec: TrainSpec) -> str:
    """What a run would fail on in its first seconds, found before it starts: the tokenizer, the
    chat template (resolved as the run will: the model's own, else the built-in for its
    architecture), the dataset's format, and a record that renders with something to train on
    (reading stops at the first one). Returns the line saying which template is used; raises
    SpecError naming the problem."""
    from engine.data.dataset import DataSpec, prepare
    from engine.data.problems import DataError
    from engine.data.tokenizer import load_tokenizer

    if spec.method != "sft":  # pairs, labels or prompts: read as the run reads them
        from engine.jobs import JobError
        from engine.train.methods import check_data

        try:
            return check_data(spec, load_tokenizer(spec.model))
        except (JobError, DataError) as exc:
            raise SpecError(str(exc)) from None
    data_spec = DataSpec(
        path=spec.dataset,
        format=spec.data_format or None,
        loss_on=spec.loss_on,
        chat_template=spec.chat_template or None,
        max_seq_len=spec.max_seq_len,
    )
    try:
        prepared = prepare(data_spec, load_tokenizer(spec.model), spec.model)
        rendered = 0
        passes = prepared.rendered()
        for _where, _row in passes:
            rendered += 1
            break
        passes.close()
    except DataError as exc:
        raise SpecError(f"dataset: {exc}") from None
    if not rendered:
        first = prepared.problems[0] if prepared.problems else None
        reason = str(first) if first else "no record has anything to train on"
        name = Path(spec.dataset).name
        raise SpecError(f"dataset: no record of {name} can be trained on; the first problem: {reason}")
    return prepared.template_text


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
