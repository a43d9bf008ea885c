"""Every GPU path of llmdeck in one prepared command, for a machine with NVIDIA GPUs.

    python3 bench/gpu_check.py OUT_DIR [--wheels .gpu-wheels] [--parts monitor,train-lora,...]
                               [--budget 450] [--timeout PART=SECONDS] [--keep] [--dry-run]

Run from the repository root. It installs the wheels that `bench/gpu_wheels.sh` put in
`.gpu-wheels/` (pip --no-index into a private folder), then runs each part below as its own
subprocess with its own timeout, so a crash or a hang in one is reported and the next still runs,
and stops starting parts when the time budget (default 450 s, so under 8 minutes on one H200) is
spent. It writes OUT_DIR/gpu_check.json (everything) and OUT_DIR/gpu_check.md (the table) and
prints the table.

  prep           random-initialised Llama-shaped models from a config (no hub) and a dataset
  monitor        `llmdeck monitor --once --json`, every field against NVML read directly; the
                 sampler's cost per tick (fast fields, and a tick that also reads the slow ones)
  train-lora     llmdeck's runner, bf16, a few steps: tokens/s, MFU, peak max_memory_allocated
  train-lora-gc  ... with gradient checkpointing      next to what `llmdeck estimate`
  train-full     ... full fine-tune                   predicts for the same settings
  train-qlora    ... QLoRA (bitsandbytes 4-bit)       (error in %)
  chat           transformers backend: static KV cache + compiled decode vs plain `generate`,
                 batch 1, same model and prompt: tokens/s ratio (target >= 5x), greedy ids equal
  llama          llama-cpp-python CUDA build: `llmdeck bench` with --gpu-layers 99 vs the CPU figure,
                 on the bundled Gemma 3 270M or, where it cannot travel, its shape twin
                 (bench/gguf_twin.py: same metadata, tensors and quant types, random weights)
  serve          `llmdeck serve` (transformers backend, GPU), 8 concurrent streaming clients
  train-bench    `bench/train.py --device cuda`: llmdeck run / plain Trainer+peft, same data
  estimate       the estimator's shapes of issue 18 (random Llama, fused AdamW, SDPA, bf16, no
                 Trainer): engine.estimate.measure's step on the GPU vs `estimate_training`, with
                 requested / allocated / reserved peaks (allocator rounding, fragmentation)

--dry-run needs no GPU: it parses the arguments, runs every part's subprocess in a mode that only
checks what the part needs (no torch import) and reports it as skipped with the reason, and writes
both reports; tests/test_gpu_check.py runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # engine/ and tests/helpers from this checkout, as the other bench scripts do
FORMAT = "llmdeck-gpu-check/1"
DEFAULT_BUDGET_S = 450.0
WHEELS_DIR = ROOT / ".gpu-wheels"
GEMMA_SHAPE = "gemma3-270m-shape.json.gz"

# Training shapes: a Llama-3-like body (GQA 4:1, 128k vocabulary, untied head) small enough that
# loading, four runs and a full fine-tune's fp32 weights fit the time box; the chat model has the
# same body and the tiny tokenizer's vocabulary, so what it generates decodes to text.
TRAIN_DIMS = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 8, "num_attention_heads": 32,
              "num_key_value_heads": 8, "vocab_size": 128256}
TRAIN_STEPS, TRAIN_BATCH, TRAIN_SEQ = 8, 4, 1024
DEVICE = "cuda"  # where prep builds the models (a developer's CPU smoke run of the parts sets "cpu")
CHAT_TOKENS, CHAT_RUNS = 128, 3
SERVE_CLIENTS, SERVE_SECONDS, SERVE_MAX_TOKENS = 8, 20.0, 64

# Dense bf16 tensor-core peak (no sparsity) by GPU name, vendor datasheets; first match wins, so
# more specific names come first. A GPU not listed gets no MFU, and the report says so.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("gh200", 989.0), ("h200", 989.0), ("h100 pcie", 756.0), ("h100 nvl", 835.0), ("h100", 989.0), ("h800", 989.0),
    ("b200", 2250.0), ("a100", 312.0), ("a800", 312.0), ("l40s", 362.0), ("l40", 181.0), ("6000 ada", 364.0),
    ("a6000", 155.0), ("4090", 165.0), ("4080", 97.0), ("3090", 71.0), ("a10g", 70.0), ("a10", 125.0),
    ("l4", 121.0), ("v100", 125.0),
)


def peak_bf16_flops(gpu_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of the GPU called `gpu_name`, or None when it is not in the table."""
    low = gpu_name.lower()
    for key, tflops in PEAK_BF16_TFLOPS:
        if key in low:
            return tflops * 1e12
    return None


# -- parts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    name: str
    title: str
    timeout_s: float
    needs: tuple[str, ...] = ()  # Python modules
    after: tuple[str, ...] = ()  # parts whose output it uses
    gpu: bool = True


PARTS: tuple[Part, ...] = (
    Part("prep", "models and data", 90, ("torch", "transformers", "tokenizers")),
    Part("monitor", "monitor vs NVML", 45, ("pynvml", "psutil"), gpu=True),
    Part("train-lora", "train LoRA", 75, ("torch", "transformers", "peft", "accelerate"), ("prep",)),
    Part("train-lora-gc", "train LoRA + grad ckpt", 75, ("torch", "transformers", "peft", "accelerate"), ("prep",)),
    Part("train-full", "train full", 90, ("torch", "transformers", "accelerate"), ("prep",)),
    Part("train-qlora", "train QLoRA", 90, ("torch", "transformers", "peft", "accelerate", "bitsandbytes"), ("prep",)),
    Part("chat", "chat: static cache vs generate", 150, ("torch", "transformers"), ("prep",)),
    Part("llama", "llama.cpp GPU offload", 150, ("llama_cpp", "gguf", "numpy")),
    Part("serve", "serve, 8 clients", 120, ("torch", "transformers", "fastapi", "uvicorn", "httpx"), ("prep",)),
    Part("train-bench", "bench/train.py ratio", 120, ("torch", "transformers", "peft", "accelerate", "tokenizers")),
    Part("estimate", "estimator vs measured steps", 150, ("torch", "transformers", "peft")),
)
PART_NAMES = tuple(p.name for p in PARTS)


