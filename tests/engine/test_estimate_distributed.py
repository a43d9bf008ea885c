"""The estimator across nodes: per-GPU memory over the whole world, the inter-node traffic of
each strategy against the collective volumes worked out by hand, the link rates it reads, and
the step time it implies."""

from __future__ import annotations

import json

import pytest

from engine.cli import run_command
from engine.estimate import estimate, find_preset
from engine.estimate.distributed import InterconnectError, interconnect_bytes_per_s, step_traffic
from engine.estimate.training import TrainingOptions


@pytest.mark.parametrize(("text", "gbit"), [
    ("100Gbps", 100), ("100 Gb/s", 100), ("400GbE", 400), ("ib-400", 400), ("ib-hdr", 200), ("ib-ndr", 400),
    ("8x ib-400", 3200), ("25GB/s", 200), ("3.2Tbps", 3200),
])
def test_interconnect_rates(text, gbit):
    assert interconnect_bytes_per_s(text)[0] == pytest.approx(gbit * 1e9 / 8)


def test_an_unknown_link_says_what_it_takes():
    with pytest.raises(InterconnectError, match="give a rate like 100Gbps"):
        interconnect_bytes_per_s("fast")


def test_traffic_per_strategy_matches_the_collective_volumes():
    spec = find_preset("llama-3-8b")
    n = spec.params
    k = 4  # nodes, 8 GPUs each
    ddp = step_traffic(spec, TrainingOptions(method="full", gpus=32, shard="ddp", precision="mixed"), nodes=k,
                       trainable=n, interconnect="ib-400")
    # mixed precision: fp32 gradients (4 B); all-reduce: each node sends 2(k-1)/k of them
    assert ddp.bytes_per_node == pytest.approx(2 * 3 / 4 * 4 * n)
    assert ddp.network_s == pytest.approx(ddp.bytes_per_node / 50e9)
    fsdp = step_traffic(spec, TrainingOptions(method="full", gpus=32, shard="fsdp", precision="bf16"), nodes=k,
                        trainable=n, interconnect="ib-400")
    ddp_bf16 = step_traffic(spec, TrainingOptions(method="full", gpus=32, shard="ddp", precision="bf16"), nodes=k,
                            trainable=n, interconnect="ib-400")
    # ZeRO paper: ZeRO-3 moves 3 parameter volumes, DDP 2: 1.5x in the same precision
    assert fsdp.bytes_per_node == pytest.approx(1.5 * ddp_bf16.bytes_per_node)
    zero2 = step_traffic(spec, TrainingOptions(method="full", gpus=32, shard="zero2", precision="bf16"), nodes=k,
                         trainable=n, interconnect="ib-400")
    assert zero2.bytes_per_node == pytest.approx(ddp_bf16.bytes_per_node)  # ZeRO-2: same volume as DDP
    lora_t = 20_000_000
    lora_ddp = step_traffic(spec, TrainingOptions(method="lora", gpus=32, shard="ddp"), nodes=k, trainable=lora_t)
    assert lora_ddp.bytes_per_node == pytest.approx(2 * 3 / 4 * 4 * lora_t)  # only the adapters' fp32 grads
    assert "assumed" in lora_ddp.link  # no --interconnect: 100 Gbit/s, and the report says so
    assert lora_ddp.compute_s == pytest.approx(4 * n * 1 * 2048 / (989e12 * 0.4))  # 4N FLOPs per token on an H100
    assert ddp.step_s_serial == pytest.approx(ddp.compute_s + ddp.network_s)


def test_nodes_spread_memory_over_the_whole_world_and_add_the_network(capsys):
    two_by_four = estimate("llama-3-8b", "full", nodes=2, gpus=4, shard="fsdp", interconnect="ib-400", local=False,
                           cards=[80])
    one_by_eight = estimate("llama-3-8b", "full", gpus=8, shard="fsdp", local=False, cards=[80])
    assert two_by_four.estimate.total_bytes == one_by_eight.estimate.total_bytes
    d = two_by_four.distributed
    assert (d["nodes"], d["gpus_per_node"], d["world"], d["strategy"]) == (2, 4, 8, "fsdp")
    assert not one_by_eight.distributed
    assert run_command(["estimate", "llama-3-8b", "--mode", "lora", "--nodes", "2", "--gpus", "8",
                        "--interconnect", "100Gbps", "--card", "80", "--no-local"]) == 0
    out = capsys.readouterr().out
    assert "across 2 nodes x 8 GPUs (ddp), 100 Gbit/s per node:" in out
    assert "inter-node traffic per step" in out and "overlapped" in out
    assert run_command(["estimate", "llama-3-8b", "--mode", "full", "--nodes", "2", "--gpus", "8", "--shard", "zero3",
                        "--no-local", "--card", "80", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["distributed"]["world"] == 16 and data["distributed"]["inter_node_bytes_per_step"] > 0


def test_node_flags_are_checked(capsys):
    assert run_command(["estimate", "llama-3-8b", "--interconnect", "ib-400", "--no-local"]) == 2
    assert "give --nodes 2 or more" in capsys.readouterr().err
    assert run_command(["estimate", "llama-3-8b", "--nodes", "2", "--no-local"]) == 2
    assert "--nodes is for training" in capsys.readouterr().err
    assert run_command(["estimate", "llama-3-8b", "--mode", "full", "--nodes", "2", "--interconnect", "warp",
                        "--no-local"]) == 2
    assert "give a rate like 100Gbps" in capsys.readouterr().err
