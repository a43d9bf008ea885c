"""`llmdeck doctor`: what will work on this machine, and the command that fixes the rest.

Like `python -m torch.utils.collect_env`, `accelerate env` and `vllm collect-env`, but each line is
a verdict for llmdeck (ok / warning / missing) with the exact command that fixes it. It must stay
fast (a few seconds) and load no model: versions come from package metadata, torch's CUDA build
from its `version.py` file, llama.cpp's GPU offload from a child process; torch itself is imported
(in a child, about 2 s) only to count the GPUs a CUDA build of it sees.

Every probe of the machine is a field of `Probes`, so the checks are pure functions of what the
probes return: tests feed them the real H200 NVML recording or a machine that does not exist.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import engine
from engine import llama_build, paths
from engine.monitor.format import size as _gb

FORMAT = "llmdeck-doctor/1"
OK, WARNING, MISSING = "ok", "warning", "missing"
# Optional extras of pyproject.toml, as pip requirements (tests check they match the file).
QLORA_REQUIREMENT = "bitsandbytes"
VLLM_REQUIREMENT = "vllm"
FLASH_ATTN_INSTALL = "pip install flash-attn --no-build-isolation"
DISK_LOW_BYTES = 20e9  # a 7B model in bf16 is about 15 GB, and a conversion writes another copy
RAM_LOW_BYTES = 8e9
# CUDA variants PyTorch publishes wheels for (download.pytorch.org/whl/cuXYZ), newest last.
TORCH_CUDA_VARIANTS = (118, 121, 124, 126, 128, 129, 130)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warning | missing
    detail: str  # one line: what is there, and what it means for llmdeck
    fix: str = ""  # the exact command that fixes it; "" when nothing needs fixing or no command can
    facts: dict[str, Any] = field(default_factory=dict)  # machine-readable details (versions, counts)


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]
    time: float
    seconds: float  # how long the checks took

    def summary(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in (OK, WARNING, MISSING)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "time": round(self.time, 2),
            "llmdeck": engine.__version__,
            "platform": f"{platform.system()} {platform.machine()}",
            "seconds": round(self.seconds, 2),
            "checks": [asdict(c) for c in self.checks],
            "summary": self.summary(),
        }

    def get(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


# -- facts the probes return ---------------------------------------------------------------------


@dataclass(frozen=True)
class NvmlFacts:
    reason: str = ""  # why NVML gives nothing ("" when it works)
    driver: str = ""
    cuda: str = ""  # the newest CUDA the driver runs, "13.0"
    gpus: tuple[tuple[str, int], ...] = ()  # (name, memory_total bytes)
    module: bool = True  # the pynvml module (nvidia-ml-py) is installed


@dataclass(frozen=True)
class TorchFacts:
    version: str | None  # None: not installed
    cuda: str | None = None  # the CUDA version torch was built with; None for a CPU build
    gpus: tuple[str, ...] | None = None  # the GPUs torch sees; None when not counted
    import_seconds: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class LlamaFacts:
    version: str | None
    offload: bool | None = None  # llama_supports_gpu_offload(); None when it cannot be imported
    error: str = ""


@dataclass(frozen=True)
class NvccFacts:
    path: str
    version: str = ""


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def torch_build(version_of: Callable[[str], str | None] = installed_version) -> TorchFacts:
    """torch's version and CUDA build, read from its `version.py` without importing torch."""
    version = version_of("torch")
    if version is None:
        return TorchFacts(None)
    cuda = None
    try:
        text = Path(str(metadata.distribution("torch").locate_file("torch/version.py"))).read_text(encoding="utf-8")
        match = re.search(r"^cuda\s*(?::[^=\n]*)?=\s*(.+)$", text, re.M)
        cuda = ast.literal_eval(match.group(1).strip()) if match else None
    except (OSError, ValueError, SyntaxError, metadata.PackageNotFoundError):
        cuda = None
    return TorchFacts(version, cuda=cuda)


