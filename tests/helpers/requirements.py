"""The one way a test asks for a program or a Python package it cannot run without.

On a developer's machine a missing tool skips the test, saying what to install. Under CI
(`CI=true`, set by `.ci/run`) it fails instead: CI installs everything the suite needs, so a
missing tool there is a broken install that a skip would hide (a green run with the browser
test or every llama.cpp test silently skipped). tests/test_no_silent_skips.py keeps every other
kind of skip out of the suite.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def apt(package: str) -> str:
    """How to install a Debian package that .ci/run installs (the `install` of require_tool)."""
    return f"Debian: apt-get install -y {package}; .ci/run installs it"


def unavailable(message: str) -> NoReturn:
    """Skip (here) or fail (under CI) because the machine lacks what `message` names (a program, root...)."""
    if in_ci():
        pytest.fail(f"CI=true and {message}: CI must provide it, not skip the test", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def missing(what: str, install: str) -> NoReturn:
    """Skip (here) or fail (under CI) because `what` is not installed; `install` says how to get it."""
    unavailable(f"{what} is not installed ({install})")


def require_tool(*names: str, install: str) -> str:
    """The path of the first of `names` on the PATH (e.g. "chromium", "chromium-browser"); a full path
    (e.g. "/usr/sbin/sshd", outside a user's PATH) is checked as it is (shutil.which does both)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    missing(f"the program {' / '.join(names)}", install)


def require_module(name: str, install: str = "make test installs it: pip install -e '.[dev]'") -> ModuleType:
    """The imported module `name` (a dependency of llmdeck or its dev extra)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"the Python module {name} ({exc})", install)
