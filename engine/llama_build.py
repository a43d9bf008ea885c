"""Which llama.cpp build this machine should get, and installing it (`python -m engine.llama_build`).

llama-cpp-python is an sdist: pip compiles llama.cpp with whatever `CMAKE_ARGS` says. Two traps
make a naive install fail or lie:

- The CUDA toolkit without a GPU (CI boxes, build hosts): `-DGGML_CUDA=on` fails to configure
  ("CUDA_ARCHITECTURES is set to native, but no GPU was detected"). So CUDA is chosen from the GPU
  that is there (`nvidia-smi -L` lists one, or /dev/nvidia0 exists) *and* nvcc, never from nvcc
  alone; a CUDA build that fails anyway falls back to the CPU build and says how to retry.
- pip's wheel cache does not key on `CMAKE_ARGS`: a CPU wheel built earlier is silently reused
  for a CUDA request and the other way round. CUDA (and any custom) builds therefore never touch
  the cache (`--no-cache-dir`), so the cache only ever holds CPU wheels, and every install is
  checked afterwards (`llama_supports_gpu_offload()`) against what was asked.

The Makefile runs this module with the virtualenv's Python before installing llmdeck itself;
`llmdeck doctor` uses the same detection and prints the same rebuild command. Standard library
only: it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "llama-cpp-python"
CUDA_ARGS = "-DGGML_CUDA=on"
ENV_OVERRIDE = "LLAMA_CMAKE_ARGS"
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirement() -> str:
    """The llama-cpp-python requirement of pyproject.toml (one source of truth for its floor)."""
    try:
        deps = tomllib.loads(_PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return PACKAGE  # an installed wheel has no pyproject.toml next to it
    return next((d for d in deps if d.replace("_", "-").lower().startswith(PACKAGE)), PACKAGE)


def nvidia_gpus(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[str]:
    """Names of the NVIDIA GPUs this machine shows (`nvidia-smi -L`), or ["/dev/nvidia0"] when only
    the device node is there; [] when there is no GPU to build for."""
    if shutil.which("nvidia-smi"):
        try:
            out = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0:
            gpus = [line.strip() for line in out.stdout.splitlines() if line.startswith("GPU ")]
            if gpus:
                return gpus
    return ["/dev/nvidia0"] if os.path.exists("/dev/nvidia0") else []


@dataclass(frozen=True)
class BuildChoice:
    cmake_args: str  # "" = the CPU build
    reason: str  # one line, for people
    explicit: bool = False  # LLAMA_CMAKE_ARGS was given

    @property
    def cuda(self) -> bool:
        return "GGML_CUDA=on" in self.cmake_args.replace("ON", "on")


def choose(gpus: Sequence[str], nvcc: str | None, env: Mapping[str, str]) -> BuildChoice:
    """The build for this machine: LLAMA_CMAKE_ARGS if set (even empty), else CUDA only with a GPU and nvcc."""
    if ENV_OVERRIDE in env:
        args = env[ENV_OVERRIDE].strip()
        return BuildChoice(args, f"{ENV_OVERRIDE}={args!r} was given", explicit=True)
    if gpus and nvcc:
        return BuildChoice(CUDA_ARGS, f"CUDA build: {gpus[0]} and nvcc ({nvcc})")
    if gpus:
        return BuildChoice("", f"CPU build: {gpus[0]} is there but nvcc is not (install the CUDA toolkit for a "
                           "GPU build)")
    if nvcc:
        return BuildChoice("", f"CPU build: nvcc is here ({nvcc}) but no NVIDIA GPU is visible")
    return BuildChoice("", "CPU build: no NVIDIA GPU and no CUDA toolkit")


def detect(env: Mapping[str, str] | None = None) -> BuildChoice:
    return choose(nvidia_gpus(), shutil.which("nvcc"), os.environ if env is None else env)


def pip_install_args(python: str, cmake_args: str, *, reinstall: bool, no_cache: bool) -> list[str]:
    cmd = [python, "-m", "pip", "install"]
    if no_cache:
        cmd.append("--no-cache-dir")
    if reinstall:
        cmd += ["--force-reinstall", "--no-deps"]  # only llama-cpp-python itself, not numpy & co.
    return cmd + [requirement()]


def rebuild_command(python: str = "python", cmake_args: str = CUDA_ARGS, *, installed: bool = True) -> str:
    """The shell command that (re)builds llama-cpp-python with `cmake_args`, past pip's wheel cache."""
    args = pip_install_args(python, cmake_args, reinstall=installed, no_cache=True)
    cmd = " ".join(shlex.quote(a) for a in args)
    return f"CMAKE_ARGS={shlex.quote(cmake_args)} {cmd}"


