"""Temporary outputs of killed runs are removed, and a killed worker's children die with it.

Real workers, real SIGKILL, real files: a run writes a staged output slowly (the selftest job
with `output`) or quantizes a real GGUF with llama.cpp's quantizer in a child process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from engine import atomic
from engine.runs import RunStore, RunTemps, worker_alive
from tests.engine.test_cli import llmdeck
from tests.helpers.requirements import require_module
from tests.helpers.waiting import wait_for


def temps_next_to(final: Path) -> list[Path]:
    return sorted(final.parent.glob(f".{final.name}.tmp-*"))


def start_slow_writer(store: RunStore, final: Path) -> str:
    info = store.start("selftest", {"steps": 2000, "delay": 0.02, "output": str(final)})
    wait_for(lambda: any(p.stat().st_size > 0 for p in temps_next_to(final)), timeout=60, what="the output written")
    return info.id


def test_temp_is_recorded_before_it_exists_and_dropped_after_commit(tmp_path: Path) -> None:
    store = RunStore()
    final = tmp_path / "result.txt"
    info = store.start("selftest", {"steps": 30, "delay": 0.02, "output": str(final)})
    wait_for(lambda: temps_next_to(final), timeout=60, what="a staged output")
    (tmp,) = temps_next_to(final)
    assert store.get(info.id).temps == [str(tmp)]
    wait_for(lambda: store.get(info.id).status == "succeeded", timeout=60, what="the run to finish")
    assert final.read_text().splitlines()[-1] == "step 30"
    assert temps_next_to(final) == [] and store.get(info.id).temps == []


def test_kill_9_worker_then_runs_list_removes_its_temp(tmp_path: Path) -> None:
    store = RunStore()
    final = tmp_path / "out.txt"
    run_id = start_slow_writer(store, final)
    info = store.get(run_id)
    os.kill(info.pid, signal.SIGKILL)
    wait_for(lambda: not worker_alive(info), timeout=10, what="the worker gone")
    assert temps_next_to(final), "nothing removed the temporary output yet"
    rows = {row["id"]: row for row in json.loads(llmdeck("runs", "list", "--json").stdout)}
    assert rows[run_id]["status"] == "lost"
    assert temps_next_to(final) == [] and not final.exists()
    assert json.loads((store.root / run_id / "run.json").read_text())["temps"] == []


def test_cancel_force_removes_the_temp(tmp_path: Path) -> None:
    store = RunStore()
    final = tmp_path / "forced.txt"
    run_id = start_slow_writer(store, final)
    out = llmdeck("runs", "cancel", "--force", run_id)
    assert out.returncode == 0, out.stderr
    assert store.get(run_id).status == "cancelled"
    assert temps_next_to(final) == [] and not final.exists()


def test_housekeeping_removes_only_temp_names_of_ended_runs(tmp_path: Path) -> None:
    store = RunStore()
    info = store.create("selftest", {})
    left = tmp_path / ".model.gguf.tmp-0a1b2c3d"
    left.write_bytes(b"half a model")
    folder = tmp_path / ".model-hf.tmp-00ff00ff"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "shard.safetensors").write_bytes(b"x")
    precious = tmp_path / "my-model.gguf"  # not a temporary name: run.json must not get it removed
    precious.write_bytes(b"keep me")
    store.update(info.id, status="lost", temps=[str(left), str(folder), str(precious)])
    assert store.housekeeping() == 1
    assert not left.exists() and not folder.exists() and precious.exists()
    assert store.get(info.id).temps == []


def test_runs_delete_removes_the_temps_too(tmp_path: Path) -> None:
    store = RunStore()
    info = store.create("selftest", {})
    left = tmp_path / ".x.tmp-deadbeef"
    left.write_bytes(b"x")
    # Written by hand as a crashed worker leaves it: `cancelled` with a temp still listed.
    data = json.loads((info.dir / "run.json").read_text()) | {"status": "cancelled", "temps": [str(left)]}
    (info.dir / "run.json").write_text(json.dumps(data))
    out = llmdeck("runs", "delete", info.id)
    assert out.returncode == 0, out.stderr
    assert not left.exists() and not info.dir.exists()


def test_atomic_writes_inside_a_run_are_on_its_ledger(tmp_path: Path) -> None:
    store = RunStore()
    info = store.create("selftest", {})
    atomic.use_ledger(RunTemps(store, info.id))
    try:
        seen: list[list[str]] = []
        with atomic.atomic_open(tmp_path / "result.json") as handle:
            handle.write("{}")
            seen.append(store.get(info.id).temps)
        with atomic.staged(tmp_path / "model-dir", directory=True) as tmp:
            seen.append(store.get(info.id).temps)
            (tmp / "w.bin").write_bytes(b"1")
            atomic.commit(tmp, tmp_path / "model-dir")
    finally:
        atomic.use_ledger(None)
    assert len(seen[0]) == 1 and Path(seen[0][0]).name.startswith(".result.json.tmp-")
    assert len(seen[1]) == 1 and Path(seen[1][0]).name.startswith(".model-dir.tmp-")
    assert store.get(info.id).temps == []
    assert (tmp_path / "result.json").read_text() == "{}" and (tmp_path / "model-dir" / "w.bin").exists()


# -- a real quantize child -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_f16_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An f16 GGUF big enough that llama.cpp takes a few seconds to quantize it on one thread."""
    require_module("llama_cpp")
    from engine.convert import jobs
    from engine.events import Finished
    from engine.jobs import JobContext, execute
    from tests.engine.test_convert_tiny import make_llama

    root = tmp_path_factory.mktemp("big")
    make_llama(root / "m", tokenizer="spm", n_kv_heads=2, hidden=1024, layers=8)
    out = root / "m-f16.gguf"
    spec = {"input": str(root / "m"), "output": str(out), "outtype": "f16", "verify": False}
    result = execute(jobs.hf_to_gguf, spec, JobContext(lambda e: None))
    assert isinstance(result, Finished), result
    return out


