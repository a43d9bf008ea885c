"""The run-kind registry: the one place a kind names its job, resolved once (in the worker)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.atomic import write_json
from engine.kinds import JOB_OF_KIND, UnknownKind, job_for, require_known
from engine.runs import RunStore
from tests.helpers.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", sorted(JOB_OF_KIND))
def test_every_kind_names_a_job_that_imports(kind):
    job = job_for(kind)
    assert callable(job) and job.__name__ == JOB_OF_KIND[kind].partition(":")[2]


def test_an_unknown_kind_is_refused_with_the_known_ones():
    with pytest.raises(UnknownKind, match="unknown run kind 'nope'; known kinds: .*selftest"):
        require_known("nope")
    with pytest.raises(UnknownKind):
        job_for("nope")


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_only_the_registry_names_a_job_module():
    """No caller states a job's "module:function", nor builds one from a module name: callers
    pass the kind. (Before the registry, six places stated the map.)"""
    job_modules = {target.partition(":")[0] for target in JOB_OF_KIND.values()}
    offenders = []
    for folder in ("engine", "tui", "bench", "docs", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in (ROOT / "engine" / "kinds.py", Path(__file__).resolve()):
                continue
            named = sorted(s for s in _string_literals(path) if ":" in s and s.partition(":")[0] in job_modules)
            if named:
                offenders.append(f"{path.relative_to(ROOT)}: {', '.join(named)}")
    assert not offenders, "job targets outside engine/kinds.py:\n" + "\n".join(offenders)


def test_a_run_folder_from_an_older_version_lists_and_relaunches_by_its_kind():
    """run.json files written before the registry carry an `entry` ("module:function", possibly
    of a module that has since moved). They still list, and relaunch by kind alone."""
    store = RunStore()
    info = store.create("selftest", {"steps": 2, "delay": 0.01}, name="old")
    data = json.loads((info.dir / "run.json").read_text())
    data["entry"] = "engine.selftest_moved_away:count"  # an entry no longer importable
    write_json(info.dir / "run.json", data)
    assert [r.id for r in store.list()] == [info.id]
    assert store.get("old").kind == "selftest"
    store.launch(store.get(info.id))
    wait_for(lambda: not store.get(info.id).active, 60, "old run ended")
    assert store.get(info.id).status == "succeeded", store.log_tail(info.id, 20)
    assert "entry" not in json.loads((info.dir / "run.json").read_text())


def llmdeck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120, stdin=subprocess.DEVNULL)


def test_any_kind_starts_from_the_command_line_by_name(tmp_path):
    """A new kind needs no command of its own to be run: `llmdeck runs start KIND --spec ...`."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"steps": 2, "delay": 0.01}))
    started = llmdeck("runs", "start", "selftest", "--spec", f"@{spec}", "--name", "by-kind", "--follow")
    assert started.returncode == 0, started.stderr
    assert "started selftest run" in started.stdout and "succeeded" in started.stdout
    unknown = llmdeck("runs", "start", "nope", "--spec", "{}")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("llmdeck: error: unknown run kind 'nope'; known kinds:")
    bad = llmdeck("runs", "start", "selftest", "--spec", "[1, 2]")
    assert bad.returncode == 2 and "must be a JSON object" in bad.stderr
