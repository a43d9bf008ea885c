# Two commands do all the set-up: `make run` (the TUI) and `make test` (the test suite).
# Each creates .venv and installs what it needs on first use; later calls are instant.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch first, pinned: on a CPU box this takes the CPU build, and it stops pip from pulling a
# multi-GB CUDA build as a side effect of resolving transformers/peft.
TORCH ?= torch==2.13.0
# llama-cpp-python compiles llama.cpp (about 15 min on 2 cores the first time). engine/llama_build.py
# picks the build from the GPU that is there: CUDA only when an NVIDIA GPU is visible and nvcc exists,
# else the CPU (a failed CUDA build falls back to the CPU and prints the command to retry).
# LLAMA_CMAKE_ARGS (on the command line or in the environment, which make passes on) overrides the
# choice: `make llama LLAMA_CMAKE_ARGS="-DGGML_CUDA=on"` rebuilds it with your own CMake arguments ("" = CPU).

.PHONY: run test install dev llama bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PIP) install "$(TORCH)"
	touch $@

$(VENV)/.llama: $(VENV)/.torch
	$(PY) -m engine.llama_build
	touch $@

$(VENV)/.installed-run: pyproject.toml $(VENV)/.llama
	$(PIP) install -e ".[demo]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.llama
	$(PIP) install -e ".[dev]"
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run

dev: $(VENV)/.installed-dev

llama: $(VENV)/.torch
	$(PY) -m engine.llama_build --force
	touch $(VENV)/.llama

run: $(VENV)/.installed-run
	$(VENV)/bin/llmdeck $(ARGS)

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(PY) bench/startup.py

clean:
	rm -rf $(VENV) .pytest_cache