def quantizer_child(worker_pid: int) -> psutil.Process | None:
    try:
        children = psutil.Process(worker_pid).children()
    except psutil.NoSuchProcess:
        return None
    # the real quantizer, not the pre-flight's dry run (`"dry_run": true`), which comes first and ends at once
    found = []
    for child in children:
        try:
            command = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "engine.convert.quantize" in command and '"dry_run": true' not in command:
            found.append(child)
    return found[0] if found else None


@pytest.fixture
def reap() -> Iterator[list[psutil.Process]]:
    """Processes a test holds (a suspended quantizer): killed at the end whatever happened."""
    held: list[psutil.Process] = []
    yield held
    for proc in held:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def test_killed_quantize_worker_takes_its_child_and_temp_with_it(
    big_f16_gguf: Path, tmp_path: Path, reap: list
) -> None:
    store = RunStore()
    final = tmp_path / "q.gguf"
    spec = {"action": "quantize", "input": str(big_f16_gguf), "output": str(final), "qtype": "Q4_K_M",
            "nthread": 1, "verify": False}
    info = store.start("convert.quantize", spec)
    wait_for(lambda: store.get(info.id).status == "running", timeout=60)
    worker = store.get(info.id).pid
    reap.append(psutil.Process(worker))
    wait_for(lambda: quantizer_child(worker) is not None, timeout=60, what="the quantizer child")
    child = quantizer_child(worker)
    assert child is not None
    reap.append(child)
    wait_for(lambda: any(p.stat().st_size > 0 for p in temps_next_to(final)), timeout=60, what="the quantizer writing")
    child.suspend()  # hold it mid-write, so the test does not race the quantizer finishing
    assert store.get(info.id).temps == [str(temps_next_to(final)[0])]
    os.kill(worker, signal.SIGKILL)
    child.wait(timeout=10)  # PR_SET_PDEATHSIG: the kernel kills it with its parent
    assert not child.is_running()
    assert temps_next_to(final), "nothing removed the temporary output yet"
    rows = {row["id"]: row for row in json.loads(llmdeck("runs", "list", "--json").stdout)}
    assert rows[info.id]["status"] == "lost"
    assert temps_next_to(final) == [] and not final.exists()


def test_force_cancelled_quantize_leaves_no_child_and_no_temp(big_f16_gguf: Path, tmp_path: Path, reap: list) -> None:
    store = RunStore()
    final = tmp_path / "q.gguf"
    spec = {"action": "quantize", "input": str(big_f16_gguf), "output": str(final), "qtype": "Q4_K_M",
            "nthread": 1, "verify": False}
    info = store.start("convert.quantize", spec)
    wait_for(lambda: store.get(info.id).status == "running", timeout=60)
    worker = store.get(info.id).pid
    reap.append(psutil.Process(worker))
    wait_for(lambda: any(p.stat().st_size > 0 for p in temps_next_to(final)), timeout=60, what="the quantizer writing")
    child = quantizer_child(worker)
    assert child is not None
    reap.append(child)
    out = llmdeck("runs", "cancel", "--force", info.id)
    assert out.returncode == 0, out.stderr
    assert temps_next_to(final) == [] and store.get(info.id).status == "cancelled"
    child.wait(timeout=10)  # the worker's process group was killed, the quantizer in it