@dataclass
class Outcome:
    """What one part reports (the child writes it as JSON; the parent fills in time and logs)."""

    status: str = "ok"  # ok | failed | skipped | timeout | crashed
    summary: str = ""
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        return bool(ok)


class PartSkipped(Exception):
    """The part cannot run here; the message says why."""


# -- the parent ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", help="folder for gpu_check.json and gpu_check.md (created if missing)")
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU work: check what each part needs, write the reports")
    parser.add_argument("--parts", default="", help=f"comma-separated subset, in this order: {','.join(PART_NAMES)}")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds for all parts (default 450)")
    parser.add_argument("--timeout", action="append", default=[], metavar="PART=SECONDS", help="one part's own limit")
    parser.add_argument("--wheels", default=str(WHEELS_DIR),
                        help="folder of wheels to install first (default .gpu-wheels)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (models, logs) and print where")
    # internal: one part in this process (the parent starts these), and test hooks
    parser.add_argument("--part", default="", help=argparse.SUPPRESS)
    parser.add_argument("--work", default="", help=argparse.SUPPRESS)
    parser.add_argument("--result", default="", help=argparse.SUPPRESS)
    parser.add_argument("--fault", action="append", default=[], help=argparse.SUPPRESS)  # PART=crash|hang|fail
    args = parser.parse_args(argv)
    if not args.part and not args.out:
        parser.error("give the output folder: python3 bench/gpu_check.py OUT_DIR")
    if args.budget <= 0:
        parser.error("--budget must be a number of seconds > 0")
    args.selected = _selected(parser, args.parts)
    args.timeouts = _pairs(parser, args.timeout, "--timeout", float)
    args.faults = _pairs(parser, args.fault, "--fault", str)
    return args


def _selected(parser: argparse.ArgumentParser, text: str) -> list[Part]:
    if not text.strip():
        return list(PARTS)
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [w for w in wanted if w not in PART_NAMES]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PART_NAMES)}")
    chosen = [p for p in PARTS if p.name in wanted]
    # a part's inputs come from the parts it runs after: add them (prep, mostly)
    needed = {d for p in chosen for d in p.after}
    return [p for p in PARTS if p.name in wanted or p.name in needed]


def _pairs(parser: argparse.ArgumentParser, items: list[str], flag: str, kind: Callable[[str], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in PART_NAMES:
            parser.error(f"{flag} wants PART=VALUE with PART one of {', '.join(PART_NAMES)} (got {item!r})")
        try:
            out[name] = kind(value)
        except ValueError:
            parser.error(f"{flag} {item!r}: {value!r} is not valid")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.part:
        return run_child(args)
    return run_all(args)


def run_all(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="llmdeck-gpu-check-"))
    started = time.monotonic()
    deadline = started + args.budget
    report: dict[str, Any] = {
        "format": FORMAT,
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "dry_run": args.dry_run,
        "budget_s": args.budget,
        "host": host_facts(),
        "parts": [],
    }
    try:
        env = child_env(work, Path(args.wheels))
        report["wheels"] = install_wheels(Path(args.wheels), work / "site", env, dry_run=args.dry_run)
        statuses: dict[str, str] = {}
        for part in args.selected:
            entry = run_part(part, args, work, env, deadline, statuses)
            statuses[part.name] = entry["status"]
            report["parts"].append(entry)
            print(f"[gpu_check] {part.name}: {entry['status']} in {entry['seconds']:.0f} s"
                  f"{' - ' + entry['summary'] if entry['summary'] else ''}"
                  f"{' - ' + entry['reason'] if entry['reason'] and entry['status'] != 'ok' else ''}", flush=True)
        report["wall_s"] = round(time.monotonic() - started, 1)
        write_reports(out, report)
    finally:
        if args.keep:
            print(f"[gpu_check] work folder kept: {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(report))
    return 0


def host_facts() -> dict[str, Any]:
    """What the parent can tell without importing torch (a child reports the GPU side)."""
    facts: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                             "cpus": os.cpu_count(), "repo": str(ROOT)}
    reason = gpu_unavailable_reason()
    facts["gpu"] = "none: " + reason if reason else "present"
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False,
                                capture_output=True, text=True, timeout=10)
        facts["commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        facts["commit"] = None
    return facts


def gpu_unavailable_reason() -> str:
    """'' when NVML sees at least one NVIDIA GPU, else why not (the Monitor's own wording)."""
    from engine.monitor.nvml import NvmlSampler

    sampler = NvmlSampler()
    try:
        if sampler.open():
            return ""
        return sampler.reason.removeprefix("No GPU panel: ").rstrip(".")
    finally:
        sampler.close()


def child_env(work: Path, wheels: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LLMDECK_GPU_WHEELS"] = str(wheels.resolve())  # the llama part reads the Gemma shape there
    site = work / "site"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), str(ROOT), env.get("PYTHONPATH", "")]))
    env["LLMDECK_HOME"] = str(work / "home")
    env["HF_HUB_OFFLINE"] = env["TRANSFORMERS_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    # compiled decoding (chat, then serve) reuses the same kernels: one cache for both processes
    env["TORCHINDUCTOR_CACHE_DIR"] = str(work / "inductor")
    env["TRITON_CACHE_DIR"] = str(work / "triton")
    # a llama.cpp CUDA build made elsewhere finds libcublas here; dlopen reads this at process start
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [*nvidia_library_dirs(), env.get("LD_LIBRARY_PATH", "")]))
    return env


