"""Training as a SLURM job on a real one-node cluster started here (munged, slurmctld and slurmd
on 127.0.0.1; tests/helpers/slurm_cluster.py): the submitted job trains to the end with rank 0's
events relayed into the run; a held job is `pending` with SLURM's reason and outlives its worker
(the run asks SLURM, not the dead pid, and ends `succeeded` when the released job completes);
a job asking for more CPUs than the node has waits `pending` (PartitionConfig) and `llmdeck runs
cancel` reaches scancel; a job whose training fails ends `failed` with the reason; a job past its
`--time` is killed by SLURM (TIMEOUT) and a job whose node an admin sets DOWN ends NODE_FAIL, and
both end the run `failed` saying so. If the cluster cannot start, the tests fail with the daemons'
logs."""

from __future__ import annotations

import os
import signal

import pytest

from engine.cli import run_command
from engine.events import Finished
from engine.runs import RunStore
from engine.train import launch
from engine.train.rank_status import read_ranks
from tests.engine.test_train_runs import ended, losses, tiny_spec
from tests.helpers.slurm_cluster import NODE, LocalSlurm
from tests.helpers.waiting import wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    yield started
    started.stop()


@pytest.fixture
def slurm_env(cluster, monkeypatch):
    for key, value in cluster.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LLMDECK_SLURM_POLL_S", "1")
    return cluster


def slurm_spec(**changes):
    cluster = {"slurm": True, "nodes": "1", **changes.pop("cluster", {})}
    return tiny_spec(**{"max_steps": 4, "max_seq_len": 32, "devices": "cpu:1", "cluster": cluster, **changes})


def job_id(store: RunStore, run_id: str) -> str:
    info = store.get(run_id)
    return str((info.scheduler or {}).get("job_id", ""))


@pytest.mark.slow
def test_a_submitted_job_trains_to_the_end_and_the_run_follows_it(slurm_env):
    store = RunStore()
    info = launch.start(slurm_spec(), store)
    wait_for(lambda: ended(store, info.id), timeout=300, what="the SLURM run to end")
    final = store.get(info.id)
    log = "\n".join(store.log_tail(info.id, 100))
    assert final.status == "succeeded", log
    job = job_id(store, info.id)
    assert job.isdigit() and final.scheduler["type"] == "slurm"
    assert f"submitted SLURM job {job}" in log and f"SLURM job {job} RUNNING on llmdeck-node" in log
    assert sorted(losses(store, info.id)) == [1, 2, 3, 4]  # rank 0's events, relayed from the job
    events, _ = store.read_events(info.id)
    summary = [e for e in events if isinstance(e, Finished)][0].summary
    assert summary["slurm_job"] == job and summary["steps"] == 4
    script = (info.dir / "slurm.sbatch").read_text()  # kept for the user to read and resubmit
    for part in ("#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1", "srun --ntasks-per-node=1",
                 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1',
                 "-m engine.train.multi_gpu"):
        assert part in script, part
    assert (final.out_dir / "ddp" / f"slurm-{job}.log").exists()


@pytest.mark.slow
def test_a_held_job_is_pending_outlives_its_worker_and_ends_as_slurm_says(slurm_env):
    store = RunStore()
    info = launch.start(slurm_spec(cluster={"sbatch": ["--hold"]}), store)
    wait_for(lambda: store.get(info.id).status == "pending" and job_id(store, info.id), timeout=60,
             what="the run to be pending")
    wait_for(lambda: "JobHeldUser" in store.get(info.id).status_detail, timeout=30, what="SLURM's reason")
    # the login node's worker dies; the job does not
    os.kill(store.get(info.id).pid, signal.SIGKILL)
    wait_for(lambda: not _alive(store.get(info.id).pid), timeout=10, what="the worker to die")
    seen = store.get(info.id)
    assert seen.status == "pending" and "JobHeldUser" in seen.status_detail  # asked of SLURM, not lost
    job = job_id(store, info.id)
    assert slurm_env.run("scontrol", "release", job).returncode == 0
    wait_for(lambda: ended(store, info.id), timeout=300, what="the released job to end")
    final = store.get(info.id)
    assert final.status == "succeeded", (final.exit_reason, (final.out_dir / "ddp" / f"slurm-{job}.log").read_text())
    assert final.exit_reason == f"SLURM job {job} COMPLETED"


