"""Every test gets its own LLMDECK_HOME, so settings, runs and chats never leak between tests
or into the user's real folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def llmdeck_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "llmdeck-home"
    home.mkdir()
    monkeypatch.setenv("LLMDECK_HOME", str(home))
    return home


def pytest_configure(config: pytest.Config) -> None:
    # Tests never reach a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
