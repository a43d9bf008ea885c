"""Runs and Train show one row per node of a multi-node run (liveness, memory, step), read from
the run folder's rank and node files; a queued SLURM run shows `pending` and SLURM's reason.

The run here is written by the test (its worker is this process, so it counts as alive): the
rank files are what engine.train.rank_status writes on every node of a real run, which
tests/engine/test_train_nodes.py checks end to end."""

from __future__ import annotations

import json
import os
import time

from textual.widgets import Static

from engine.runs import RunStore, _pid_identity
from engine.train import rank_status
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.widgets.run_nodes import RunNodes


def running_two_node_run(store: RunStore) -> str:
    spec = {"model": "/m", "dataset": "/d.jsonl", "devices": "cpu:2", "cluster": {"nodes": "node-a,node-b"}}
    info = store.create("train", spec, name="two-nodes")
    store.update(info.id, status="running", pid=os.getpid(), pid_started=_pid_identity(os.getpid()),
                 started=time.time())
    work = info.out_dir
    now = time.time()
    for index, node in enumerate(("node-a", "node-b")):
        rank_status.record_node(work, node, index=index, host=f"gpu-{index}", state="running")
    ranks = [(0, "node-a", "running", now), (1, "node-a", "running", now), (2, "node-b", "running", now - 60),
             (3, "node-b", "error", now)]
    rank_status.ranks_dir(work).mkdir(parents=True, exist_ok=True)
    for rank, node, state, beat in ranks:
        data = {"rank": rank, "node": node, "host": node, "pid": 1000 + rank, "state": state, "updated": beat,
                "step": 7, "memory": "gpu", "mem_gib": 30.5, "peak_gib": 31.0, "message": "RuntimeError: gloo"}
        (rank_status.ranks_dir(work) / f"{rank}.json").write_text(json.dumps(data))
    return info.id


def node_text(widget: RunNodes) -> str:
    return "\n".join(r.describe() for r in widget.rows)


async def test_runs_mode_shows_a_row_per_node():
    store = RunStore()
    run_id = running_two_node_run(store)
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        nodes = app.screen.query_one(RunNodes)
        await wait_until(pilot, lambda: len(nodes.rows) == 2, what="two node rows")
        assert nodes.display
        a, b = nodes.rows
        assert (a.name, a.state, a.alive, a.mem_gib) == ("node-a", "running", 2, 61.0)
        assert (b.name, b.state) == ("node-b", "failed") and "rank 3: RuntimeError: gloo" in b.detail
        rendered = str(nodes.render())
        assert "node-a" in rendered and "2/2 ranks" in rendered and "GPU 61.0/62.0 GiB" in rendered
    assert store.get(run_id).status == "running"


async def test_train_mode_shows_the_selected_runs_nodes_and_a_pending_reason():
    store = RunStore()
    run_id = running_two_node_run(store)
    store.update(run_id, status="pending", status_detail="SLURM job 12 PENDING (Resources)")
    app = LLMDeckApp(start_mode="train")
    async with app.run_test(size=(120, 40)) as pilot:
        nodes = app.screen.query_one("#train-nodes", RunNodes)
        await wait_until(pilot, lambda: len(nodes.rows) == 2, what="two node rows")
        assert [r.name for r in nodes.rows] == ["node-a", "node-b"]
        status = app.screen.query_one("#train-status", Static)
        await wait_until(pilot, lambda: "SLURM job 12 PENDING (Resources)" in str(status.render()))
        assert "pending" in str(status.render())