def install_wheels(folder: Path, site: Path, env: dict[str, str], *, dry_run: bool) -> dict[str, Any]:
    """pip install --no-index every wheel in `folder` into `site` (first on the children's path).

    --no-deps: the folder holds exactly what the machine lacks (bench/gpu_wheels.sh picks them),
    and resolving against the machine's own torch/numpy could only pull a second copy."""
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    info: dict[str, Any] = {"folder": str(folder), "wheels": [w.name for w in wheels]}
    if not wheels:
        info["status"] = "none" if folder.is_dir() else "no folder"
        return info
    if dry_run:
        info["status"] = "not installed (dry run)"
        return info
    began = time.monotonic()
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
           "--disable-pip-version-check", "--find-links", str(folder), "--target", str(site), *map(str, wheels)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    info["seconds"] = round(time.monotonic() - began, 1)
    info["status"] = "installed" if proc.returncode == 0 else f"pip failed ({proc.returncode})"
    if proc.returncode:
        info["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return info


def run_part(part: Part, args: argparse.Namespace, work: Path, env: dict[str, str], deadline: float,
             statuses: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": part.name, "title": part.title, "status": "skipped", "seconds": 0.0,
                             "summary": "", "reason": "", "figures": {}, "checks": []}
    blocked = [d for d in part.after if statuses.get(d) not in ("ok", None) or d not in statuses]
    if blocked and not args.dry_run:
        entry["reason"] = f"needs {blocked[0]}, which {statuses.get(blocked[0], 'did not run')}"
        return entry
    limit = min(args.timeouts.get(part.name, part.timeout_s), deadline - time.monotonic())
    if limit < min(20.0, args.timeouts.get(part.name, part.timeout_s)):
        entry["reason"] = f"out of time: the {args.budget:.0f} s budget is spent"
        return entry
    entry["timeout_s"] = round(limit, 1)
    result_file = work / "results" / f"{part.name}.json"
    log_file = work / "logs" / f"{part.name}.log"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", part.name, "--work", str(work),
           "--result", str(result_file)]
    if args.dry_run:
        cmd.append("--dry-run")
    if part.name in args.faults:
        cmd += ["--fault", f"{part.name}={args.faults[part.name]}"]
    began = time.monotonic()
    with open(log_file, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=str(ROOT), start_new_session=True)
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            code = None
            _kill_group(proc)
    entry["seconds"] = round(time.monotonic() - began, 1)
    try:
        entry.update(json.loads(result_file.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        if code is None:
            entry.update(status="timeout", reason=f"no result within {limit:.0f} s; stopped")
        else:
            entry.update(status="crashed", reason=f"exit code {code} without a result")
    else:
        if code is None:
            entry["reason"] = (entry.get("reason") or "") + f" (then hung: stopped after {limit:.0f} s)"
    _kill_group(proc)  # whatever it started (a server, a compile worker) goes with it
    _stop_runs(work / "home" / "data" / "runs")
    if entry["status"] not in ("ok", "skipped"):
        entry["log_tail"] = _tail(log_file, 15)
    return entry


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # the leader is gone; a child that ignored SIGTERM may remain
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            return


def _stop_runs(root: Path) -> None:
    """Kill the detached runs a part left (`llmdeck bench` and `convert` start their work as runs in
    their own process session, which killing the part's process group does not reach)."""
    if not root.is_dir():
        return
    from engine.runs import RunError, RunStore

    store = RunStore(root)
    for info in store.list():
        if info.active:
            with contextlib.suppress(RunError):
                store.cancel(info.id, force=True)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return []


def write_reports(out: Path, report: dict[str, Any]) -> None:
    """gpu_check.json and gpu_check.md, each written to a temporary name and renamed."""
    from engine.atomic import write_json, write_text

    write_json(out / "gpu_check.json", report)
    write_text(out / "gpu_check.md", markdown(report) + "\n")


def markdown(report: dict[str, Any]) -> str:
    gpu = report.get("gpu") or next((p["figures"].get("gpu") for p in report["parts"] if p["figures"].get("gpu")), None)
    host = report.get("host", {})
    line = (f"{report.get('started', '')} · commit {host.get('commit') or '?'} · "
            f"GPU: {gpu or host.get('gpu', '?')} · Python {host.get('python', '?')} · "
            f"{report.get('wall_s', '?')} s of a {report.get('budget_s', 0):.0f} s budget")
    head = [f"# llmdeck GPU check{' (dry run)' if report.get('dry_run') else ''}", "", line, ""]
    wheels = report.get("wheels") or {}
    if wheels:
        files = f", {len(wheels['wheels'])} files" if wheels.get("wheels") else ""
        head += [f"wheels ({wheels.get('folder', '')}): {wheels.get('status', '')}{files}", ""]
    rows = ["| part | status | s | result |", "|---|---|---:|---|"]
    for p in report["parts"]:
        text = p.get("summary") or ""
        if p["status"] != "ok" and p.get("reason"):
            text = (text + "; " if text else "") + p["reason"]
        rows.append(f"| {p['name']} | {p['status']} | {p.get('seconds', 0):.0f} | {_cell(text)} |")
    failed = [(p["name"], c) for p in report["parts"] for c in p.get("checks", []) if not c["ok"]]
    tail: list[str] = []
    if failed:
        tail = ["", "Failed checks:", ""] + [f"- {name}: {c['name']}{' - ' + c['detail'] if c['detail'] else ''}"
                                             for name, c in failed]
    return "\n".join(head + rows + tail)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- the child ----------------------------------------------------------------------------------
def run_child(args: argparse.Namespace) -> int:
    """One part, in this process: its result goes to --result as JSON (written atomically); then
    the process ends at once."""
    from engine.atomic import write_json

    part = next(p for p in PARTS if p.name == args.part)
    work = Path(args.work)
    fault = args.faults.get(part.name, "")
    if fault == "crash":
        os._exit(3)  # like a segfault in a native library: no result, no cleanup
    if fault == "hang":
        while True:
            time.sleep(60)
    outcome = Outcome()
    try:
        missing = [m for m in part.needs if importlib.util.find_spec(m) is None]
        gpu_reason = gpu_unavailable_reason() if part.gpu else ""
        if args.dry_run:
            needs = ", ".join(part.needs) or "nothing"
            lacks = ([f"an NVIDIA GPU ({gpu_reason})"] if gpu_reason else []) + [f"module {m}" for m in missing]
            raise PartSkipped(f"dry run; needs {'a GPU, ' if part.gpu else ''}{needs}"
                              + (f"; missing here: {', '.join(lacks)}" if lacks else "; all present"))
        if fault == "fail":
            raise RuntimeError("failure requested with --fault")
        if gpu_reason:
            raise PartSkipped(f"needs an NVIDIA GPU: {gpu_reason}")
        if missing:
            raise PartSkipped(f"missing Python module(s) {', '.join(missing)} (bench/gpu_wheels.sh downloads them)")
        RUNNERS[part.name](work, outcome)
        if any(not c["ok"] for c in outcome.checks) and outcome.status == "ok":
            outcome.status = "failed"
            outcome.reason = "; ".join(c["name"] for c in outcome.checks if not c["ok"])
    except PartSkipped as exc:
        outcome.status, outcome.reason = "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure of a part is its result, with the traceback in its log
        import traceback

        traceback.print_exc()
        outcome.status, outcome.reason = "failed", f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    write_json(Path(args.result), {"status": outcome.status, "summary": outcome.summary, "reason": outcome.reason,
                                   "figures": outcome.figures, "checks": outcome.checks})
    # the result is on disk: leave now rather than wait for library threads and compile workers
    # to wind down (that wait has no bound, and the parent's clock is running)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# -- prep ---------------------------------------------------------------------------------------
def part_prep(work: Path, out: Outcome) -> None:
    """Random Llama models from a config and a text dataset whose records fill TRAIN_SEQ tokens."""
    import random

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.helpers.tiny_model import CORPUS, build_tiny_tokenizer

    models = work / "models"
    for name, vocab in (("train", TRAIN_DIMS["vocab_size"]), ("chat", None)):
        folder = models / name
        tok = build_tiny_tokenizer(folder)
        dims = dict(TRAIN_DIMS, vocab_size=vocab or len(tok))
        config = LlamaConfig(**dims, max_position_embeddings=4096, tie_word_embeddings=False,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
        torch.manual_seed(0)
        with torch.device(DEVICE):
            model = LlamaForCausalLM(config).to(torch.bfloat16)
        if name == "chat":
            # a random model would end its answers at random: the chat and serve figures need
            # answers of the length asked for, so its own generation config never picks a special token
            model.generation_config.suppress_tokens = sorted(set(tok.all_special_ids))
        model.save_pretrained(str(folder))
        out.figures[f"{name}_model_params"] = sum(p.numel() for p in model.parameters())
        del model
        torch.cuda.empty_cache()
    words = " ".join(CORPUS).split()
    rng = random.Random(0)
    data = work / "data" / "train.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    with open(data, "w", encoding="utf-8") as handle:
        records = (
            " ".join(rng.choice(words) for _ in range(3 * TRAIN_SEQ))
            for _ in range(TRAIN_BATCH * (TRAIN_STEPS + 2)))
        handle.writelines(json.dumps({"text": text}) + "\n" for text in records)
    props = torch.cuda.get_device_properties(0)
    out.figures.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                       gpu_memory_gib=round(props.total_memory / 2**30, 1), torch=torch.__version__,
                       cuda=torch.version.cuda, transformers=_version("transformers"), peft=_version("peft"),
                       bitsandbytes=_version("bitsandbytes"), llama_cpp=_version("llama_cpp_python"))
    out.summary = (f"{out.figures['gpu']} x{out.figures['gpus']}, torch {torch.__version__}, "
                   f"train model {out.figures['train_model_params'] / 1e6:.0f}M params")


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# -- monitor ------------------------------------------------------------------------------------
# llmdeck's JSON field -> how NVML gives it and how close it must be (the two reads are a moment
# apart: static facts must be equal, live readings close).
EXACT_FIELDS = ("name", "uuid", "memory_total", "clock_sm_max_mhz", "power_limit_w", "pcie_gen", "pcie_width",
                "ecc_enabled")


def part_monitor(work: Path, out: Outcome) -> None:
    import pynvml

    proc = subprocess.run([sys.executable, "-m", "tui.cli", "monitor", "--once", "--json"], check=False,
                          capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    if proc.returncode:
        raise RuntimeError(f"llmdeck monitor --once --json exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    sample = json.loads(proc.stdout)
    out.check("the sample names no GPU problem", not sample.get("gpu_status"), str(sample.get("gpu_status") or ""))
    direct = nvml_direct(pynvml)
    out.check("same number of GPUs as NVML", len(sample["gpus"]) == len(direct),
              f"{len(sample['gpus'])} vs {len(direct)}")
    rows = compare_sample(sample["gpus"], direct)
    for index, name, ok, detail in rows:
        if not ok:
            out.check(f"GPU {index} {name}", False, detail)
    ok, detail = compare_field("driver", sample.get("driver"), _nvml_value(pynvml.nvmlSystemGetDriverVersion))
    out.check("driver version", ok, detail)
    agree = sum(1 for row in rows if row[2])
    out.figures.update(fields_checked=len(rows), fields_agreeing=agree, gpus=len(direct))
    out.figures.update(sampler_cost())
    out.summary = (f"{agree}/{len(rows)} fields agree with NVML on {len(direct)} GPU(s); "
                   f"tick {out.figures['fast_tick_us']:.0f} µs, with slow fields {out.figures['slow_tick_ms']:.1f} ms")


def _nvml_value(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), or 'n/a' when NVML cannot give it (what llmdeck must then say too)."""
    import pynvml

    try:
        value = fn(*args)
    except pynvml.NVMLError:
        return "n/a"
    return value.decode() if isinstance(value, bytes) else value


def nvml_direct(nv: Any) -> list[dict[str, Any]]:
    """Every field of llmdeck's GPU sample, read straight from NVML (`nv`: the pynvml module) in
    llmdeck's units: bytes, percent, degrees C, watts, MHz. Constants come from the binding (with
    nvml.h's values where an old binding lacks one), not from llmdeck."""
    clock_sm, clock_mem = getattr(nv, "NVML_CLOCK_SM", 1), getattr(nv, "NVML_CLOCK_MEM", 2)
    v = _nvml_value
    nv.nvmlInit()
    try:
        gpus = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            mem = v(nv.nvmlDeviceGetMemoryInfo, h, getattr(nv, "nvmlMemory_v2", 0x02000028))
            if mem == "n/a":
                mem = v(nv.nvmlDeviceGetMemoryInfo, h)
            util = v(nv.nvmlDeviceGetUtilizationRates, h)
            ecc = v(nv.nvmlDeviceGetEccMode, h)
            plists = [v(nv.nvmlDeviceGetComputeRunningProcesses, h), v(nv.nvmlDeviceGetGraphicsRunningProcesses, h)]
            pids = {p.pid for plist in plists if plist != "n/a" for p in plist}
            power, limit = v(nv.nvmlDeviceGetPowerUsage, h), v(nv.nvmlDeviceGetEnforcedPowerLimit, h)
            gpus.append({
                "name": v(nv.nvmlDeviceGetName, h),
                "uuid": v(nv.nvmlDeviceGetUUID, h),
                "memory_total": getattr(mem, "total", "n/a"),
                "memory_used": getattr(mem, "used", "n/a"),
                "memory_reserved": getattr(mem, "reserved", "n/a"),
                "util_gpu": getattr(util, "gpu", "n/a"),
                "util_memory": getattr(util, "memory", "n/a"),
                "temperature": v(nv.nvmlDeviceGetTemperature, h, getattr(nv, "NVML_TEMPERATURE_GPU", 0)),
                "fan_percent": v(nv.nvmlDeviceGetFanSpeed, h),
                "power_w": power / 1000 if power != "n/a" else "n/a",
                "power_limit_w": limit / 1000 if limit != "n/a" else "n/a",
                "clock_sm_mhz": v(nv.nvmlDeviceGetClockInfo, h, clock_sm),
                "clock_mem_mhz": v(nv.nvmlDeviceGetClockInfo, h, clock_mem),
                "clock_sm_max_mhz": v(nv.nvmlDeviceGetMaxClockInfo, h, clock_sm),
                "pstate": v(nv.nvmlDeviceGetPerformanceState, h),
                "pcie_gen": v(nv.nvmlDeviceGetCurrPcieLinkGeneration, h),
                "pcie_width": v(nv.nvmlDeviceGetCurrPcieLinkWidth, h),
                "ecc_enabled": bool(ecc[0]) if ecc != "n/a" else "n/a",
                "process_count": len(pids) if any(p != "n/a" for p in plists) else "n/a",
            })
        return gpus
    finally:
        nv.nvmlShutdown()


def compare_sample(ours: list[dict[str, Any]], direct: list[dict[str, Any]]) -> list[tuple[int, str, bool, str]]:
    """(GPU index, field, agrees, detail) for every field NVML gives, GPU by GPU."""
    rows = []
    for index, (mine, theirs) in enumerate(zip(ours, direct, strict=False)):
        for name, value in theirs.items():
            ok, detail = compare_field(name, mine.get(name, "missing"), value)
            rows.append((index, name, ok, detail))
    return rows


def compare_field(name: str, ours: Any, theirs: Any) -> tuple[bool, str]:
    """Whether llmdeck's value of `name` agrees with NVML's, and the two values when not."""
    detail = f"llmdeck {ours!r}, NVML {theirs!r}"
    if theirs == "n/a" or ours == "n/a":
        return ours == theirs, detail
    if name in EXACT_FIELDS or name == "driver":
        if isinstance(theirs, float):
            return abs(float(ours) - theirs) < 0.01, detail
        return ours == theirs, detail
    try:
        a, b = float(ours), float(theirs)
    except (TypeError, ValueError):
        return False, detail
    tolerance = {
        # the two reads are a moment apart: another process may allocate, clocks and power move
        "memory_used": max(256 * 2**20, 0.02 * b), "memory_reserved": 64 * 2**20,
        "temperature": 5, "power_w": max(50.0, 0.3 * b), "clock_sm_mhz": max(300.0, 0.3 * b),
        "clock_mem_mhz": max(300.0, 0.1 * b), "pstate": 2, "process_count": 2, "util_gpu": 100, "util_memory": 100,
        "fan_percent": 10,
    }.get(name, 0.0)
    if name.startswith("util_") and not 0 <= a <= 100:
        return False, detail
    return abs(a - b) <= tolerance, detail


def sampler_cost() -> dict[str, float]:
    """Wall and CPU time of one sampler tick: fast fields only, and with the slow fields too."""
    from engine.monitor.nvml import NvmlSampler

    figures: dict[str, float] = {}
    for key, slow_interval, ticks in (("fast", 3600.0, 200), ("slow", 0.0, 20)):
        sampler = NvmlSampler(slow_interval=slow_interval)
        if not sampler.open():
            raise RuntimeError(sampler.reason)
        try:
            sampler.sample()  # first tick reads the slow fields and warms NVML up
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(ticks):
                sampler.sample()
            wall, cpu = (time.perf_counter() - wall) / ticks, (time.process_time() - cpu) / ticks
        finally:
            sampler.close()
        scale, unit = (1e6, "us") if key == "fast" else (1e3, "ms")
        figures[f"{key}_tick_{unit}"] = round(wall * scale, 1)
        figures[f"{key}_tick_cpu_{unit}"] = round(cpu * scale, 1)
    return figures


# -- training -----------------------------------------------------------------------------------
class _Events:
    """A JobContext that keeps the events (what a run's worker would append to events.jsonl)."""

    def __init__(self) -> None:
        from engine.jobs import JobContext

        self.events: list[Any] = []
        self.ctx = JobContext(self.events.append)

    def metric_series(self, key: str) -> list[float]:
        return [e.values[key] for e in self.events if getattr(e, "KIND", "") == "metric" and key in e.values]


def train_part(work: Path, out: Outcome, method: str, checkpointing: bool) -> None:
    import torch

    from engine.estimate import TrainingOptions, estimate_training, spec_from_hf_dir
    from engine.train.runner import train
    from engine.train.spec import TrainSpec

    name = f"{method}{'-gc' if checkpointing else ''}"
    model_dir = work / "models" / "train"
    spec = TrainSpec(model=str(model_dir), dataset=str(work / "data" / "train.jsonl"), method=method,
                     max_steps=TRAIN_STEPS, batch_size=TRAIN_BATCH, max_seq_len=TRAIN_SEQ,
                     gradient_checkpointing=checkpointing, precision="bf16", learning_rate=1e-4, warmup=0,
                     lora_r=16, lora_alpha=32, lora_dropout=0.05, loss_on="all", logging_steps=1, save_steps=0,
                     seed=0, output=str(work / "out" / name))
    events = _Events()
    torch.cuda.reset_peak_memory_stats()
    summary = train(spec, work / "runs" / name, events.ctx)
    stats = torch.cuda.memory_stats()
    peak = torch.cuda.max_memory_allocated()
    rates = events.metric_series("tokens_per_s")
    steady = statistics.median(rates[2:]) if len(rates) > 3 else summary.get("tokens_per_s") or 0.0
    # what `llmdeck estimate` says for the same run: the runner trains a bf16 base under bf16
    # autocast for LoRA/QLoRA and fp32 weights under bf16 autocast for a full fine-tune ("mixed"
    # both), with the Trainer's fused AdamW
    model_spec = spec_from_hf_dir(model_dir)
    options = TrainingOptions(method=method, batch=TRAIN_BATCH, seq_len=TRAIN_SEQ, precision="mixed",
                              grad_checkpointing=checkpointing, lora_rank=16, lora_targets="all-linear",
                              lora_dropout=0.05, optimizer_impl="fused", cuda_context_gib=0.0)
    est = estimate_training(model_spec, options)
    predicted = est.allocated_bytes
    gpu = torch.cuda.get_device_name(0)
    peak_flops = peak_bf16_flops(gpu)
    flops_per_token = model_flops_per_token(model_spec, method)
    mfu = steady * flops_per_token / peak_flops if peak_flops else None
    out.figures.update(
        method=method, gradient_checkpointing=checkpointing, steps=summary["steps"], batch=TRAIN_BATCH, seq=TRAIN_SEQ,
        tokens_per_s=round(steady, 1), tokens_per_s_whole_run=summary.get("tokens_per_s"),
        final_loss=summary.get("final_loss"), mfu=round(mfu, 4) if mfu is not None else None,
        mfu_note="" if peak_flops else f"peak bf16 FLOP/s of {gpu!r} unknown (table PEAK_BF16_TFLOPS)",
        model_flops_per_token=flops_per_token, peak_allocated_gib=round(peak / 2**30, 3),
        peak_requested_gib=round(stats.get("requested_bytes.all.peak", 0) / 2**30, 3),
        peak_reserved_gib=round(torch.cuda.max_memory_reserved() / 2**30, 3),
        estimate_gib=round(predicted / 2**30, 3), estimate_error_pct=round(100 * (predicted / peak - 1), 1),
        estimate_phase=est.peak_phase,
        estimate_phases_gib={k: round(v / 2**30, 2) for k, v in est.extra["phase_bytes"].items()},
        gpu=gpu,
    )
    out.check("loss is finite", summary.get("final_loss") is not None, str(summary.get("final_loss")))
    out.check("estimate within 10% of max_memory_allocated", abs(predicted / peak - 1) <= 0.10,
              f"estimate {predicted / 2**30:.2f} GiB vs peak {peak / 2**30:.2f} GiB")
    mfu_text = f"MFU {100 * mfu:.1f}%" if mfu is not None else "MFU n/a (unknown GPU)"
    out.summary = (f"{steady:,.0f} tok/s, {mfu_text}, peak {peak / 2**30:.2f} GiB vs estimate "
                   f"{predicted / 2**30:.2f} GiB ({100 * (predicted / peak - 1):+.1f}%)")


def model_flops_per_token(spec: Any, method: str) -> float:
    """Model FLOPs per trained token (recomputation not counted, as MFU is defined): 2 per weight
    for the forward, 2 more for the activations' gradients, and 2 more for the weights' gradients
    of a full fine-tune (LoRA's frozen weights get none; the adapters' own FLOPs are negligible);
    plus causal attention, 6 * L * s * q (QK^T and AV, forward and backward, half of the scores
    masked). The input embedding is a lookup, not a matmul."""
    per_weight = 6 if method == "full" else 4
    matmul = spec.params - spec.vocab * spec.hidden
    return per_weight * matmul + 6 * spec.n_layers * TRAIN_SEQ * spec.q_dim


RUNNERS: dict[str, Callable[[Path, Outcome], None]] = {}
RUNNERS["prep"] = part_prep
RUNNERS["monitor"] = part_monitor
RUNNERS["train-lora"] = lambda work, out: train_part(work, out, "lora", False)
RUNNERS["train-lora-gc"] = lambda work, out: train_part(work, out, "lora", True)
RUNNERS["train-full"] = lambda work, out: train_part(work, out, "full", False)
RUNNERS["train-qlora"] = lambda work, out: train_part(work, out, "qlora", False)


# -- chat ---------------------------------------------------------------------------------------
def part_chat(work: Path, out: Outcome) -> None:
    import torch

    from engine.chat.params import SamplingParams
    from engine.chat.transformers_backend import TransformersBackend

    model_dir = work / "models" / "chat"
    params = SamplingParams(temperature=0.0, max_new_tokens=CHAT_TOKENS)
    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]
    speeds: dict[bool, float] = {}
    ids: dict[bool, list[int]] = {}
    compile_s = 0.0
    for static in (False, True):
        backend = TransformersBackend(model_dir, static_cache=static)
        began = time.perf_counter()
        # warm-up: CUDA init, and the compile; the same length as the timed runs, since a static
        # cache of another length is another shape to compile
        backend.generate(messages, params)
        if static:
            compile_s = time.perf_counter() - began
        runs, counts = [], []
        for _ in range(CHAT_RUNS):
            backend.generate(messages, params)
            runs.append(backend.last_stats.tokens_per_s or 0.0)
            counts.append(backend.last_stats.generated_tokens)
        out.check(f"{'static-cache' if static else 'plain'} runs made {CHAT_TOKENS} tokens each",
                  all(c == CHAT_TOKENS for c in counts), f"{counts}")
        speeds[static] = statistics.median(runs)
        # greedy token ids of the same decoding path, for the equality check
        enc = backend._prompt_ids(messages)
        gen = {"max_new_tokens": CHAT_TOKENS, "do_sample": False, "pad_token_id": backend.tokenizer.pad_token_id,
               "attention_mask": enc["attention_mask"].to(backend.model.device)}
        if static:
            gen["cache_implementation"] = "static"
        with torch.inference_mode():
            output = backend.model.generate(enc["input_ids"].to(backend.model.device), **gen)
        ids[static] = output[0, enc["input_ids"].shape[1]:].tolist()
        backend.close()
    ratio = speeds[True] / speeds[False] if speeds[False] else 0.0
    shorter = min(len(ids[False]), len(ids[True]))
    same = next((i for i, (a, b) in enumerate(zip(ids[False], ids[True], strict=False)) if a != b), shorter)
    out.figures.update(plain_tokens_per_s=round(speeds[False], 1), static_tokens_per_s=round(speeds[True], 1),
                       speedup=round(ratio, 2), compile_warmup_s=round(compile_s, 1),
                       greedy_tokens_compared=len(ids[False]), greedy_equal_prefix=same)
    out.check("static cache + compile >= 5x plain generate", ratio >= 5.0, f"{ratio:.2f}x")
    out.check("greedy outputs equal", ids[False] == ids[True],
              f"first {same} of {len(ids[False])} tokens equal" if ids[False] != ids[True] else "")
    equal = "equal" if ids[False] == ids[True] else f"equal for {same}/{len(ids[False])}"
    out.summary = (f"{speeds[True]:.0f} vs {speeds[False]:.0f} tok/s = {ratio:.1f}x (target >= 5x); "
                   f"greedy ids {equal}; compile {compile_s:.0f} s")


RUNNERS["chat"] = part_chat


# -- llama.cpp ----------------------------------------------------------------------------------
def nvidia_library_dirs() -> list[str]:
    """Folders of the CUDA libraries pip's nvidia-* packages hold (libcublas for a llama.cpp CUDA
    build made elsewhere): the image's torch finds them by its own RPATH, a ctypes library cannot."""
    found: list[str] = []
    for entry in sys.path:
        base = Path(entry) / "nvidia"
        if base.is_dir():
            found += sorted(str(p) for p in base.glob("*/lib") if p.is_dir())
    for extra in ("/usr/local/cuda/lib64",):
        if Path(extra).is_dir():
            found.append(extra)
    return found


def gguf_for_llama(work: Path) -> tuple[Path, str]:
    """The bundled Gemma when its package is here, else its shape twin quantized like it."""
    from engine.chat.default_model import NoDefaultModel, default_model_path

    try:
        return default_model_path(), "bundled Gemma 3 270M Q4_K_M"
    except NoDefaultModel:
        pass
    shape = Path(os.environ.get("LLMDECK_GPU_WHEELS", str(WHEELS_DIR))) / GEMMA_SHAPE
    if not shape.is_file():
        raise PartSkipped(f"the bundled Gemma is not installed and {shape} is missing (bench/gpu_wheels.sh writes it)")
    sys.path.insert(0, str(ROOT / "bench"))
    from gguf_twin import write_twin

    f16 = work / "gguf" / "gemma-twin-f16.gguf"
    f16.parent.mkdir(parents=True, exist_ok=True)
    write_twin(shape, f16)
    q4 = work / "gguf" / "gemma-twin-q4_k_m.gguf"
    proc = subprocess.run([sys.executable, "-m", "tui.cli", "convert", "quantize", str(f16), "--type", "Q4_K_M",
                           "-o", str(q4), "--no-verify"], check=False, capture_output=True, text=True, cwd=str(ROOT),
                          timeout=300)
    if proc.returncode or not q4.is_file():
        raise RuntimeError(f"llmdeck convert quantize failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    f16.unlink()
    return q4, "twin of the bundled Gemma 3 270M (same shapes and quant types, random weights), Q4_K_M"


def part_llama(work: Path, out: Outcome) -> None:
    import llama_cpp

    out.figures["llama_cpp"] = getattr(llama_cpp, "__version__", "?")
    if not llama_cpp.llama_supports_gpu_offload():
        raise RuntimeError("this llama-cpp-python build has no GPU offload (a CPU build); carry the CUDA wheel "
                           "(bench/gpu_wheels.sh builds it)")
    model, what = gguf_for_llama(work)
    out.figures["model"] = what
    runs = {}
    for label, layers, visible in (("gpu", 99, None), ("cpu", 0, "")):
        env = dict(os.environ)
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible  # no GPU at all: no offloaded big matmuls either
        cmd = [sys.executable, "-m", "tui.cli", "bench", str(model), "--gpu-layers", str(layers), "--prompt-len", "512",
               "--gen", "128", "--reps", "3", "--json"]
        if label == "cpu":
            cmd += ["--threads", str(os.cpu_count() or 1)]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=str(ROOT), env=env, timeout=240)
        if proc.returncode:
            raise RuntimeError(f"llmdeck bench ({label}) exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
        record = json.loads(proc.stdout)
        result = record.get("result", record)
        runs[label] = {"pp_tokens_per_s": round(result["prompt_tps"]["median"], 1),
                       "tg_tokens_per_s": round(result["gen_tps"]["median"], 1),
                       "ttft_ms": round(result["ttft_s"]["median"] * 1000, 1),
                       "gpu_layers": (result.get("details") or {}).get("gpu_layers", layers)}
    out.figures.update(gpu=runs["gpu"], cpu=runs["cpu"],
                       pp_speedup=round(runs["gpu"]["pp_tokens_per_s"] / runs["cpu"]["pp_tokens_per_s"], 2),
                       tg_speedup=round(runs["gpu"]["tg_tokens_per_s"] / runs["cpu"]["tg_tokens_per_s"], 2))
    out.check("GPU offload is faster at decoding than the CPU", out.figures["tg_speedup"] > 1.0,
              f"{out.figures['tg_speedup']}x")
    gpu, cpu = runs["gpu"], runs["cpu"]
    out.summary = (f"{what.split(',')[0]}: pp512 {gpu['pp_tokens_per_s']:.0f} vs {cpu['pp_tokens_per_s']:.0f} "
                   f"tok/s ({out.figures['pp_speedup']}x), tg128 {gpu['tg_tokens_per_s']:.0f} vs "
                   f"{cpu['tg_tokens_per_s']:.0f} tok/s ({out.figures['tg_speedup']}x), GPU vs {os.cpu_count()} "
                   "CPU threads")


RUNNERS["llama"] = part_llama


# -- serve --------------------------------------------------------------------------------------
def part_serve(work: Path, out: Outcome) -> None:
    import asyncio

    sys.path.insert(0, str(ROOT / "bench"))
    import serve as serve_bench  # bench/serve.py: the same load generator as the CPU benchmark

    from engine.ports import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "tui.cli", "serve", str(work / "models" / "chat"), "--engine", "transformers",
           "--port", str(port), "--max-queue", str(4 * SERVE_CLIENTS), "--max-tokens", str(SERVE_MAX_TOKENS)]
    log = open(work / "logs" / "serve-server.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        serve_bench.wait_healthy(f"{base}/v1/models", server, 120)
        began = time.perf_counter()
        # one client for a second: its first request compiles the decoding (minutes are allowed)
        warm = asyncio.run(serve_bench.load(base, "warm-up", 1, 1.0, SERVE_MAX_TOKENS, 180.0))
        out.figures["warmup_s"] = round(time.perf_counter() - began, 1)
        out.check("warm-up requests answered", warm.requests >= 1 and not warm.errors,
                  "; ".join(warm.error_samples[:1]) or f"{warm.requests} requests")
        result = asyncio.run(serve_bench.load(base, "llmdeck serve", SERVE_CLIENTS, SERVE_SECONDS,
                                              SERVE_MAX_TOKENS, 120.0))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()
    row = result.row()
    out.figures.update({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "server"})
    out.figures.update(clients=SERVE_CLIENTS, seconds=SERVE_SECONDS, max_tokens=SERVE_MAX_TOKENS)
    out.check("no errors", row["errors"] == 0, "; ".join(row["error_samples"]))
    out.check("requests answered", row["requests"] > 0, str(row["requests"]))
    out.summary = (f"{SERVE_CLIENTS} clients, {row['requests']} requests, {row['errors']} errors, "
                   f"{row['tokens_per_s']:.0f} tok/s, p50 latency {_fmt_s(row['p50_latency_s'])}, "
                   f"p50 TTFT {_fmt_s(row['p50_ttft_s'])}")


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


RUNNERS["serve"] = part_serve


# -- bench/train.py -----------------------------------------------------------------------------
def part_train_bench(work: Path, out: Outcome) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "train.py"), "--device", "cuda", "--reps", "2", "--steps", "20",
           "--hidden", "1024", "--layers", "8", "--seq", "512", "--batch", "8", "--json"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=str(ROOT), timeout=600)
    if proc.returncode:
        raise RuntimeError(f"bench/train.py exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    report = json.loads(proc.stdout)
    keep = ("ratio_ours_over_plain", "best_ratio_ours_over_plain", "ours_tokens_per_s", "plain_tokens_per_s",
            "packing_gain", "same_final_loss", "peak_gib", "mfu", "tokens_per_run", "params")
    out.figures.update({k: report.get(k) for k in keep})
    out.check("same final loss as the plain script", bool(report.get("same_final_loss")))
    out.check("llmdeck run >= 0.95x plain Trainer+peft", report["ratio_ours_over_plain"] >= 0.95,
              f"{report['ratio_ours_over_plain']:.3f}")
    out.summary = (f"llmdeck {report['ours_tokens_per_s']:,.0f} vs plain {report['plain_tokens_per_s']:,.0f} tok/s = "
                   f"{report['ratio_ours_over_plain']:.3f}x (best of runs {report['best_ratio_ours_over_plain']:.3f}x)")


RUNNERS["train-bench"] = part_train_bench


# -- the estimator against measured steps -------------------------------------------------------
# (label, (hidden, intermediate, layers, heads, kv heads, vocab, tied), method, batch, seq, checkpointing):
# public Llama shapes from 160M to 8B at the two settings issue 18 found off (LoRA without
# checkpointing at 4 x 2048, full bf16 at 1 x 512) and one that was right (LoRA + checkpointing)
ESTIMATE_GRID: tuple[tuple[str, tuple[int, int, int, int, int, int, bool], str, int, int, bool], ...] = (
    ("llama-160m LoRA 4x2048", (768, 3072, 12, 12, 12, 32000, False), "lora", 4, 2048, False),
    ("llama-160m full bf16 1x512", (768, 3072, 12, 12, 12, 32000, False), "full", 1, 512, False),
    ("llama-3.2-1b LoRA 4x2048", (2048, 8192, 16, 32, 8, 128256, True), "lora", 4, 2048, False),
    ("llama-3.2-1b LoRA+ckpt 4x2048", (2048, 8192, 16, 32, 8, 128256, True), "lora", 4, 2048, True),
    ("llama-3.2-1b full bf16 1x512", (2048, 8192, 16, 32, 8, 128256, True), "full", 1, 512, False),
    ("llama-3-8b full bf16 1x512", (4096, 14336, 32, 32, 8, 128256, False), "full", 1, 512, False),
)


def part_estimate(work: Path, out: Outcome) -> None:
    import torch

    from engine.estimate import ModelSpec, estimate_training
    from engine.estimate.measure import measure_llama_step

    rows = []
    for label, (h, i, layers, nh, nkv, vocab, tied), method, b, s, ckpt in ESTIMATE_GRID:
        spec = ModelSpec(label, layers, h, i, nh, nkv, vocab, tie_embeddings=tied)
        est = estimate_training(spec, method=method, precision="bf16", batch=b, seq_len=s, grad_checkpointing=ckpt,
                                lora_rank=8, lora_dropout=0.05, optimizer_impl="fused", cuda_context_gib=0.0)
        stats: dict[str, int] = {}
        try:
            peak = measure_llama_step(h, i, layers, nh, nkv, vocab, b, s, mode="train", precision="bf16",
                                      method=method, ckpt=ckpt, rank=8, device="cuda", tied=tied, stats=stats)
        except torch.OutOfMemoryError:
            out.check(label, False, "CUDA out of memory")
            continue
        finally:
            torch.cuda.empty_cache()
        error = est.allocated_bytes / peak - 1
        gib = 2**30
        rows.append({"case": label, "measured_gib": round(peak / gib, 3),
                     "requested_gib": round(stats.get("requested", 0) / gib, 3),
                     "reserved_gib": round(stats.get("reserved", 0) / gib, 3),
                     "predicted_gib": round(est.allocated_bytes / gib, 3), "error_pct": round(100 * error, 1),
                     "phase": est.peak_phase, "params": spec.params})
        out.check(f"{label} within 10%", abs(error) <= 0.10,
                  f"predicted {est.allocated_bytes / gib:.2f} GiB, measured {peak / gib:.2f} GiB ({100 * error:+.1f}%)")
    out.figures["cases"] = rows
    within = sum(1 for r in rows if abs(r["error_pct"]) <= 10)
    out.summary = f"{within}/{len(ESTIMATE_GRID)} within 10%: " + ", ".join(
        f"{r['case']} {r['error_pct']:+.1f}%" for r in rows)


RUNNERS["estimate"] = part_estimate


if __name__ == "__main__":
    sys.exit(main())
