"""ruff holds (rules and line length in pyproject.toml, [tool.ruff])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Clean now and kept clean: the modules issue 16 rewrote. The rest of the repository is cleaned
# in one pass after the issue-16 branches merge (see the xfail below); then this list goes.
CLEAN = (
    "engine/cli.py", "engine/commands/outcome.py", "engine/commands/runs.py", "engine/events.py", "engine/jobs.py",
    "engine/kinds.py", "engine/runs.py", "engine/worker.py", "engine/serve/job.py", "engine/serve/launch.py",
    "engine/train/callbacks.py", "engine/train/faults.py", "engine/train/job.py", "engine/train/launch.py",
    "engine/train/multi_gpu.py", "tests/engine/test_kinds.py", "tests/engine/test_train_parts.py",
    "tests/test_import_contracts.py", "tests/test_import_graph.py", "tests/test_ruff.py",
)


def ruff_check(*paths: str) -> subprocess.CompletedProcess[str]:
    try:
        import ruff  # noqa: F401 - only to say what is missing
    except ImportError:
        pytest.fail("ruff is missing: install the dev extra")
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *paths]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_rewritten_modules_are_clean():
    result = ruff_check(*CLEAN)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.xfail(strict=True, reason="issue 16: the repository-wide cleanup after the branches merge (ruff check .)")
def test_the_whole_repository_is_clean():
    result = ruff_check(".")
    assert result.returncode == 0, result.stdout[-4000:]
