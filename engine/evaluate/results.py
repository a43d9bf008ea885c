"""Evaluation results: one JSON record per run, kept in the run folder, read back as tables.

Every eval/bench job writes `out/result.json` in its run folder (atomically) and returns the
same record as its Finished summary. A record says what was measured (kind, model, backend,
settings), on what (machine: CPU, GPU, library versions) and when, so results from different
runs, days or machines can be put side by side: `llmdeck bench results` and Bench mode read
them all back from the run store. Nothing here imports a heavy library.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from engine.atomic import write_json

SCHEMA = 1
RESULT_KINDS = ("eval.ppl", "bench.speed", "bench.sweep")  # the run kinds whose results Bench lists
RESULT_FILE = "result.json"


def machine_info() -> dict[str, Any]:
    """Where a result was measured. Library versions are read only from modules already loaded
    (the job loaded them), so this never imports torch or llama_cpp itself."""
    info: dict[str, Any] = {"host": platform.node(), "cpu": _cpu_model(), "cpus": os.cpu_count() or 0,
                            "python": platform.python_version()}
    for name in ("llama_cpp", "torch", "transformers"):
        module = sys.modules.get(name)
        if module is not None:
            info[name] = str(getattr(module, "__version__", ""))
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a broken CUDA setup must not lose the result
        pass
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def make_record(kind: str, result: dict[str, Any], *, model: str, backend: str, settings: dict[str, Any] | None = None,
                run_id: str = "") -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "kind": kind,
        "model": model,
        "backend": backend,
        "settings": dict(settings or {}),
        "created": time.time(),
        "run_id": run_id,
        "machine": machine_info(),
        "result": result,
    }


def save(record: dict[str, Any], out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULT_FILE
    write_json(path, record)
    return path


def load_run_record(info: Any, store: Any = None) -> dict[str, Any] | None:
    """The record of a finished run: `out/result.json`, else its Finished summary."""
    path = Path(info.dir) / "out" / RESULT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("kind"):
            data.setdefault("run_id", info.id)
            return data
    except (OSError, ValueError):
        pass
    if store is None:
        return None
    from engine.events import Finished

    events, _ = store.read_events(info.id)
    for event in reversed(events):
        if isinstance(event, Finished) and event.summary.get("kind"):
            return dict(event.summary) | {"run_id": info.id}
    return None


def list_records(store: Any, kinds: tuple[str, ...] = RESULT_KINDS) -> list[dict[str, Any]]:
    """Records of every succeeded evaluation run in `store`, newest first."""
    out = []
    for info in store.list():
        if info.status != "succeeded" or info.kind not in kinds:
            continue
        record = load_run_record(info, store)
        if record is not None:
            out.append(record)
    return out


# -- tables ------------------------------------------------------------------------------------
def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, fmt)


def _short_model(path: str) -> str:
    return Path(path).name or path


def when_text(created: float) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(created)) if created else "-"


PPL_HEADERS = ("when", "model", "backend", "file", "PPL", "tokens", "ctx", "stride", "s", "run")
SPEED_HEADERS = ("when", "model", "backend", "on", "pp tok/s", "tg tok/s", "TTFT ms", "prompt", "gen", "reps", "run")
SWEEP_HEADERS = ("type", "size MiB", "BPW", "PPL", "ΔPPL", "ΔPPL %", "pp tok/s", "tg tok/s", "file")


def ppl_row(record: dict[str, Any]) -> tuple[str, ...]:
    r = record["result"]
    return (when_text(record.get("created", 0)), _short_model(record["model"]), record["backend"],
            _short_model(str(r.get("file", ""))) or "-", _num(r.get("ppl"), ".3f"),
            str(r.get("tokens_evaluated", "-")), str(r.get("ctx", "-")), str(r.get("stride", "-")),
            _num(r.get("seconds"), ".1f"), record.get("run_id", ""))


def speed_row(record: dict[str, Any]) -> tuple[str, ...]:
    r = record["result"]

    def spread(key: str, scale: float = 1.0, fmt: str = ".1f") -> str:
        s = r.get(key) or {}
        if not s:
            return "-"
        text = format(s["median"] * scale, fmt)
        if len(s.get("values", [])) > 1:
            text += f" ±{format(s['stdev'] * scale, fmt)}"
        return text

    return (when_text(record.get("created", 0)), _short_model(record["model"]), record["backend"],
            device_text(r.get("details") or {}),
            spread("prompt_tps"),
            spread("gen_tps"), spread("ttft_s", 1000.0, ".0f"), str(r.get("prompt_len")), str(r.get("gen_len")),
            str(r.get("reps")), record.get("run_id", ""))


def device_text(details: dict[str, Any]) -> str:
    """Where a speed was measured, in a few characters: 'cpu x2', 'gpu', 'cpu float32'."""
    device = str(details.get("device", "?"))
    if "dtype" in details:
        return f"{device} {details['dtype']}"
    threads = details.get("threads")
    return f"{device} x{threads}" if device == "cpu" and threads else device


def sweep_rows(record: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for row in record["result"].get("rows", []):
        base = " (base)" if row.get("baseline") else ""
        rows.append((
            row["qtype"] + base,
            _num(row["bytes"] / 2**20, ".1f"),
            _num(row.get("bpw"), ".2f"),
            _num(row.get("ppl"), ".4f"),
            _num(row.get("ppl_delta"), "+.4f"),
            _num(row.get("ppl_delta_pct"), "+.2f"),
            _num(row.get("prompt_tps"), ".1f"),
            _num(row.get("gen_tps"), ".1f"),
            _short_model(row["path"]),
        ))
    return rows


def format_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A plain aligned text table (numbers right-aligned)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def cell(i: int, text: str) -> str:
        numeric = text[:1].isdigit() or text[:1] in "+-±" and len(text) > 1
        return text.rjust(widths[i]) if numeric else text.ljust(widths[i])

    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    lines += ["  ".join(cell(i, c) for i, c in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines)


def markdown_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
