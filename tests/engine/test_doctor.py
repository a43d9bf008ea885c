"""`llmdeck doctor`: this very machine, the real H200 NVML recording, and machines that do not exist here."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

from engine import doctor, llama_build
from engine.doctor import LlamaFacts, NvccFacts, NvmlFacts, Probes, TorchFacts, run_checks
from engine.monitor.record import FixtureNvml
from tests.helpers.fixtures import NVML_H200
from tests.helpers.requirements import require_module

ROOT = Path(__file__).resolve().parents[2]


def llmdeck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL)


def fake_machine(**changes) -> Probes:
    """A CPU box with everything llmdeck needs installed; each test changes what it is about."""
    base = Probes(
        python=lambda: ("3.11.9", "/venv/bin/python"),
        version=lambda dist: None,
        gpus=lambda: [],
        nvcc=lambda: None,
        nvml=lambda: NvmlFacts(reason="no NVIDIA driver here (libnvidia-ml.so.1 not found)"),
        torch=lambda: TorchFacts("2.13.0+cpu"),
        torch_gpus=lambda: (_ for _ in ()).throw(AssertionError("torch must not be imported for this machine")),
        llama=lambda: LlamaFacts("0.3.36", offload=False),
        disk=lambda path: (100e9, 200e9),
        memory=lambda: (20e9, 24e9),
    )
    return replace(base, **changes)


def check(report, name: str):
    return report.get(name)


def test_this_machine_as_it_is(tmp_path: Path) -> None:
    """The real probes here: the CI kind of box has the CUDA toolkit and no GPU (the issue's machine)."""
    out = llmdeck("doctor", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["format"] == "llmdeck-doctor/1" and data["summary"] == {
        s: sum(c["status"] == s for c in data["checks"]) for s in ("ok", "warning", "missing")}
    checks = {c["name"]: c for c in data["checks"]}
    assert list(checks) == ["python", "nvidia-driver", "cuda-toolkit", "torch", "llama-cpp", "bitsandbytes", "vllm",
                            "flash-attn", "disk", "ram", "settings", "data-folder"]
    llama_cpp = require_module("llama_cpp")
    import torch

    gpu = bool(llama_build.nvidia_gpus())
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    assert checks["llama-cpp"]["facts"]["gpu_offload"] is offload
    assert checks["torch"]["facts"]["cuda"] == torch.version.cuda
    assert checks["cuda-toolkit"]["facts"]["nvcc"] == shutil.which("nvcc")
    free = shutil.disk_usage(tmp_path).free
    assert abs(checks["disk"]["facts"]["free"] - free) < 5e9
    if not gpu and shutil.which("nvcc"):  # this machine: nvcc, no GPU
        llama = checks["llama-cpp"]
        assert llama["status"] == "ok" and "CPU build" in llama["detail"] and not offload
        assert "a CUDA build is not possible here: nvcc is present but no NVIDIA GPU is visible" in llama["detail"]
        assert checks["torch"]["status"] == "ok" and "CPU build" in checks["torch"]["detail"]
        assert checks["torch"]["facts"]["import_seconds"] is None  # torch was not imported
        assert checks["nvidia-driver"]["status"] == "missing" and "no NVIDIA GPU" in checks["nvidia-driver"]["detail"]
        assert "QLoRA needs an NVIDIA GPU" in checks["bitsandbytes"]["detail"]
    text = llmdeck("doctor")
    assert text.returncode == 0 and "llama-cpp" in text.stdout and text.stdout.rstrip().endswith("s)")


def test_the_h200_recording_feeds_the_nvml_check() -> None:
    reading = json.loads(NVML_H200.read_text())["readings"]["idle"]
    facts = doctor.nvml_facts(FixtureNvml(reading))
    assert facts == NvmlFacts(driver="580.159.04", cuda="13.0", gpus=(("NVIDIA H200", 150754820096),))
    nvcc = NvccFacts("/usr/bin/nvcc", "13.0")
    report = run_checks(fake_machine(nvml=doctor.replay_nvml(NVML_H200), nvcc=lambda: nvcc))
    driver = check(report, "nvidia-driver")
    assert driver.status == "ok"
    assert driver.detail == "driver 580.159.04 (runs CUDA 13.0 and older); 1 GPU: NVIDIA H200 140.4 GiB"
    torch = check(report, "torch")
    assert torch.status == "warning" and "download.pytorch.org/whl/cu130" in torch.fix and "torch==2.13.0" in torch.fix
    llama = check(report, "llama-cpp")
    assert llama.status == "warning" and "NVIDIA H200" in llama.detail
    assert llama.fix == ("CMAKE_ARGS=-DGGML_CUDA=on /venv/bin/python -m pip install --no-cache-dir --force-reinstall "
                         f"--no-deps {shlex.quote(llama_build.requirement())}")


def test_cli_replays_the_h200_and_refuses_a_bad_file(tmp_path: Path) -> None:
    out = llmdeck("doctor", "--replay", str(NVML_H200), "--json")
    assert out.returncode == 0, out.stderr
    driver = next(c for c in json.loads(out.stdout)["checks"] if c["name"] == "nvidia-driver")
    assert driver["facts"]["driver"] == "580.159.04" and driver["facts"]["gpus"][0]["name"] == "NVIDIA H200"
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"format": "llmdeck-monitor/1"}\n')
    out = llmdeck("doctor", "--replay", str(bad))
    assert out.returncode == 2 and out.stderr.startswith("llmdeck: error: ") and "raw NVML recording" in out.stderr
    assert "Traceback" not in out.stderr


def test_cuda_toolkit_without_gpu_keeps_the_cpu_build() -> None:
    report = run_checks(fake_machine(nvcc=lambda: NvccFacts("/usr/local/bin/nvcc", "13.0")))
    llama = check(report, "llama-cpp")
    assert llama.status == "ok" and not llama.fix and "nvcc is present but no NVIDIA GPU is visible" in llama.detail
    assert check(report, "cuda-toolkit").status == "ok" and "no NVIDIA GPU" in check(report, "cuda-toolkit").detail
    assert check(report, "vllm").status == "missing" and not check(report, "vllm").fix


def test_gpu_box_with_everything_right() -> None:
    report = run_checks(fake_machine(
        gpus=lambda: ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)"],
        nvcc=lambda: NvccFacts("/usr/local/cuda/bin/nvcc", "12.8"),
        nvml=lambda: NvmlFacts(driver="570.1", cuda="12.8", gpus=(("NVIDIA H100 80GB HBM3", 85e9),)),
        torch=lambda: TorchFacts("2.13.0+cu128", cuda="12.8"),
        torch_gpus=lambda: TorchFacts("2.13.0+cu128", cuda="12.8", gpus=("NVIDIA H100 80GB HBM3",), import_seconds=1.9),
        llama=lambda: LlamaFacts("0.3.36", offload=True),
        version={"bitsandbytes": "0.48.0", "vllm": "0.11.0", "flash-attn": "2.8.3"}.get,
    ))
    assert [c.name for c in report.checks if c.status != "ok"] == []
    assert "imported torch to ask: 1.9 s" in check(report, "torch").detail
    assert "QLoRA (4-bit) training works here" in check(report, "bitsandbytes").detail


