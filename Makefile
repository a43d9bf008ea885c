# Two commands do all the set-up: `make run` (the TUI) and `make test` (the test suite).
# Each creates .venv and installs what it needs on first use; later calls are instant.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch first, pinned: on a CPU box this takes the CPU build, and it stops pip from pulling a
# multi-GB CUDA build as a side effect of resolving transformers/peft.
TORCH ?= torch==2.13.0
# llama-cpp-python compiles llama.cpp (about 15 min on 2 cores the first time; pip caches the wheel).
# With an NVIDIA toolkit present it is built with CUDA; override with LLAMA_CMAKE_ARGS=...
LLAMA_CMAKE_ARGS ?= $(shell command -v nvcc >/dev/null 2>&1 && echo "-DGGML_CUDA=on")

.PHONY: run test install dev bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(PY)
	$(PIP) install "$(TORCH)"
	touch $@

$(VENV)/.installed-run: pyproject.toml $(VENV)/.torch
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -e ".[demo]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -e ".[dev]"
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run

dev: $(VENV)/.installed-dev

run: $(VENV)/.installed-run
	$(VENV)/bin/llmdeck $(ARGS)

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(PY) bench/startup.py

clean:
	rm -rf $(VENV) .pytest_cache
