"""Which llama.cpp build a machine gets (engine/llama_build.py, run by the Makefile), and the CPU fallback."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from engine import llama_build
from engine.llama_build import CUDA_ARGS, BuildChoice, choose, install, nvidia_gpus

H200 = "GPU 0: NVIDIA H200 (UUID: GPU-6deba50d-02ba-223d-da5e-005df5ea7760)"


def test_cuda_only_with_a_gpu_and_nvcc() -> None:
    assert choose([H200], "/usr/local/cuda/bin/nvcc", {}).cmake_args == CUDA_ARGS
    toolkit_only = choose([], "/usr/local/bin/nvcc", {})  # this machine, and CI
    assert toolkit_only.cmake_args == ""
    assert "nvcc is here (/usr/local/bin/nvcc) but no NVIDIA GPU" in toolkit_only.reason
    assert choose([H200], None, {}).cmake_args == "" and not choose([], None, {}).cuda


def test_llama_cmake_args_overrides_even_when_empty() -> None:
    assert choose([H200], "/nvcc", {"LLAMA_CMAKE_ARGS": ""}) == BuildChoice("", "LLAMA_CMAKE_ARGS='' was given", True)
    vulkan = choose([], None, {"LLAMA_CMAKE_ARGS": " -DGGML_VULKAN=on "})
    assert vulkan.explicit and vulkan.cmake_args == "-DGGML_VULKAN=on" and not vulkan.cuda


def test_gpus_come_from_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_build.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    listing = subprocess.CompletedProcess([], 0, stdout=f"{H200}\n", stderr="")
    assert nvidia_gpus(lambda *a, **k: listing) == [H200]
    broken = subprocess.CompletedProcess([], 9, stdout="", stderr="NVIDIA-SMI has failed")
    assert nvidia_gpus(lambda *a, **k: broken) == (["/dev/nvidia0"] if os.path.exists("/dev/nvidia0") else [])


def fake_python(tmp_path: Path, *, cuda_builds: bool, cached_cuda_wheel: bool = False) -> tuple[str, Path]:
    """A stand-in interpreter for the orchestration only: `-m pip install` records its arguments and
    CMAKE_ARGS and "installs" (a CUDA build fails unless `cuda_builds`; with `cached_cuda_wheel` a CPU
    request that may use pip's cache gets the CUDA wheel, as pip does); `-c` answers the offload probe."""
    cpu = "echo 0" if not cached_cuda_wheel else 'case "$*" in *--no-cache-dir*) echo 0 ;; *) echo 1 ;; esac'
    log = tmp_path / "pip.log"
    state = tmp_path / "installed"
    cuda = (f"echo 1 > {state}; exit 0" if cuda_builds
            else 'echo "CUDA_ARCHITECTURES is set to native, but no GPU was detected" >&2; exit 1')
    script = tmp_path / "python"
    script.write_text(f"""#!/bin/sh
if [ "$1" = "-c" ]; then
  [ -f {state} ] || {{ echo "ModuleNotFoundError: No module named 'llama_cpp'" >&2; exit 1; }}
  cat {state}; exit 0
fi
echo "CMAKE_ARGS=$CMAKE_ARGS ARGS=$*" >> {log}
case "$CMAKE_ARGS" in
  *GGML_CUDA=on*) {cuda} ;;
  *) {cpu} > {state}; exit 0 ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), log


def test_failed_cuda_build_falls_back_to_the_cpu_and_says_how_to_retry(tmp_path: Path, capsys) -> None:
    python, log = fake_python(tmp_path, cuda_builds=False)
    assert install(python, choose([H200], "/nvcc", {})) == 0
    calls = log.read_text().splitlines()
    assert calls[0].startswith(f"CMAKE_ARGS={CUDA_ARGS} ARGS=-m pip install --no-cache-dir ")  # past the wheel cache
    assert calls[1].startswith("CMAKE_ARGS= ARGS=-m pip install ") and "--no-cache-dir" not in calls[1]
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("llmdeck:")]
    assert len(err) == 1 and "built for the CPU instead" in err[0]
    assert err[0].endswith(f"retry with CUDA: {llama_build.rebuild_command(python)}")


def test_cuda_build_is_kept_and_a_right_build_is_not_redone(tmp_path: Path) -> None:
    python, log = fake_python(tmp_path, cuda_builds=True)
    assert install(python, choose([H200], "/nvcc", {})) == 0
    assert len(log.read_text().splitlines()) == 1
    assert install(python, choose([H200], "/nvcc", {})) == 0  # already the CUDA build: nothing to do
    assert len(log.read_text().splitlines()) == 1


def test_a_cached_wheel_of_the_wrong_build_is_rebuilt_without_the_cache(tmp_path: Path) -> None:
    python, log = fake_python(tmp_path, cuda_builds=True, cached_cuda_wheel=True)
    assert install(python, choose([], "/nvcc", {})) == 0
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and "--no-cache-dir" not in calls[0]
    assert "--no-cache-dir" in calls[1] and "--force-reinstall" in calls[1]
    assert (tmp_path / "installed").read_text().strip() == "0"


def test_a_gpu_build_on_a_machine_without_gpu_is_replaced(tmp_path: Path) -> None:
    python, log = fake_python(tmp_path, cuda_builds=True)
    (tmp_path / "installed").write_text("1\n")
    assert install(python, choose([], "/nvcc", {})) == 0
    assert "--force-reinstall" in log.read_text() and (tmp_path / "installed").read_text().strip() == "0"


def test_an_explicit_build_that_fails_fails(tmp_path: Path) -> None:
    python, _log = fake_python(tmp_path, cuda_builds=False)
    assert install(python, choose([], None, {"LLAMA_CMAKE_ARGS": CUDA_ARGS})) != 0
    assert not (tmp_path / "installed").exists()
