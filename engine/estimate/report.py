"""One call for front ends: model + mode + knobs -> estimate, verdicts, time; and its text form.

Used by `llmdeck estimate`, the Estimate screen, and as the pre-flight check elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from engine.estimate.distributed import step_traffic
from engine.estimate.fit import DEFAULT_CARDS, Target, Verdict, card_targets, fit_verdict, local_gpus
from engine.estimate.inference import InferenceOptions, estimate_inference
from engine.estimate.result import Estimate
from engine.estimate.sources import EstimateError, resolve_model
from engine.estimate.spec import GIB, ModelSpec
from engine.estimate.timing import DEFAULT_MFU, decode_tokens_per_s, format_duration, gpu_specs, training_time
from engine.estimate.training import TrainingOptions, estimate_training

MODES = ("infer", "full", "lora", "qlora")
CARD_GPU_NAMES = {24: "4090", 40: "A100", 48: "A6000", 80: "H100", 141: "H200"}


@dataclass
class Report:
    spec: ModelSpec
    options: TrainingOptions | InferenceOptions
    estimate: Estimate
    verdicts: list[Verdict]
    gpu_note: str | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    distributed: dict[str, Any] = field(default_factory=dict)  # several nodes: engine.estimate.distributed

    def to_dict(self) -> dict[str, Any]:
        out = self.estimate.to_dict() | {
            "verdicts": [v.to_dict() for v in self.verdicts],
            "local_gpus": self.gpu_note or "queried",
            "time": self.timing,
        }
        if self.distributed:
            out["distributed"] = self.distributed
        return out


def _options(mode: str, knobs: dict[str, Any]) -> TrainingOptions | InferenceOptions:
    cls: type = InferenceOptions if mode == "infer" else TrainingOptions
    if cls is TrainingOptions and knobs.get("objective") not in (None, "", "sft"):
        from engine.estimate.methods import MethodOptions

        cls = MethodOptions  # DPO, ORPO, KTO, GRPO: engine/estimate/methods.py
    names = {f.name for f in fields(cls)}
    kw = {k: v for k, v in knobs.items() if k in names and v is not None}
    if cls is not InferenceOptions:
        kw["method"] = mode
    return cls(**kw)


def estimate(model: str | ModelSpec, mode: str = "infer", *, cards: list[float] | None = None,
             local: bool = True, nvml: Any = None, local_gpus_found: tuple[list[Target], str | None] | None = None,
             tokens: float | None = None, mfu: float = DEFAULT_MFU,
             measured_tokens_per_s: float | None = None, gpu_name: str | None = None, nodes: int = 1,
             interconnect: str | None = None, **knobs: Any) -> Report:
    """Estimate `model` in `mode` with option knobs (see InferenceOptions / TrainingOptions).

    `nodes` > 1 (training only): `gpus` is per node, memory is per GPU of the whole job, and the
    report adds the inter-node traffic and step time over `interconnect` (engine.estimate.distributed).

    Verdicts cover this machine's GPUs (free memory, NVML) when `local`, plus `cards`
    (default 24/40/48/80/141 GB when no local GPU is found and no card was chosen).
    `local_gpus_found` passes an earlier local_gpus() answer (the TUI queries NVML once).
    """
    if mode not in MODES:
        raise EstimateError(f"mode must be one of {', '.join(MODES)}")
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    if nodes > 1:
        if mode == "infer":
            raise EstimateError("--nodes is for training (--mode full, lora or qlora)")
        knobs = knobs | {"gpus": nodes * int(knobs.get("gpus") or 1), "shard": knobs.get("shard") or "ddp"}
    try:
        opts = _options(mode, knobs)
        if isinstance(opts, TrainingOptions) and hasattr(opts, "objective"):
            from engine.estimate.methods import estimate_method

            est = estimate_method(spec, opts)
        else:
            est = estimate_training(spec, opts) if isinstance(opts, TrainingOptions) else estimate_inference(spec, opts)
    except ValueError as exc:
        raise EstimateError(str(exc)) from exc
    targets: list[Target] = []
    note = None
    if local:
        found, note = local_gpus_found if local_gpus_found is not None else local_gpus(nvml)
        targets += found
    if cards or not targets:
        targets += card_targets(cards or list(DEFAULT_CARDS))
    verdicts = fit_verdict(est, targets, spec, opts)

    if not gpu_name:
        local_names = [t.name for t in targets if t.source == "nvml"]
        if local_names:
            gpu_name = local_names[0]
        elif cards:
            gpu_name = CARD_GPU_NAMES.get(int(cards[0]))
    timing: dict[str, Any] = {}
    if isinstance(opts, TrainingOptions):
        gpus = opts.gpus
        name, peak, _ = gpu_specs(gpu_name)
        k = (6 if opts.method == "full" else 4) + (2 if opts.grad_checkpointing else 0)
        rate = measured_tokens_per_s or gpus * peak * mfu / (k * spec.params)
        timing["tokens_per_s"] = round(rate, 1)
        if tokens:
            t = training_time(spec.params, tokens, opts.method, gpus, gpu_name, mfu, opts.grad_checkpointing,
                              measured_tokens_per_s)
            timing |= t.to_dict() | {"tokens": tokens, "human": format_duration(t.seconds)}
        else:
            timing["basis"] = (f"measured {measured_tokens_per_s:,.0f} tokens/s" if measured_tokens_per_s else
                               f"{k}*N FLOPs/token at {mfu:.0%} of {gpus} x {name}")
    else:
        rate, basis = decode_tokens_per_s(est.bytes_of("weights") * opts.gpus, est.bytes_of("kv_cache") * opts.gpus,
                                          gpu_name)
        timing = {"decode_tokens_per_s": round(rate * opts.batch, 1), "basis": basis + f", batch {opts.batch}"}
    distributed: dict[str, Any] = {}
    if nodes > 1 and isinstance(opts, TrainingOptions):
        try:
            traffic = step_traffic(spec, opts, nodes=nodes, trainable=est.trainable_params or spec.params,
                                   interconnect=interconnect, gpu_name=gpu_name, mfu=mfu)
        except ValueError as exc:
            raise EstimateError(str(exc)) from exc
        distributed = traffic.to_dict()
    return Report(spec, opts, est, verdicts, note if local else "not queried", timing, distributed)


def _gib(x: float) -> str:
    return f"{x / GIB:8.2f}"


def format_report(report: Report) -> str:
    """The breakdown table, total, verdicts and time as plain text (80 columns)."""
    est, spec = report.estimate, report.spec
    lines = []
    what = {"infer": "inference", "full": "full fine-tune", "lora": "LoRA", "qlora": "QLoRA"}[est.mode]
    if est.settings.get("objective", "sft") != "sft":
        what = f"{est.settings['objective'].upper()} with {what}"
    lines.append(f"{spec.name}: {spec.params / 1e9:.2f}B params, {spec.n_layers} layers, hidden {spec.hidden}, "
                 f"{spec.n_heads}/{spec.n_kv_heads} heads, vocab {spec.vocab:,} [{spec.source}]")
    s = est.settings
    if est.mode == "infer":
        lines.append(f"{what} with {s['backend']}: context {s['context']:,}, batch {s['batch']}, "
                     f"KV {s['kv_dtype']}" + (f", {s['gpus']} GPUs" if s["gpus"] > 1 else ""))
    else:
        lines.append(f"{what}: batch {s['batch']} x seq {s['seq_len']:,}, {s['precision']}, {s['optimizer']}"
                     + (", grad checkpointing" if s["grad_checkpointing"] else "")
                     + (f", rank {s['lora_rank']} on {s['lora_targets']}" if est.mode != "full" else "")
                     + (f", {s['gpus']} GPUs {s['shard']}" if s["gpus"] > 1 else ""))
    lines.append("")
    lines.append(f"{'component':44} {'GiB':>8}  at peak")
    for c in est.components:
        lines.append(f"{c.label[:44]:44} {_gib(c.bytes)}  {'yes' if c.at_peak else '-'}")
    lines.append(f"{'total per GPU':44} {_gib(est.total_bytes)}  ({est.total_bytes / 1e9:.2f} GB)")
    if est.mode != "infer" or s.get("backend") == "transformers":
        lines.append(f"{'  of which torch max_memory_allocated':44} {_gib(est.allocated_bytes)}")
    lines.append(f"peak: {est.peak_phase}")
    for n in est.notes:
        lines.append(f"note: {n}")
    lines.append("")
    if report.gpu_note and report.gpu_note != "not queried":
        lines.append(f"this machine: {report.gpu_note}")
    for v in report.verdicts:
        mark = {"fits": "FITS", "tight": "TIGHT", "does not fit": "NO FIT"}[v.status]
        lines.append(f"{v.target[:40]:40} {mark:7} need {v.need_gib:.1f} of {v.capacity_gib:.1f} GiB")
        if v.change:
            tail = f" -> {v.change_need_gib:.1f} GiB" if v.change_need_gib is not None else ""
            lines.append(f"    cheapest change: {v.change}{tail}")
    lines += _distributed_lines(report.distributed)
    t = report.timing
    if t:
        lines.append("")
        if "decode_tokens_per_s" in t:
            lines.append(f"decode speed ~{t['decode_tokens_per_s']:,.0f} tokens/s ({t['basis']})")
        else:
            if "human" in t:
                lines.append(f"time for {t['tokens']:,.0f} tokens: {t['human']} ({t['basis']})")
            else:
                lines.append(f"throughput ~{t['tokens_per_s']:,.0f} tokens/s ({t['basis']})")
    return "\n".join(lines)


def _distributed_lines(d: dict[str, Any]) -> list[str]:
    """The across-nodes section: traffic per step, its time, the compute time, the step."""
    if not d:
        return []
    gib = d["inter_node_bytes_per_step"] / GIB
    return [
        "",
        f"across {d['nodes']} nodes x {d['gpus_per_node']} GPUs ({d['strategy']}), {d['interconnect']}:",
        f"  inter-node traffic per step: {gib:.2f} GiB sent by each node ({d['collectives']})",
        f"  network {d['network_s']:.3f} s + compute {d['compute_s']:.3f} s per step: "
        f"step {d['step_s_overlapped']:.3f} s overlapped, {d['step_s_serial']:.3f} s serial ({d['bound']}-bound)",
        f"  ~{d['tokens_per_s']:,.0f} tokens/s overlapped, ~{d['tokens_per_s_serial']:,.0f} serial",
    ]


_FLAGS = {"context": "--context", "weight_dtype": "--weights", "kv_dtype": "--kv-dtype", "backend": "--backend",
          "batch": "--batch", "seq_len": "--seq-len", "precision": "--precision", "optimizer": "--optimizer",
          "lora_rank": "--rank", "lora_targets": "--targets", "gpus": "--gpus", "shard": "--shard",
          "objective": "--method", "beta": "--beta", "grad_accum": "--grad-accum",
          "num_generations": "--num-generations", "max_completion_len": "--max-completion-len"}


def cli_command(model: str, mode: str, knobs: dict[str, Any], cards: list[float] | None = None) -> str:
    """The `llmdeck estimate ...` line that reproduces these settings (shown by the TUI)."""
    import shlex

    parts = ["llmdeck", "estimate", shlex.quote(model), "--mode", mode]
    for key, flag in _FLAGS.items():
        value = knobs.get(key)
        if value is None or value == "" or (key == "shard" and value == "none"):
            continue
        parts += [flag, shlex.quote(str(value))]
    if knobs.get("grad_checkpointing"):
        parts.append("--grad-checkpointing")
    if cards:
        parts += ["--card", ",".join(f"{c:g}" for c in cards)]
    return " ".join(parts)