def test_a_job_asking_more_than_the_node_has_is_pending_and_cancel_reaches_scancel(slurm_env, capsys):
    store = RunStore()
    # 64 CPUs on a 2-CPU node: SLURM accepts the job and keeps it waiting (reason PartitionConfig)
    info = launch.start(slurm_spec(cluster={"sbatch": ["--cpus-per-task=64"]}), store)
    wait_for(lambda: "PartitionConfig" in store.get(info.id).status_detail, timeout=60, what="SLURM's reason")
    pending = store.get(info.id)
    assert pending.status == "pending" and pending.active
    job = job_id(store, info.id)
    assert run_command(["runs", "show", info.id]) == 0 and run_command(["runs", "list", "--active"]) == 0
    shown = capsys.readouterr().out
    assert f"now: SLURM job {job} PENDING (PartitionConfig)" in shown and f"job: slurm {job}" in shown
    assert "pending" in shown.splitlines()[-1] and "PartitionConfig" in shown.splitlines()[-1]
    assert run_command(["runs", "cancel", info.id, "--wait", "60"]) == 0
    final = store.get(info.id)
    assert final.status == "cancelled", final.exit_reason
    assert "JobState=CANCELLED" in slurm_env.run("scontrol", "--oneliner", "show", "job", job).stdout
    assert f"scancel {job}" in "\n".join(store.log_tail(info.id, 50))


@pytest.mark.slow
def test_a_job_whose_training_fails_is_a_failed_run_with_the_reason(slurm_env):
    store = RunStore()
    info = launch.start(slurm_spec(debug={"nan_at_step": 1}), store)
    wait_for(lambda: ended(store, info.id), timeout=300, what="the failing job to end")
    final = store.get(info.id)
    job = job_id(store, info.id)
    assert final.status == "failed"
    assert final.exit_reason.startswith(f"SLURM job {job} FAILED: the job failed, exit code 1:0; "), final.exit_reason
    assert "the loss became NaN/inf at step" in final.exit_reason


@pytest.mark.slow
def test_a_job_past_its_time_limit_is_a_failed_run_that_says_timeout(slurm_env):
    # --time 1 (minute); SLURM checks limits about every 30 s, then KillWait (5 s in the test's slurm.conf)
    store = RunStore()
    info = launch.start(slurm_spec(max_steps=2000, save_steps=5, debug={"step_pause_s": 0.3},
                                   cluster={"time": "1"}), store)
    wait_for(lambda: losses(store, info.id) or ended(store, info.id), timeout=120, what="the job to train")
    assert store.get(info.id).status == "running"
    wait_for(lambda: ended(store, info.id), timeout=150, what="SLURM to end the job at its time limit")
    final = store.get(info.id)
    job = job_id(store, info.id)
    assert final.status == "failed", final.exit_reason
    assert final.exit_reason.startswith(
        f"SLURM job {job} TIMEOUT: the job hit its time limit (--time); resume it from its last checkpoint")
    assert "JobState=TIMEOUT" in slurm_env.run("scontrol", "--oneliner", "show", "job", job).stdout
    assert 5 < max(losses(store, info.id)) < 2000
    assert any(c.complete for c in launch.checkpoints_of(final))  # what the reason says to resume from


@pytest.mark.slow
def test_a_job_whose_node_goes_down_is_a_failed_run_naming_the_node(slurm_env):
    store = RunStore()
    # not requeued: SLURM's default puts a job whose node failed back in the queue
    info = launch.start(slurm_spec(max_steps=2000, debug={"step_pause_s": 0.3}, cluster={"sbatch": ["--no-requeue"]}),
                        store)
    wait_for(lambda: losses(store, info.id) or ended(store, info.id), timeout=120, what="the job to train")
    assert store.get(info.id).status == "running"
    down = slurm_env.run("scontrol", "update", f"nodename={NODE}", "state=down", "reason=llmdeck-test")
    try:
        assert down.returncode == 0, down.stderr
        wait_for(lambda: ended(store, info.id), timeout=60, what="the run to end with its node")
    finally:
        slurm_env.run("scontrol", "update", f"nodename={NODE}", "state=resume")
    final = store.get(info.id)
    job = job_id(store, info.id)
    assert final.status == "failed", final.exit_reason
    assert final.exit_reason.startswith(f"SLURM job {job} NODE_FAIL: a node of the job failed ({NODE})"), \
        final.exit_reason
    wait_for(slurm_env.node_idle, timeout=90, what="the node to be back for the other tests")
    # the job's processes on the node that came back are ended by SLURM (an orphan job of a DOWN node)
    wait_for(lambda: not any(_alive(int(r["pid"])) for r in read_ranks(final.out_dir)), timeout=90,
             what="the training processes to end")


def _alive(pid: int | None) -> bool:
    import psutil

    return bool(pid) and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
