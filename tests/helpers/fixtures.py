"""Data files that ship with the tests (never a path outside the checkout)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# Two real NVML readings of one H200 (idle, and busy with a training process), driver 580.159.04:
# every call's result, error and cost, as recorded with nvidia-ml-py. `llmdeck monitor --replay` reads it.
NVML_H200 = FIXTURES / "nvml_h200.json"
