"""The multi-node pieces that need no second machine: node lists and hostfiles, the cluster part
of a run spec, the accelerate command per machine, the SLURM state -> run status table, the
sbatch script (checked by bash and run against stand-in srun/scontrol for two nodes), and how
the rank files name the node that failed first."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cluster import scheduler, slurm
from engine.cluster.hosts import HostsError, Node, parse_nodes, processes_per_node, read_hostfile
from engine.cluster.spec import ClusterSpec
from engine.train import rank_status
from engine.train.accelerate_launch import Machines, launch_args
from engine.train.slurm_job import sbatch_script
from engine.train.spec import TrainSpec


def spec(**changes) -> TrainSpec:
    return TrainSpec(model="/m", dataset="/d.jsonl", **changes)


def test_nodes_and_hostfiles(tmp_path):
    assert parse_nodes("gpu1, user@gpu2:4 ,") == [Node("gpu1"), Node("user@gpu2", 4)]
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# DeepSpeed format\nworker-1 slots=8\n\nworker-2 slots=8  # second\n")
    nodes = read_hostfile(hostfile)
    assert nodes == [Node("worker-1", 8), Node("worker-2", 8)]
    assert processes_per_node(nodes, 1) == 8
    assert processes_per_node([Node("a"), Node("b")], 2) == 2
    with pytest.raises(HostsError, match="same number of processes.*a=8, b=2"):
        processes_per_node([Node("a", 8), Node("b")], 2)
    hostfile.write_text("worker-1 slots=8\nworker-2 gpus=8\n")
    with pytest.raises(HostsError, match=r"hosts, line 2: expected `host slots=N`, found 'gpus=8'"):
        read_hostfile(hostfile)
    with pytest.raises(HostsError, match="a is listed twice"):
        parse_nodes("a,b,a")
    with pytest.raises(HostsError, match="cannot read it"):
        read_hostfile(tmp_path / "missing")


def test_cluster_spec_problems_name_the_option():
    assert ClusterSpec(nodes="a,b").problems() == []
    assert ClusterSpec(slurm=True, nodes="2", time="4:00:00", sbatch=["--qos=high"]).problems() == []
    assert ClusterSpec(slurm=True, nodes="a,b").problems() == [
        "nodes: with --slurm, --nodes is how many nodes (a number), not 'a,b'"]
    problems = ClusterSpec(slurm=True, nodes="2", time="soon", sbatch=["qos=high"], sync=True).problems()
    assert [p.split(":")[0] for p in problems] == ["time", "sbatch", "sync"]
    assert ClusterSpec(nodes="a", hostfile="h", partition="gpu").problems()[:2] == [
        "nodes: give --nodes or --hostfile, not both", "partition: only with --slurm"]
    assert ClusterSpec().mode == "" and ClusterSpec(nodes="a").mode == "ssh" and ClusterSpec(slurm=True).mode == "slurm"
    assert ClusterSpec(nodes="a", sync_dir="/scratch").problems() == [
        "sync_dir: only with --sync (it says where the copies go on the nodes)"]
    assert ClusterSpec(nodes="a", sync=True, sync_dir="scratch").problems() == [
        "sync_dir: 'scratch' must be an absolute path on the nodes"]


def test_sync_dir_moves_the_paths_the_nodes_read():
    from engine.train.node_preflight import node_paths, node_spec

    paths = {"model": "/models/m", "dataset": "/data/d.jsonl"}
    assert node_paths(paths, ClusterSpec(nodes="a", sync=True)) == paths
    assert node_paths(paths, ClusterSpec(nodes="a", sync=True, sync_dir="/scratch/llmdeck")) == {
        "model": "/scratch/llmdeck/models/m", "dataset": "/scratch/llmdeck/data/d.jsonl"}
    run = spec(cluster={"nodes": "a,b", "sync": True, "sync_dir": "/scratch"})
    assert "--sync --sync-dir /scratch" in run.to_cli()
    moved = node_spec(run)
    assert moved is not None and (moved.model, moved.dataset) == ("/scratch/m", "/scratch/d.jsonl")
    assert node_spec(spec(cluster={"nodes": "a,b", "sync": True})) is None


def test_train_spec_carries_the_cluster_and_refuses_zero_on_cpu():
    run = spec(devices="cpu:2", cluster={"nodes": "a,b", "ssh_config": "/cfg", "sync": True})
    assert run.problems(check_paths=False) == []
    assert run.to_cli().endswith("--devices cpu:2 --nodes a,b --ssh-config /cfg --sync")
    slurm_run = spec(cluster={"slurm": True, "nodes": "2", "sbatch": ["--hold"]})
    assert "--nodes 2 --slurm --sbatch=--hold" in slurm_run.to_cli()
    assert TrainSpec.from_json(run.to_json()).cluster_spec() == run.cluster_spec()
    assert spec(devices="cpu:2", distributed="fsdp", method="full").problems(check_paths=False) == []
    for method in ("dpo", "orpo", "kto", "grpo"):  # engine/train/cpu_fsdp.py switches TRL's trainers on too
        rewards = ["boxed"] if method == "grpo" else []
        run = spec(devices="cpu:2", distributed="fsdp", method=method, rewards=rewards)
        assert run.problems(check_paths=False) == []
    for zero in ("zero2", "zero3"):
        assert spec(devices="cpu:2", distributed=zero).problems(check_paths=False) == [
            f"distributed: {zero} (DeepSpeed ZeRO) needs GPUs (accelerate does not run DeepSpeed on CPU "
            "processes); use --distributed ddp or fsdp on CPU"]
    assert spec(cluster={"nodes": "a", "colour": "red"}).problems(check_paths=False) == [
        "cluster: unknown multi-node option(s): colour"]


CPU_FSDP_PROBE = """
import json, torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from engine.train import cpu_fsdp
accelerator = Accelerator(cpu=True)
before = str(accelerator.state.distributed_type)
switched = cpu_fsdp.switch_on(accelerator)
AcceleratorState()  # a later look at the state (the Trainer makes several) must keep FSDP
model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters()))
accelerator.backward(model(torch.ones(3, 8)).sum())
optimizer.step()
print(json.dumps({"before": before, "switched": switched, "fsdp2": accelerator.is_fsdp2,
                  "after": str(AcceleratorState().distributed_type), "share": cpu_fsdp.shard_share(model)}))
