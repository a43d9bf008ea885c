"""Training across nodes: what crosses the network in one step, and the step time it implies.

Per-GPU memory over several nodes is the single-node estimate with the world size (nodes x GPUs
per node) as the sharding divisor: FSDP FULL_SHARD and ZeRO shard over every GPU of the job.
What changes with nodes is the traffic, because the links between nodes are 10-100x slower than
NVLink inside one. Collective volumes (ZeRO paper, Rajbhandari et al. 2020, section 7; ring
collectives, Patarasuk & Yuan 2009): for a buffer of M bytes over k nodes, the inter-node part of
a hierarchical collective (NCCL's tree/ring over nodes, intra-node reduction on NVLink) makes
each node send

    all-reduce      2 (k-1)/k M
    all-gather        (k-1)/k M
    reduce-scatter    (k-1)/k M

and per optimizer step (no gradient accumulation), with N parameters, T of them trained, G the
gradient bytes (T x gradient dtype) and W the parameter bytes in compute precision:

    ddp             all-reduce of the gradients                     2 (k-1)/k G
    zero1, zero2    reduce-scatter of gradients + all-gather of the
                    updated trained parameters                        (k-1)/k (G + T a)
    zero3, fsdp     all-gather of every parameter in the forward and
                    again in the backward + reduce-scatter of grads   (k-1)/k (2 W + G)

(ZeRO-3/FSDP is 1.5x DDP for a full fine-tune, as the paper says; with LoRA the frozen base is
sharded too and gathered twice per step, while DDP moves only the adapters' gradients.)
Time: those bytes over the interconnect given per node (all its NICs together) at its line rate:
a lower bound, no protocol overhead. Compute per step: k_f x N x tokens FLOPs (timing.py) at the
stated utilisation. The step takes between max(compute, network) (the library overlaps the
collectives with the backward, as DDP buckets and FSDP prefetch do) and their sum (no overlap).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.estimate.spec import ModelSpec
from engine.estimate.timing import DEFAULT_MFU, gpu_specs
from engine.estimate.training import TrainingOptions

# Line rates in Gbit/s of common links between nodes (per NIC; "8x" in front multiplies).
INTERCONNECTS_GBPS: dict[str, float] = {
    "1gbe": 1, "10gbe": 10, "25gbe": 25, "40gbe": 40, "100gbe": 100, "200gbe": 200, "400gbe": 400,
    "ib-edr": 100, "ib-hdr": 200, "ib-ndr": 400, "ib-xdr": 800,
    "ib-100": 100, "ib-200": 200, "ib-400": 400, "ib-800": 800,
}
DEFAULT_INTERCONNECT = "100Gbps"
_RATE = re.compile(r"^(?P<value>\d+(?:\.\d+)?)(?P<prefix>[mMgGtT])(?P<unit>[A-Za-z/]*)$")
_PREFIX_GBIT = {"m": 0.001, "g": 1.0, "t": 1000.0}


class InterconnectError(ValueError):
    """The --interconnect value is not a link this module can read."""


def interconnect_bytes_per_s(text: str) -> tuple[float, str]:
    """(bytes/s, label) for "100Gbps", "ib-400", "8x ib-ndr" (eight NICs), "400GbE", "25GB/s".
    A capital B is bytes (GB/s), a small b is bits (Gbps, Gb/s, GbE)."""
    raw = text.strip().replace(" ", "")
    count = 1
    multi = re.match(r"^(\d+)[xX*](.+)$", raw)
    if multi:
        count, raw = int(multi.group(1)), multi.group(2)
    gbps = INTERCONNECTS_GBPS.get(raw.lower())
    if gbps is None:
        m = _RATE.match(raw)
        unit = m.group("unit") if m else ""
        if not m or unit.lower() not in ("bps", "b/s", "bit/s", "bit", "b", "be"):
            raise InterconnectError(f"--interconnect {text!r}: give a rate like 100Gbps, 25GB/s or 3.2Tbps, "
                                    f"or one of {', '.join(INTERCONNECTS_GBPS)} (8x ib-400 for eight NICs)")
        gbps = float(m.group("value")) * _PREFIX_GBIT[m.group("prefix").lower()]
        if unit.startswith("B") and unit.lower() != "be":
            gbps *= 8  # bytes per second
    gbps *= count
    if gbps <= 0:
        raise InterconnectError(f"--interconnect {text!r}: the rate must be positive")
    return gbps * 1e9 / 8, f"{gbps:g} Gbit/s per node"


@dataclass(frozen=True)
class StepTraffic:
    """One optimizer step of a multi-node run, from the point of view of one node."""

    nodes: int
    gpus_per_node: int
    strategy: str
    bytes_per_node: float  # sent over the inter-node links by each node, per step
    collectives: str  # which collectives, as a formula
    link_bytes_per_s: float
    link: str
    network_s: float
    compute_s: float
    tokens_per_step: int

    @property
    def step_s_overlapped(self) -> float:
        return max(self.compute_s, self.network_s)

    @property
    def step_s_serial(self) -> float:
        return self.compute_s + self.network_s

    @property
    def bound(self) -> str:
        return "network" if self.network_s > self.compute_s else "compute"

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes, "gpus_per_node": self.gpus_per_node, "world": self.nodes * self.gpus_per_node,
            "strategy": self.strategy, "inter_node_bytes_per_step": int(self.bytes_per_node),
            "inter_node_gib_per_step": round(self.bytes_per_node / 2**30, 3), "collectives": self.collectives,
            "interconnect": self.link, "network_s": round(self.network_s, 4), "compute_s": round(self.compute_s, 4),
            "step_s_overlapped": round(self.step_s_overlapped, 4), "step_s_serial": round(self.step_s_serial, 4),
            "tokens_per_s": round(self.tokens_per_step / self.step_s_overlapped, 1) if self.step_s_overlapped else None,
            "tokens_per_s_serial": round(self.tokens_per_step / self.step_s_serial, 1) if self.step_s_serial else None,
            "bound": self.bound,
        }


def step_traffic(spec: ModelSpec, opt: TrainingOptions, *, nodes: int, trainable: int,
                 interconnect: str | None = None, gpu_name: str | None = None, mfu: float = DEFAULT_MFU) -> StepTraffic:
    """Inter-node bytes and time of one step for `opt` (whose `gpus` is the whole world size)."""
    if nodes < 1 or opt.gpus % nodes:
        raise ValueError(f"{opt.gpus} GPUs cannot be spread evenly over {nodes} nodes")
    link_bps, link = interconnect_bytes_per_s(interconnect or DEFAULT_INTERCONNECT)
    if not interconnect:
        link += " (assumed; give --interconnect)"
    k = nodes
    full = opt.method == "full"
    grad_bytes = 2 if (full and opt.precision == "bf16") else 4  # as training.py counts them
    act_bytes = 4 if opt.precision == "fp32" else 2  # parameters move in compute precision
    grads = trainable * grad_bytes
    frac = (k - 1) / k
    strategy = opt.shard if opt.shard != "none" else "ddp"
    if strategy == "ddp":
        sent, what = 2 * frac * grads, "all-reduce(grads): 2(k-1)/k x G"
    elif strategy in ("zero1", "zero2"):
        sent = frac * (grads + trainable * act_bytes)
        what = "reduce-scatter(grads) + all-gather(params): (k-1)/k x (G + T a)"
    else:
        weights = spec.params * act_bytes
        sent = frac * (2 * weights + grads)
        what = "2 x all-gather(params) + reduce-scatter(grads): (k-1)/k x (2W + G)"
    _, peak, _ = gpu_specs(gpu_name)
    per_token = (6 if full else 4) + (2 if opt.grad_checkpointing else 0)
    tokens_gpu = opt.batch * opt.seq_len
    compute_s = per_token * spec.params * tokens_gpu / (peak * mfu)
    return StepTraffic(nodes=k, gpus_per_node=opt.gpus // k, strategy=strategy, bytes_per_node=sent,
                       collectives=what, link_bytes_per_s=link_bps, link=link, network_s=sent / link_bps,
                       compute_s=compute_s, tokens_per_step=tokens_gpu * opt.gpus)
