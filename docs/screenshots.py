"""Regenerate the README's screenshots (SVG, from Textual) of every screen.

    LLMDECK_HOME=$(mktemp -d) .venv/bin/python docs/screenshots.py [mode ...]

Runs each screen headless at 100x30 with realistic content (finished self-test runs, the H200
NVML fixture replayed in the Monitor) and writes docs/screens/<mode>.svg.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURE = ROOT.parent / "shared" / "fixtures" / "nvml_h200.json"
OUT = ROOT / "docs" / "screens"


def prepare_runs() -> None:
    from engine.runs import RunStore

    store = RunStore()
    done = store.start("selftest", {"steps": 6, "delay": 0.01}, name="selftest-ok")
    failed = store.start("selftest", {"steps": 6, "delay": 0.01, "fail_at": 4}, name="selftest-fail")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(store.get(r.id).active for r in (done, failed)):
        time.sleep(0.1)


async def shoot(mode: str, options: dict) -> Path:
    from tui.app import LLMDeckApp

    app = LLMDeckApp(start_mode=mode, options=options)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(2.0)
        path = OUT / f"{mode}.svg"
        app.save_screenshot(filename=path.name, path=str(OUT))
    return path


def main() -> None:
    os.environ.setdefault("LLMDECK_HOME", tempfile.mkdtemp(prefix="llmdeck-shots-"))
    from tui.modes import MODES

    wanted = sys.argv[1:] or [m.key for m in MODES]
    prepare_runs()
    options = {"monitor": {"replay": str(FIXTURE)} if FIXTURE.exists() else {}}
    for mode in wanted:
        print(asyncio.run(shoot(mode, options.get(mode, {}))))


if __name__ == "__main__":
    main()
