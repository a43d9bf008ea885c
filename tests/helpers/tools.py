"""Tests that need a system tool (sshd, slurmctld, munged...): missing on a developer's machine,
the test is skipped saying what to install; under CI=true (where .ci/run installs it) it fails."""

from __future__ import annotations

import os
import shutil

import pytest


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str) -> None:
    """Stop the test: fail under CI=true, where the requirement is installed; skip elsewhere."""
    if on_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str, package: str) -> str:
    """The path of executable `name` (a full path is checked as it is)."""
    found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
    if found:
        return found
    unavailable(f"{name} is not installed (Debian: apt-get install -y {package}; .ci/run installs it)")
    raise AssertionError("unreachable")
