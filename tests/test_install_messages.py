"""Every install command llmdeck prints or documents names things that exist: no `llmdeck[web]`
for an extra pyproject.toml does not define."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRA = re.compile(r"(?:llmdeck|\.)\[([A-Za-z0-9_,-]+)\]")


def test_every_named_extra_exists() -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    files = [*sorted((ROOT / "engine").rglob("*.py")), *sorted((ROOT / "tui").rglob("*.py")),
             ROOT / "README.md", ROOT / "Makefile", ROOT / ".ci" / "run"]
    wrong = [
        f"{path.relative_to(ROOT)}:{number}: [{name}]"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in EXTRA.finditer(line)
        for name in match.group(1).split(",")
        if name not in extras
    ]
    assert not wrong, f"extras that pyproject.toml does not define ({sorted(extras)}):\n" + "\n".join(wrong)