def probe_offload(python: str) -> tuple[bool | None, str]:
    """Whether the llama.cpp that `python` imports can offload to a GPU (None: it cannot be imported,
    with the last line of the error). In a child process: a CUDA build on a machine without the
    driver may fail to load, and nothing of it should stay in the caller."""
    probe = "import llama_cpp; print(int(bool(llama_cpp.llama_supports_gpu_offload())))"
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    lines = out.stdout.split()
    if out.returncode == 0 and lines:
        return lines[-1] == "1", ""
    errors = out.stderr.strip().splitlines()
    return None, errors[-1] if errors else f"exit status {out.returncode}"


def installed_offload(python: str) -> bool | None:
    return probe_offload(python)[0]


def _pip(python: str, cmake_args: str, *, reinstall: bool, no_cache: bool) -> int:
    cmd = pip_install_args(python, cmake_args, reinstall=reinstall, no_cache=no_cache)
    env = {**os.environ, "CMAKE_ARGS": cmake_args}
    print(f"llmdeck: CMAKE_ARGS={shlex.quote(cmake_args)} {shlex.join(cmd)}", flush=True)
    return subprocess.run(cmd, env=env).returncode


def install(python: str, choice: BuildChoice, *, force: bool = False) -> int:
    """Install (or keep) the llama.cpp build `choice` asks for; 0 on success."""
    print(f"llmdeck: llama.cpp {choice.reason}", flush=True)
    have = installed_offload(python)
    custom = bool(choice.cmake_args)
    if have is not None and not force and not choice.explicit and have == choice.cuda:
        print(f"llmdeck: {PACKAGE} is already installed with the {'CUDA' if have else 'CPU'} build", flush=True)
        return 0
    if custom:
        rc = _pip(python, choice.cmake_args, reinstall=have is not None, no_cache=True)
        if rc == 0 and (not choice.cuda or installed_offload(python)):
            return 0
        if choice.explicit:
            print(f"llmdeck: the {PACKAGE} build with CMAKE_ARGS={choice.cmake_args!r} failed or cannot use the GPU "
                  "(see above)", file=sys.stderr)
            return rc or 1
        print(
            f"llmdeck: the CUDA build of llama.cpp failed (see above), so it is built for the CPU instead; "
            f"retry with CUDA: {rebuild_command(python)}",
            file=sys.stderr,
            flush=True,
        )
        have = installed_offload(python)
    rc = _pip(python, "", reinstall=have is not None, no_cache=False)
    if rc == 0 and installed_offload(python) is not False:
        # pip's cache held a wheel of another build (it does not key on CMAKE_ARGS): build afresh.
        print(f"llmdeck: the cached {PACKAGE} wheel is not a CPU build; rebuilding it without the cache", flush=True)
        rc = _pip(python, "", reinstall=True, no_cache=True)
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.llama_build",
        description="Install llama-cpp-python built for this machine: CUDA when an NVIDIA GPU and nvcc are "
        f"both there, else the CPU. {ENV_OVERRIDE}='...' sets the CMake arguments yourself ('' = CPU).",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the right build is installed")
    parser.add_argument("--show", action="store_true", help="print the build this machine gets, install nothing")
    args = parser.parse_args(argv)
    choice = detect()
    if args.show:
        print(f"{choice.reason}\nCMAKE_ARGS={shlex.quote(choice.cmake_args)}")
        return 0
    return install(sys.executable, choice, force=args.force)


if __name__ == "__main__":
    sys.exit(main())