def test_gpu_box_with_cpu_builds_says_what_to_run() -> None:
    report = run_checks(fake_machine(
        gpus=lambda: ["GPU 0: NVIDIA L4 (UUID: GPU-2)"],
        nvml=lambda: NvmlFacts(driver="550.1", cuda="12.4", gpus=(("NVIDIA L4", 24e9),)),
    ))
    assert check(report, "cuda-toolkit").status == "warning"
    assert "download.pytorch.org/whl/cu124" in check(report, "torch").fix
    llama = check(report, "llama-cpp")
    assert llama.status == "warning" and "nvcc is not" in llama.detail and "-DGGML_CUDA=on" in llama.fix
    assert check(report, "bitsandbytes").fix == ""  # torch is a CPU build: QLoRA needs that fixed first
    assert check(report, "vllm").fix == "/venv/bin/python -m pip install vllm"
    assert check(report, "flash-attn").status == "missing"


def test_llama_that_cannot_load_and_llama_missing() -> None:
    broken = run_checks(fake_machine(llama=lambda: LlamaFacts("0.3.36", None, "OSError: libcuda.so.1: cannot open")))
    llama = check(broken, "llama-cpp")
    assert llama.status == "warning" and "libcuda.so.1" in llama.detail and llama.fix.startswith("CMAKE_ARGS='' ")
    missing = check(run_checks(fake_machine(llama=lambda: LlamaFacts(None))), "llama-cpp")
    assert missing.status == "missing" and "--force-reinstall" not in missing.fix and "--no-cache-dir" in missing.fix


def test_settings_are_checked_without_renaming_anything(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    settings = folder / "settings.toml"
    assert check(run_checks(fake_machine(), settings_path=settings, data_dir=tmp_path / "d"), "settings").status == "ok"
    settings.write_text("[monitor]\ninterval = 'fast'\n")
    bad = check(run_checks(fake_machine(), settings_path=settings, data_dir=tmp_path / "d"), "settings")
    assert bad.status == "warning" and "monitor.interval: expected a number from 0.1 to 60, got 'fast'" in bad.detail
    assert str(settings) in bad.fix
    settings.write_text("this is [not toml")
    broken = check(run_checks(fake_machine(), settings_path=settings, data_dir=tmp_path / "d"), "settings")
    assert broken.status == "warning" and "not valid TOML" in broken.detail
    assert settings.read_text() == "this is [not toml" and [p.name for p in folder.iterdir()] == ["settings.toml"]
    (folder / "settings.toml.corrupt-20261201-101010").write_text("old")
    settings.unlink()
    aside = check(run_checks(fake_machine(), settings_path=settings, data_dir=tmp_path / "d"), "settings")
    assert aside.status == "warning" and "settings.toml.corrupt-20261201-101010" in aside.detail


def test_data_folder_disk_and_memory(tmp_path: Path) -> None:
    (tmp_path / "data" / "runs" / "r1").mkdir(parents=True)
    ok = run_checks(fake_machine(), data_dir=tmp_path / "data", settings_path=tmp_path / "s.toml")
    assert check(ok, "data-folder").status == "ok" and "1 run" in check(ok, "data-folder").detail
    (tmp_path / "file").write_text("")
    blocked = run_checks(fake_machine(disk=lambda p: (3e9, 200e9), memory=lambda: (1e9, 4e9)),
                         data_dir=tmp_path / "file" / "data", settings_path=tmp_path / "s.toml")
    assert check(blocked, "data-folder").status == "missing" and "LLMDECK_HOME" in check(blocked, "data-folder").fix
    assert check(blocked, "disk").status == "warning" and "2.8 GiB free" in check(blocked, "disk").detail
    assert check(blocked, "ram").status == "warning"


def test_install_commands_match_the_extras() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["qlora"] == [doctor.QLORA_REQUIREMENT] and extras["vllm"] == [doctor.VLLM_REQUIREMENT]
