"""Fast start is a promise: the TUI and `--help` never load the heavy stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "llama_cpp", "pynvml")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(m for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_tui_app_imports_nothing_heavy():
    modules = loaded_after("import tui.app")
    assert [m for m in HEAVY if m in modules] == []


def test_help_imports_nothing_heavy_and_lists_every_subcommand():
    code = (
        "import contextlib, io\n"
        "from tui.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "assert 'runs' in buf.getvalue() and 'examples:' in buf.getvalue()\n"
    )
    modules = loaded_after(code)
    assert [m for m in HEAVY if m in modules] == []


def test_engine_never_imports_textual():
    modules = loaded_after("import engine, engine.runs, engine.jobs, engine.cli, engine.settings, engine.worker")
    assert [m for m in modules if m.split(".")[0] in ("textual", "rich", "tui")] == []


def test_every_engine_module_imports_without_textual():
    """Walk the whole engine package: no module may pull in the UI."""
    code = (
        "import importlib, pkgutil, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    if m.name != 'engine.worker' and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
    )
    modules = loaded_after(code)
    assert [m for m in modules if m.split(".")[0] in ("textual", "tui")] == []
