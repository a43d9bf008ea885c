"""Training across two "nodes" over SSH, for real: an OpenSSH server started here on 127.0.0.1
(its own host key, a key made for the test, an ssh_config the run is given with --ssh-config),
two aliases of it as the nodes, two CPU processes per node with gloo, a tiny Llama; DDP, and
FSDP2 (which accelerate 1.15 leaves off for CPU processes: engine/train/cpu_fsdp.py turns it on).

What is proven: the loss per step equals a one-process run with the same global batch (1e-4),
with DDP and with FSDP (whose weights are really sharded: each rank holds a quarter), and an
FSDP run resumed from its checkpoint goes on exactly as the one process does, to the same final
weights; the pre-flight stops a run before anything starts and says why per node; kill -9 of one
node's training process of an FSDP run fails the run naming that node; the run resumes from its
checkpoint on both nodes; cancel stops every node at the same step, with a checkpoint; `--sync --sync-dir` copies the
model and data into each node's own folder with rsync over the run's ssh config, and the ranks
train on those copies (the launcher's files are moved away once the ranks start)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from engine.cli import run_command
from engine.events import Metric
from engine.jobs import JobContext
from engine.runs import RunStore
from engine.train import launch
from engine.train.rank_status import node_rows, read_nodes, read_ranks
from engine.train.runner import train
from engine.train.spec import TrainSpec
from tests.engine.test_train_runs import DATA, ended, losses, tiny_spec
from tests.helpers.sshd import LocalSshd
from tests.helpers.tiny_model import cached_tiny_llama
from tests.helpers.waiting import wait_for

NODES = "node-a,node-b"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = LocalSshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


def two_node_spec(sshd: LocalSshd, **changes) -> TrainSpec:
    base = dict(max_steps=4, max_seq_len=32, lora_dropout=0.0, devices="cpu:2",
                cluster={"nodes": NODES, "ssh_config": str(sshd.config)})
    base.update(changes)
    return tiny_spec(**base)


def processes_gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def run_pids(work_dir: Path) -> list[int]:
    agents = [int(r["agent_pid"]) for r in read_nodes(work_dir).values() if r.get("agent_pid")]
    return agents + [int(r["pid"]) for r in read_ranks(work_dir)]


@pytest.mark.slow
def test_two_nodes_over_ssh_match_one_process_with_the_same_global_batch(sshd, tmp_path, capsys):
    store = RunStore()
    info = launch.start(two_node_spec(sshd), store)
    # the reference, meanwhile: one process, batch 2 per process x 2 processes x 2 nodes = 8
    reference = tiny_spec(max_steps=4, max_seq_len=32, lora_dropout=0.0, batch_size=8)
    events: list = []
    train(reference.validate(), tmp_path / "one-process", JobContext(events.append))
    one = {e.step: e.values["loss"] for e in events if isinstance(e, Metric) and "loss" in e.values}
    wait_for(lambda: ended(store, info.id), timeout=400, what="the two-node run to end")
    final = store.get(info.id)
    log = "\n".join(store.log_tail(info.id, 200))
    assert final.status == "succeeded", log
    both = losses(store, info.id)
    assert sorted(both) == sorted(one) == [1, 2, 3, 4]
    gaps = {step: abs(both[step] - one[step]) for step in one}
    with capsys.disabled():
        print(f"two nodes x 2 processes vs one process, |loss difference| per step: {gaps}")
    assert max(gaps.values()) < 1e-4, (both, one)
    # the verdict table came before any process, one row per node
    assert "pre-flight: 2 nodes x 2 processes" in log
    assert log.index("pre-flight") < log.index("launching 4 training processes on 2 nodes")
    for node in ("node-a", "node-b"):
        assert any(line.split()[2:3] == [node] and line.rstrip().endswith(" ok") for line in log.splitlines()), node
    # every node's row: its two ranks, their memory, done
    rows = node_rows(final.out_dir, active=False)
    assert [(r.name, r.state, len(r.ranks)) for r in rows] == [("node-a", "done", 2), ("node-b", "done", 2)]
    assert sorted(r for row in rows for r in row.ranks) == [0, 1, 2, 3]
    assert all(r.peak_gib > 0 and r.memory == "host" for r in rows)
    assert processes_gone(run_pids(final.out_dir))
    capsys.readouterr()
    assert run_command(["runs", "show", info.id]) == 0
    shown = capsys.readouterr().out
    assert "    nodes: node-a  " in shown and "done  0/2 ranks  step 4  RAM" in shown


def one_process(tmp_path: Path, **changes) -> tuple[dict[int, float], Path]:
    """The reference: the same training in this process; its loss per step and its final folder."""
    events: list = []
    summary = train(tiny_spec(**changes).validate(), tmp_path, JobContext(events.append))
    return {e.step: e.values["loss"] for e in events if isinstance(e, Metric) and "loss" in e.values}, \
        Path(summary["output"])


def weights_gap(one: Path, other: Path) -> float:
    from safetensors.torch import load_file

    a, b = load_file(str(one / "model.safetensors")), load_file(str(other / "model.safetensors"))
    assert sorted(a) == sorted(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.slow
def test_fsdp_across_two_nodes_matches_one_process_and_resumes_to_the_same_weights(sshd, tmp_path, capsys):
    # full fine-tune, constant learning rate: 4 steps, then resumed to 6, equals 6 steps at once
    same = dict(method="full", scheduler="constant", max_seq_len=32, save_steps=2, learning_rate=1e-3)
    store = RunStore()
    info = launch.start(two_node_spec(sshd, max_steps=4, distributed="fsdp", **same), store)
    one, one_final = one_process(tmp_path / "one-process", max_steps=6, batch_size=8, **same)
    wait_for(lambda: ended(store, info.id), timeout=400, what="the two-node FSDP run to end")
    log = "\n".join(store.log_tail(info.id, 200))
    assert store.get(info.id).status == "succeeded", log
    assert "accelerate launch (fsdp over cpu/gloo)" in log
    # the proof that it sharded (DDP would hold every value on every rank): rank 0 held a quarter
    held, total = (int(n.replace(",", "")) for n in log.split("this rank held ")[1].split()[0:3:2])
    assert total > 100_000 and abs(held - total / 4) < total / 50, log
    checkpoint = store.get(info.id).out_dir / "checkpoints" / "checkpoint-4"
    assert {"model.safetensors", "optimizer.bin", "pytorch_model_fsdp.bin"} <= {p.name for p in checkpoint.iterdir()}
    launch.resume(info.id, store, max_steps=6)
    wait_for(lambda: ended(store, info.id), timeout=400, what="the resumed FSDP run to end")
    final = store.get(info.id)
    log = "\n".join(store.log_tail(info.id, 300))
    assert final.status == "succeeded", log
    assert "resuming from checkpoint-4 (step 4)" in log
    both = losses(store, info.id)
    assert sorted(both) == sorted(one) == [1, 2, 3, 4, 5, 6]
    gaps = {step: abs(both[step] - one[step]) for step in one}
    gap = weights_gap(one_final, final.out_dir / "model")
    with capsys.disabled():
        print(f"FSDP, two nodes x 2 processes (resumed at step 4) vs one process, |loss difference| per step: "
              f"{gaps}; largest weight difference of the final models: {gap:.2e}")
    assert max(gaps.values()) < 1e-4, (both, one)
    assert gap < 1e-4  # the final save gathered every rank's shard into one ordinary model


def digests(path: Path) -> dict[str, str]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(f.relative_to(path)) if path.is_dir() else f.name: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in files}


@pytest.mark.slow
def test_sync_dir_copies_model_and_data_to_the_nodes_and_the_ranks_train_on_the_copies(sshd, tmp_path):
    here = tmp_path / "launcher"
    model = Path(shutil.copytree(cached_tiny_llama(), here / "model"))
    data = here / "data.jsonl"
    shutil.copy(DATA, data)
    node_disk = tmp_path / "node-disk"  # the nodes' own folder for copies: not a path the launcher uses
    cluster = {"nodes": NODES, "ssh_config": str(sshd.config), "sync": True, "sync_dir": str(node_disk)}
    store = RunStore()
    info = launch.start(two_node_spec(sshd, model=str(model), dataset=str(data), max_steps=2, cluster=cluster), store)

    def log() -> str:
        return "\n".join(store.log_tail(info.id, 200))

    wait_for(lambda: "launching 4 training processes" in log() or ended(store, info.id), timeout=200,
             what="the pre-flight to copy and launch")
    # the launcher's own files go away: a rank that opened them instead of its node's copy fails
    gone = here.rename(tmp_path / "launcher-moved-away")
    wait_for(lambda: ended(store, info.id), timeout=400, what="the run on the copies to end")
    assert store.get(info.id).status == "succeeded", log()
    copy_of_model = node_disk / str(model).lstrip("/")
    copy_of_data = node_disk / str(data).lstrip("/")
    assert digests(copy_of_model) == digests(gone / "model") and len(digests(copy_of_model)) >= 3
    assert digests(copy_of_data) == digests(gone / "data.jsonl")
    for node in ("node-a", "node-b"):
        assert f"{node}: copying model {model} to {copy_of_model} (--sync)" in log()
        assert f"{node}: copying dataset {data} to {copy_of_data} (--sync)" in log()
        said = (store.get(info.id).out_dir / "ddp" / f"node-{node}.log").read_text(encoding="utf-8")
        assert f"{node}: training on the --sync copies: model {copy_of_model}, data {copy_of_data}" in said
    rows = [line.split() for line in log().splitlines() if line.split()[2:3] in (["node-a"], ["node-b"])]
    assert len(rows) == 2 and all("copied" in row and row[-1] == "ok" for row in rows), log()


def test_preflight_failure_starts_nothing_and_says_why_per_node(sshd, tmp_path):
    # a Python without the training libraries on the nodes, and a node that is down
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    down = sshd.add_unreachable_alias("node-down")
    store = RunStore()
    spec = two_node_spec(sshd, cluster={"nodes": f"node-a,{down}", "ssh_config": str(sshd.config),
                                        "remote_python": str(bare / "bin" / "python")})
    info = launch.start(spec, store)
    wait_for(lambda: ended(store, info.id), timeout=120, what="the pre-flight to end the run")
    final = store.get(info.id)
    assert final.status == "failed"
    assert final.exit_reason.startswith("pre-flight failed, nothing was started")
    assert "node-a: torch is not importable by" in final.exit_reason
    assert "node-down: ssh: " in final.exit_reason and "Connection refused" in final.exit_reason
    log = "\n".join(store.log_tail(info.id, 50))
    assert "FAIL: torch is not importable" in log and "launching" not in log
    ddp = final.out_dir / "ddp"
    assert not list(ddp.glob("node-*.log")) and read_ranks(final.out_dir) == []


@pytest.mark.slow
def test_kill_9_of_one_node_fails_the_run_naming_it_resume_continues_and_cancel_reaches_every_node(sshd):
    store = RunStore()
    spec = two_node_spec(sshd, max_steps=40, save_steps=2, debug={"step_pause_s": 0.4}, distributed="fsdp")
    info = launch.start(spec, store)
    work = info.dir / "out"

    def victim() -> dict | None:
        if not any(c.complete for c in launch.checkpoints_of(store.get(info.id))):
            return None
        ranks = [r for r in read_ranks(work) if r.get("node") == "node-b" and r.get("state") == "running"]
        return ranks[0] if ranks else None

    wait_for(lambda: victim() is not None or ended(store, info.id), timeout=400, what="a checkpoint")
    target = victim()
    assert target is not None, store.log_tail(info.id, 60)
    os.kill(int(target["pid"]), signal.SIGKILL)
    started = time.monotonic()
    wait_for(lambda: ended(store, info.id), timeout=200, what="the run to fail")
    took = time.monotonic() - started
    final = store.get(info.id)
    print(f"kill -9 of rank {target['rank']} on node-b: the run failed {took:.1f} s later: {final.exit_reason}")
    assert final.status == "failed"
    assert final.exit_reason.startswith("node node-b failed: rank"), final.exit_reason
    assert str(target["pid"]) in final.exit_reason
    assert "died without a word" in final.exit_reason
    rows = {r.name: r for r in node_rows(work, active=False)}
    assert rows["node-b"].state == "failed"
    wait_for(lambda: processes_gone(run_pids(work)), timeout=60, what="every process of the run to end")
    # resume on both nodes from the newest complete checkpoint (shared storage: the run folder)
    done_before = max(c.step for c in launch.checkpoints_of(final) if c.complete)
    launch.resume(info.id, store, max_steps=done_before + 30)
    wait_for(lambda: max(losses(store, info.id)) > done_before + 1 or ended(store, info.id), timeout=400,
             what="the resumed run to train past its checkpoint")
    log = "\n".join(store.log_tail(info.id, 300))
    assert store.get(info.id).status == "running", log
    assert f"resuming from checkpoint-{done_before} (step {done_before})" in log
    # cancel reaches every node: the ranks agree on a step, save it and stop together
    assert run_command(["runs", "cancel", info.id, "--wait", "200"]) == 0
    stopped = store.get(info.id)
    log = "\n".join(store.log_tail(info.id, 300))
    assert stopped.status == "cancelled", log
    assert "accelerate launch (fsdp over cpu/gloo)" in log and "FSDP2: the weights were sharded" in log
    saved = max(c.step for c in launch.checkpoints_of(stopped) if c.complete)
    assert done_before + 1 < saved < done_before + 30 and f"saving a checkpoint at step {saved}" in log
    assert [r.state for r in node_rows(work, active=False)] == ["done", "done"]
    wait_for(lambda: processes_gone(run_pids(work)), timeout=60, what="every process of the run to end")