"""


def test_accelerate_keeps_cpu_processes_off_fsdp_and_cpu_fsdp_switches_it_on(tmp_path):
    """The day accelerate switches CPU processes to FSDP itself, `before` says FSDP and this fails:
    engine/train/cpu_fsdp.py can go. One gloo process (a process group of one) is enough to see it."""
    from engine.ports import free_port

    env = {**os.environ, "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "RANK": "0", "LOCAL_RANK": "0",
           "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-c", CPU_FSDP_PROBE], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"before": "DistributedType.MULTI_CPU", "switched": True, "fsdp2": True,
                    "after": "DistributedType.FSDP", "share": [8 * 8 + 8 + 8 * 2 + 2] * 2}


def test_accelerate_command_per_machine(tmp_path):
    two = Machines(count=2, rank="1", main_ip="10.0.0.1", main_port="29500", is_host="0")
    args = launch_args(spec(devices="cpu:2"), tmp_path, per_machine=2, machines=two)
    text = " ".join(args)
    assert "--num_processes 4 --num_machines 2" in text
    assert "--machine_rank 1 --main_process_ip 10.0.0.1 --rdzv_backend c10d --rdzv_conf is_host=0" in text
    assert "--multi_gpu" in args and args[-3:] == ["-m", "engine.train.multi_gpu", str(tmp_path)]
    fsdp = launch_args(spec(devices="0,1", distributed="fsdp"), tmp_path, per_machine=2, machines=two)
    assert fsdp[fsdp.index("--use_fsdp"):][:3] == ["--use_fsdp", "--fsdp_version", "2"]
    zero3 = " ".join(launch_args(spec(devices="0,1", distributed="zero3"), tmp_path, per_machine=2, machines=two))
    assert "--use_deepspeed --zero_stage 3" in zero3 and "--deepspeed_multinode_launcher standard" in zero3
    cpu_fsdp = launch_args(spec(devices="cpu:2", distributed="fsdp"), tmp_path, per_machine=2, machines=two)
    assert "--use_fsdp" in cpu_fsdp and "--multi_gpu" not in cpu_fsdp  # engine/train/cpu_fsdp.py takes it on
    one = launch_args(spec(devices="cpu:1"), tmp_path, per_machine=1)
    assert "--multi_gpu" not in one and "--machine_rank" not in one  # accelerate refuses --multi_gpu for one


@pytest.mark.parametrize(("state", "status"), [
    ("PENDING", "pending"), ("REQUEUED", "pending"), ("CONFIGURING", "pending"), ("SUSPENDED", "pending"),
    ("RUNNING", "running"), ("COMPLETING", "running"), ("COMPLETED", "succeeded"),
    ("CANCELLED by 0", "cancelled"), ("CANCELLED+", "cancelled"), ("FAILED", "failed"), ("TIMEOUT", "failed"),
    ("NODE_FAIL", "failed"), ("OUT_OF_MEMORY", "failed"), ("PREEMPTED", "failed"), ("BOOT_FAIL", "failed"),
    ("DEADLINE", "failed"),
])
def test_slurm_states_map_to_run_statuses(state, status):
    job = slurm.JobState("7", slurm._base(state), "Resources", "1:0", "gpu[1-2]")
    assert slurm.run_status(job)[0] == status


def test_slurm_details_say_why():
    assert slurm.run_status(slurm.JobState("7", "PENDING", "Priority")) == ("pending", "SLURM job 7 PENDING (Priority)")
    assert "time limit" in slurm.run_status(slurm.JobState("7", "TIMEOUT"))[1]
    assert slurm.run_status(slurm.JobState("7", "NODE_FAIL", nodes="gpu2"))[1].endswith("failed (gpu2)")
    assert "host memory" in slurm.run_status(slurm.JobState("7", "OUT_OF_MEMORY", exit_code="0:125"))[1]


def test_a_completed_job_succeeds_only_with_rank_0s_result(tmp_path):
    result = tmp_path / "result.json"
    seen = ("succeeded", "SLURM job 7 COMPLETED")
    assert scheduler.with_result(seen, str(result))[0] == "failed"
    result.write_text(json.dumps({"ok": False, "message": "dataset: empty"}))
    assert scheduler.with_result(seen, str(result)) == ("failed", "dataset: empty")
    result.write_text(json.dumps({"ok": True, "summary": {}}))
    assert scheduler.with_result(seen, str(result)) == seen


def _stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_the_sbatch_script_gives_each_node_its_rank_and_rank_0s_address(tmp_path):
    """bash checks the script; stand-ins for scontrol and srun (two tasks, node ids 0 and 1) and
    for the nodes' Python (it prints its arguments) run it as sbatch would on two nodes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in(bin_dir, "scontrol", 'echo gpu-17; echo gpu-18\n')
    _stand_in(bin_dir, "srun", 'for id in 0 1; do SLURM_NODEID=$id SLURMD_NODENAME=gpu-1$((7+id)) '
                               'bash -c "${@: -1}" > "$OUT/node-$id.txt"; done\n')
    _stand_in(bin_dir, "python", 'echo "$@"; echo "node=$LLMDECK_NODE"\n')
    run = spec(devices="0,1,2,3", distributed="fsdp", cluster={
        "slurm": True, "nodes": "2", "gpus_per_node": 4, "partition": "gpu", "time": "4:00:00", "account": "ml",
        "sbatch": ["--qos=high"], "remote_python": str(bin_dir / "python")})
    script = sbatch_script(run, tmp_path / "run" / "out", "run-1")
    path = tmp_path / "slurm.sbatch"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    for line in ("#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4", "#SBATCH --partition=gpu", "#SBATCH --time=4:00:00",
                 "#SBATCH --account=ml", "#SBATCH --qos=high", "#SBATCH --ntasks-per-node=1"):
        assert line + "\n" in script, line
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242",
           "SLURM_JOB_NODELIST": "gpu-[17-18]", "OUT": str(tmp_path)}
    subprocess.run(["bash", str(path)], env=env, check=True, timeout=60)
    for node_id, is_host in ((0, 1), (1, 0)):
        printed = (tmp_path / f"node-{node_id}.txt").read_text()
        assert ("--num_processes 8 --num_machines 2 --mixed_precision no --dynamo_backend no "
                f"--main_process_port 24242 --machine_rank {node_id} --main_process_ip gpu-17 --rdzv_backend c10d "
                f"--rdzv_conf is_host={is_host}") in printed
        assert "--use_fsdp" in printed and f"node=gpu-1{7 + node_id}" in printed