def torch_gpus(python: str = sys.executable) -> TorchFacts:
    """Import torch in a child process and list the GPUs it sees (about 2 s: only when it matters)."""
    facts = torch_build()
    code = (
        "import json, torch; n = torch.cuda.device_count() if torch.cuda.is_available() else 0; "
        "print(json.dumps([torch.cuda.get_device_name(i) for i in range(n)]))"
    )
    started = time.monotonic()
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return TorchFacts(facts.version, facts.cuda, error=str(exc))
    seconds = time.monotonic() - started
    try:
        names = tuple(json.loads(out.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        errors = out.stderr.strip().splitlines()
        error = errors[-1] if errors else "no output"
        return TorchFacts(facts.version, facts.cuda, import_seconds=seconds, error=error)
    return TorchFacts(facts.version, facts.cuda, gpus=names, import_seconds=seconds)


def llama_facts(python: str = sys.executable) -> LlamaFacts:
    version = installed_version("llama-cpp-python")
    if version is None:
        return LlamaFacts(None)
    offload, error = llama_build.probe_offload(python)
    return LlamaFacts(version, offload, error)


def nvml_facts(nvml: Any = None) -> NvmlFacts:
    """The driver and GPUs as NVML reports them, through the Monitor's own NVML code.
    `nvml` stands in for the pynvml module (engine.monitor.record.FixtureNvml replays a recording)."""
    from engine.monitor.nvml import NvmlSampler

    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return NvmlFacts(reason="the pynvml module (pip package nvidia-ml-py) is not installed", module=False)
    sampler = NvmlSampler(nvml)
    if not sampler.open():
        return NvmlFacts(reason=sampler.reason.removeprefix("No GPU panel: ").rstrip("."))
    try:
        gpus, _procs = sampler.sample()
        try:
            cuda_int = int(nvml.nvmlSystemGetCudaDriverVersion())
            cuda = f"{cuda_int // 1000}.{cuda_int % 1000 // 10}"
        except (nvml.NVMLError, AttributeError, TypeError, ValueError):
            cuda = ""
    finally:
        sampler.close()
    listed = tuple((str(g.name), int(g.memory_total) if isinstance(g.memory_total, int) else 0) for g in gpus)
    return NvmlFacts(driver=str(sampler.driver), cuda=cuda, gpus=listed)


def nvcc_facts() -> NvccFacts | None:
    path = shutil.which("nvcc")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    match = re.search(r"release (\d+\.\d+)", out)
    return NvccFacts(path, match.group(1) if match else "")


def disk_usage(path: Path) -> tuple[int, int]:
    """(free, total) bytes of the file system that holds `path` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    return usage.free, usage.total


def memory() -> tuple[int, int]:
    """(available, total) bytes of RAM."""
    import psutil

    mem = psutil.virtual_memory()
    return mem.available, mem.total


@dataclass
class Probes:
    """Everything the checks ask the machine; tests replace any of them."""

    python: Callable[[], tuple[str, str]] = lambda: (platform.python_version(), sys.executable)
    version: Callable[[str], str | None] = installed_version
    gpus: Callable[[], list[str]] = llama_build.nvidia_gpus  # `nvidia-smi -L`, or /dev/nvidia0
    nvcc: Callable[[], NvccFacts | None] = nvcc_facts
    nvml: Callable[[], NvmlFacts] = nvml_facts
    torch: Callable[[], TorchFacts] = torch_build  # cheap: no import
    torch_gpus: Callable[[], TorchFacts] = torch_gpus  # imports torch: called only for a CUDA build with a GPU
    llama: Callable[[], LlamaFacts] = llama_facts
    disk: Callable[[Path], tuple[int, int]] = disk_usage
    memory: Callable[[], tuple[int, int]] = memory


# -- the checks ----------------------------------------------------------------------------------


def _pip(python: str, *requirements: str) -> str:
    return " ".join([shlex.quote(python), "-m", "pip", "install", *(shlex.quote(r) for r in requirements)])


def check_python(version: str, executable: str) -> Check:
    parts = tuple(int(p) for p in version.split(".")[:2])
    if parts >= (3, 11):
        return Check("python", OK, f"{version} at {executable}", facts={"version": version, "executable": executable})
    return Check("python", MISSING, f"{version} at {executable}: llmdeck needs Python 3.11 or newer",
                 "python3.11 -m venv .venv && .venv/bin/pip install -e .",
                 {"version": version, "executable": executable})


def check_driver(nvml: NvmlFacts, gpus: Sequence[str], python: str) -> Check:
    facts = {"driver": nvml.driver or None, "cuda": nvml.cuda or None,
             "gpus": [{"name": n, "memory_total": m} for n, m in nvml.gpus], "visible": list(gpus)}
    if not nvml.module:
        return Check("nvidia-driver", MISSING, f"{nvml.reason}: the Monitor cannot show GPUs",
                     _pip(python, "nvidia-ml-py"), facts)
    if nvml.gpus:
        names = ", ".join(f"{n} {_gb(m)}" if m else n for n, m in nvml.gpus[:4])
        names += " …" if len(nvml.gpus) > 4 else ""
        cuda = f" (runs CUDA {nvml.cuda} and older)" if nvml.cuda else ""
        count = f"{len(nvml.gpus)} GPU{'s' if len(nvml.gpus) != 1 else ''}"
        return Check("nvidia-driver", OK, f"driver {nvml.driver}{cuda}; {count}: {names}", facts=facts)
    if gpus:
        return Check("nvidia-driver", WARNING, f"{gpus[0]} is there but NVML gives nothing: {nvml.reason}; "
                     "install or reload the NVIDIA driver until `nvidia-smi` lists the GPU", facts=facts)
    return Check("nvidia-driver", MISSING, f"no NVIDIA GPU on this machine: {nvml.reason}; training, chat and "
                 "serving run on the CPU", facts=facts)


def check_nvcc(nvcc: NvccFacts | None, gpu: bool) -> Check:
    if nvcc is not None:
        used = "builds llama.cpp with CUDA" if gpu else "unused here: no NVIDIA GPU to build llama.cpp for"
        return Check("cuda-toolkit", OK, f"nvcc {nvcc.version or '(version unknown)'} at {nvcc.path}; {used}",
                     facts={"nvcc": nvcc.path, "version": nvcc.version or None})
    if gpu:
        return Check("cuda-toolkit", WARNING, "no nvcc: llama.cpp cannot be built with CUDA; install the CUDA "
                     "toolkit (https://developer.nvidia.com/cuda-downloads) and put nvcc on the PATH",
                     facts={"nvcc": None})
    return Check("cuda-toolkit", MISSING, "no nvcc; not needed without an NVIDIA GPU", facts={"nvcc": None})


def torch_index(driver_cuda: str) -> str:
    """PyTorch's wheel index for the newest CUDA variant the driver can run."""
    try:
        major, minor = (int(p) for p in driver_cuda.split(".")[:2])
        fits = [v for v in TORCH_CUDA_VARIANTS if v <= major * 10 + minor]
    except ValueError:
        fits = []
    return f"https://download.pytorch.org/whl/cu{(fits or TORCH_CUDA_VARIANTS)[-1]}"


def check_torch(torch: TorchFacts, gpu: bool, nvml: NvmlFacts, python: str) -> Check:
    facts = {"version": torch.version, "cuda": torch.cuda, "gpus": list(torch.gpus) if torch.gpus is not None else None,
             "import_seconds": round(torch.import_seconds, 2) if torch.import_seconds else None}
    base = (torch.version or "2.13.0").split("+")[0]
    cuda_fix = f"{_pip(python, '--force-reinstall', f'torch=={base}')} --index-url {torch_index(nvml.cuda)}"
    if torch.version is None:
        fix = cuda_fix if gpu else _pip(python, "torch==2.13.0")
        return Check("torch", MISSING, "not installed: no training, no transformers models", fix, facts)
    if torch.cuda is None:
        if gpu:
            return Check("torch", WARNING, f"{torch.version}, a CPU build: training and transformers models run on the "
                         "CPU although an NVIDIA GPU is here", cuda_fix, facts)
        return Check("torch", OK, f"{torch.version}, CPU build: right for a machine without an NVIDIA GPU", facts=facts)
    if not gpu:
        return Check("torch", OK, f"{torch.version}, CUDA {torch.cuda} build; no NVIDIA GPU here, so it runs on "
                     "the CPU", facts=facts)
    cost = f" (imported torch to ask: {torch.import_seconds:.1f} s)" if torch.import_seconds else ""
    if torch.gpus:
        return Check("torch", OK, f"{torch.version}, CUDA {torch.cuda} build, sees {len(torch.gpus)} GPU"
                     f"{'s' if len(torch.gpus) != 1 else ''}: {', '.join(torch.gpus)}{cost}", facts=facts)
    runs = f" (it runs {nvml.cuda})" if nvml.cuda else ""
    why = torch.error or f"the driver may be too old for CUDA {torch.cuda}{runs}"
    return Check("torch", WARNING, f"{torch.version}, CUDA {torch.cuda} build, sees no GPU: {why}{cost}", cuda_fix,
                 facts)


def check_llama(llama: LlamaFacts, gpus: Sequence[str], nvcc: NvccFacts | None, python: str) -> Check:
    gpu = bool(gpus)
    facts = {"version": llama.version, "gpu_offload": llama.offload, "cuda_build_possible": bool(gpu and nvcc)}
    installed = llama.version is not None
    cuda_fix = llama_build.rebuild_command(python, llama_build.CUDA_ARGS, installed=installed)
    cpu_fix = llama_build.rebuild_command(python, "", installed=installed)
    right_fix = cuda_fix if gpu and nvcc else cpu_fix
    if llama.version is None:
        return Check("llama-cpp", MISSING, "llama-cpp-python is not installed: no GGUF chat, serving, quantizing",
                     right_fix, facts)
    if llama.offload is None:
        return Check("llama-cpp", WARNING, f"{llama.version} is installed but cannot be loaded ({llama.error}): "
                     "rebuild it for this machine", right_fix, facts)
    if llama.offload:
        if gpu:
            return Check("llama-cpp", OK, f"{llama.version}, GPU build: layers offload to {gpus[0]} (--gpu-layers)",
                         facts=facts)
        return Check("llama-cpp", WARNING, f"{llama.version}, GPU build, but no NVIDIA GPU is visible: models run on "
                     "the CPU", cpu_fix, facts)
    if gpu and nvcc:
        return Check("llama-cpp", WARNING, f"{llama.version}, CPU build (no GPU offload) although {gpus[0]} and nvcc "
                     "are here: rebuild it with CUDA", cuda_fix, facts)
    if gpu:
        return Check("llama-cpp", WARNING, f"{llama.version}, CPU build (no GPU offload); {gpus[0]} is here but "
                     "nvcc is not: install the CUDA toolkit, then rebuild with CUDA", cuda_fix, facts)
    why = "nvcc is present but no NVIDIA GPU is visible" if nvcc else "no NVIDIA GPU and no CUDA toolkit"
    return Check("llama-cpp", OK, f"{llama.version}, CPU build (no GPU offload), right for this machine; a CUDA build "
                 f"is not possible here: {why}", facts=facts)


def check_bitsandbytes(version: str | None, torch: TorchFacts, gpu: bool, python: str) -> Check:
    facts = {"version": version, "qlora": bool(version and gpu and torch.cuda)}
    if version and facts["qlora"]:
        return Check("bitsandbytes", OK, f"{version}: QLoRA (4-bit) training works here", facts=facts)
    if version:
        return Check("bitsandbytes", WARNING, f"{version} is installed, but QLoRA needs an NVIDIA GPU and a CUDA build "
                     "of torch; use LoRA or full fine-tuning here", facts=facts)
    if gpu and torch.cuda:
        return Check("bitsandbytes", MISSING, "not installed: no QLoRA (4-bit) training",
                     _pip(python, QLORA_REQUIREMENT), facts)
    if gpu:
        return Check("bitsandbytes", MISSING, "not installed; QLoRA also needs a CUDA build of torch (see the torch "
                     f"line), then: {_pip(python, QLORA_REQUIREMENT)}", facts=facts)
    return Check("bitsandbytes", MISSING, "not installed; QLoRA needs an NVIDIA GPU and a CUDA build of torch, which "
                 "this machine lacks (LoRA and full fine-tuning work)", facts=facts)


def check_vllm(version: str | None, gpu: bool, python: str) -> Check:
    facts = {"version": version}
    if version:
        status, note = (OK, "llmdeck serve --engine vllm works") if gpu else (WARNING, "vLLM needs an NVIDIA GPU")
        return Check("vllm", status, f"{version}: {note}", facts=facts)
    if gpu:
        return Check("vllm", MISSING, "not installed: `llmdeck serve` uses llama.cpp or transformers "
                     "(vLLM serves many users on many GPUs)", _pip(python, VLLM_REQUIREMENT), facts)
    return Check("vllm", MISSING, "not installed; vLLM needs Linux and an NVIDIA GPU (`llmdeck serve` uses llama.cpp "
                 "or transformers here)", facts=facts)


def check_flash_attn(version: str | None, torch: TorchFacts, gpu: bool) -> Check:
    facts = {"version": version}
    if version:
        status = OK if gpu and torch.cuda else WARNING
        note = "transformers models can use attn_implementation='flash_attention_2'" if status == OK else (
            "it needs an NVIDIA GPU and a CUDA build of torch")
        return Check("flash-attn", status, f"{version}: {note}", facts=facts)
    if gpu and torch.cuda:
        return Check("flash-attn", MISSING, "not installed: transformers models use torch's SDPA attention (fine; "
                     "flash-attn saves memory on long sequences)", FLASH_ATTN_INSTALL, facts)
    return Check("flash-attn", MISSING, "not installed; it needs an NVIDIA GPU (torch's SDPA attention is used)",
                 facts=facts)


def check_disk(data_dir: Path, free: int, total: int) -> Check:
    facts = {"path": str(data_dir), "free": free, "total": total}
    detail = f"{_gb(free)} free of {_gb(total)} at {data_dir}"
    if free < DISK_LOW_BYTES:
        return Check("disk", WARNING, f"{detail}: models, checkpoints and conversions need room (a 7B model in bf16 is "
                     "15 GB); free some, or keep llmdeck's files on a bigger disk",
                     "export LLMDECK_HOME=/path/on/a/bigger/disk/llmdeck", facts)
    return Check("disk", OK, detail, facts=facts)


def check_memory(available: int, total: int) -> Check:
    facts = {"available": available, "total": total}
    detail = f"{_gb(total)} total, {_gb(available)} available"
    if total < RAM_LOW_BYTES:
        return Check("ram", WARNING, f"{detail}: converting or loading models on the CPU needs several GB (run "
                     "`llmdeck estimate` before big jobs)", facts=facts)
    return Check("ram", OK, detail, facts=facts)


def check_settings(path: Path) -> Check:
    """Read-only: unlike settings.load, a broken file is not renamed here, only reported."""
    import tomllib

    from engine.settings import from_dict

    aside = sorted(p.name for p in path.parent.glob(f"{path.name}.corrupt-*")) if path.parent.is_dir() else []
    facts: dict[str, Any] = {"path": str(path), "exists": path.exists(), "problems": [], "set_aside": aside}
    renamed = (f"; an earlier file that was not TOML was kept as {', '.join(aside)}: copy what you need back into "
               f"{path.name}, then delete it") if aside else ""
    edit = f'"${{EDITOR:-vi}}" {shlex.quote(str(path))}'
    if not path.exists():
        status = WARNING if aside else OK
        return Check("settings", status, f"{path} not written yet: defaults are used{renamed}", facts=facts)
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return Check("settings", WARNING, f"{path} is not valid TOML ({exc}); llmdeck will keep it as "
                     f"{path.name}.corrupt-<time> and use defaults on its next start{renamed}", edit, facts)
    _settings, problems = from_dict(raw)
    facts["problems"] = problems
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return Check("settings", WARNING, f"{path}: {problems[0]}{more}{renamed}", edit, facts)
    return Check("settings", WARNING if aside else OK, f"{path} is valid{renamed}", facts=facts)


def check_data_dir(path: Path) -> Check:
    """Read-only: writable means the folder (or the parent it will be made in) accepts new files."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    runs = sum(1 for p in (path / "runs").iterdir() if p.is_dir()) if (path / "runs").is_dir() else 0
    writable = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
    facts = {"path": str(path), "exists": path.exists(), "writable": writable, "runs": runs}
    if not facts["writable"]:
        return Check("data-folder", MISSING, f"{path}: {existing} is not writable, so runs and chats cannot be kept",
                     "export LLMDECK_HOME=/a/writable/folder/llmdeck", facts)
    state = f"{runs} run{'s' if runs != 1 else ''}" if path.exists() else "will be created on first use"
    return Check("data-folder", OK, f"{path}: writable, {state}", facts=facts)


def run_checks(
    probes: Probes | None = None, *, data_dir: Path | None = None, settings_path: Path | None = None
) -> Report:
    """Every check, in the order a user reads them: the interpreter, the GPU stack, the libraries, the machine."""
    probes = probes or Probes()
    started, now = time.monotonic(), time.time()
    version, python = probes.python()
    nvml = probes.nvml()
    visible = probes.gpus()
    gpus = visible or [name for name, _ in nvml.gpus]
    gpu = bool(gpus)
    nvcc = probes.nvcc()
    torch = probes.torch()
    if torch.version and torch.cuda and gpu:
        torch = probes.torch_gpus()
    data = data_dir or paths.data_dir()
    checks = (
        check_python(version, python),
        check_driver(nvml, visible, python),
        check_nvcc(nvcc, gpu),
        check_torch(torch, gpu, nvml, python),
        check_llama(probes.llama(), gpus, nvcc, python),
        check_bitsandbytes(probes.version("bitsandbytes"), torch, gpu, python),
        check_vllm(probes.version("vllm"), gpu, python),
        check_flash_attn(probes.version("flash-attn"), torch, gpu),
        check_disk(data, *probes.disk(data)),
        check_memory(*probes.memory()),
        check_settings(settings_path or paths.settings_file()),
        check_data_dir(data),
    )
    return Report(checks, now, time.monotonic() - started)


def render_text(report: Report) -> list[str]:
    """The report as terminal lines: a verdict per check, its fix command under it."""
    width = max(len(c.name) for c in report.checks)
    lines = [f"llmdeck {engine.__version__} doctor: what works here, and what to run to fix the rest"]
    for check in report.checks:
        lines.append(f"  {check.status:<8} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"  {'':<8} {'':<{width}}  fix: {check.fix}")
    counts = report.summary()
    lines.append(f"{counts[OK]} ok, {counts[WARNING]} warning(s), {counts[MISSING]} missing "
                 f"(checked in {report.seconds:.1f} s)")
    return lines


def replay_nvml(path: Path) -> Callable[[], NvmlFacts]:
    """An NVML probe answering from a raw NVML recording such as tests/fixtures/nvml_h200.json."""
    from engine.monitor.record import FixtureNvml

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        reading = next(iter(data["readings"].values()))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, StopIteration, AttributeError) as exc:
        raise ValueError(f"{path} is not a raw NVML recording like tests/fixtures/nvml_h200.json ({exc})") from None
    return lambda: nvml_facts(FixtureNvml(reading))
