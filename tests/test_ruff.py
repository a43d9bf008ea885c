"""ruff holds for the whole repository (rules and line length in pyproject.toml, [tool.ruff])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.requirements import require_module

ROOT = Path(__file__).resolve().parents[1]


def test_the_whole_repository_is_clean():
    require_module("ruff")
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