def _rank(folder: Path, rank: int, node: str, state: str, at: float, **extra) -> None:
    data = {"rank": rank, "node": node, "host": "h", "pid": 100 + rank, "state": state, "updated": at, "step": 3,
            "memory": "gpu", "mem_gib": 10.0, "peak_gib": 12.0, **extra}
    rank_status.ranks_dir(folder).mkdir(parents=True, exist_ok=True)
    (rank_status.ranks_dir(folder) / f"{rank}.json").write_text(json.dumps(data))


def test_the_first_failure_names_its_node(tmp_path):
    now = time.time()
    # rank 2 on b went silent at t=0 (killed); a's ranks raised when the collective broke, later
    _rank(tmp_path, 0, "a", "error", now, ended=now + 1, message="RuntimeError: Connection closed by peer")
    _rank(tmp_path, 1, "a", "error", now, ended=now + 1.1, message="RuntimeError: Connection closed by peer")
    _rank(tmp_path, 2, "b", "running", now)
    _rank(tmp_path, 3, "b", "error", now, ended=now + 1.05, message="RuntimeError: Connection closed by peer")
    first = rank_status.first_failure(tmp_path, {"a", "b"})
    assert first is not None and first.node == "b"
    assert first.text.startswith("rank 2 (pid 102 on h) died without a word, last heard of at step 3")
    # an error raised before anyone vanished is the cause (b was stopped afterwards)
    _rank(tmp_path, 0, "a", "error", now - 20, ended=now - 19, message="OutOfMemoryError: CUDA out of memory")
    first = rank_status.first_failure(tmp_path, {"a", "b"})
    assert first is not None and first.node == "a" and "OutOfMemoryError" in first.text
    rows = rank_status.node_rows(tmp_path, now=now + 2, active=False)
    assert [(r.name, r.state, r.ranks) for r in rows] == [("a", "failed", [0, 1]), ("b", "failed", [2, 3])]


def test_node_rows_while_running(tmp_path):
    now = time.time()
    rank_status.record_node(tmp_path, "a", index=0, host="gpu-a", state="running")
    rank_status.record_node(tmp_path, "b", index=1, host="gpu-b", state="running")
    _rank(tmp_path, 0, "a", "running", now - 1)
    _rank(tmp_path, 1, "a", "running", now - 1)
    _rank(tmp_path, 2, "b", "running", now - 40)
    rows = rank_status.node_rows(tmp_path, now=now)
    assert [(r.name, r.state, r.alive, r.mem_gib) for r in rows] == [("a", "running", 2, 20.0),
                                                                     ("b", "silent", 1, 10.0)]
    assert rows[1].detail == "no heartbeat for 40 s"
