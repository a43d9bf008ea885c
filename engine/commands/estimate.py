"""`llmdeck estimate MODEL --mode infer|full|lora|qlora [...]`: memory and time before you wait.

MODEL is a preset (llama-2-7b, llama-3-8b, mistral-7b, gemma-3-270m ...), a Hugging Face model
folder, a .gguf file, or explicit dims ("dims:layers=32,hidden=4096,heads=32,vocab=32000,...").
With no MODEL the TUI opens on Estimate mode. The engine lives in engine/estimate/; this module
only parses arguments (and stays light: nothing heavy is imported to build the parser).
"""

from __future__ import annotations

import argparse
import json
import sys

EXAMPLES = (
    "llmdeck estimate llama-2-7b --context 4096          inference memory: weights, KV cache, fit per card",
    "llmdeck estimate model.gguf --backend llama.cpp     a GGUF's real bits per weight, KV cache, verdict",
    "llmdeck estimate llama-3-8b --mode qlora --batch 4 --seq-len 2048 --card 24   will QLoRA fit a 4090?",
    "llmdeck estimate ./my-model --mode full --gpus 4 --shard fsdp --json          per-GPU split, as JSON",
    "llmdeck estimate llama-3-8b --method dpo --mode full --card 80        DPO: the frozen reference copy counts",
    "llmdeck estimate llama-3.1-8b --method grpo --num-generations 8 --max-completion-len 512   generation KV cache",
    "llmdeck estimate llama-3-8b --mode full --nodes 2 --gpus 8 --shard fsdp --interconnect ib-400   "
    "per GPU + inter-node traffic and step time",
    "llmdeck estimate                                    open the interactive Estimate mode",
)


def _cards(values: list[str] | None) -> list[float] | None:
    if not values:
        return None
    out: list[float] = []
    for v in values:
        for part in v.split(","):
            part = part.strip().lower().removesuffix("gb").strip()
            if part:
                try:
                    out.append(float(part))
                except ValueError:
                    from engine.commands.outcome import CommandError

                    raise CommandError(f"--card takes sizes in GB like 24 or 80,141 (got {v!r})") from None
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimate",
        help="memory (and time) to run or train a model, and whether it fits",
        description="Estimate GPU memory for inference or training (full, LoRA, QLoRA) from a preset, "
        "an HF folder, a GGUF file or explicit dims; no weights are loaded. Prints a breakdown, the "
        "total per GPU, a verdict per GPU of this machine (or per --card) and the cheapest change that fits.",
    )
    p.add_argument("model", nargs="?", help="preset name, HF model folder, .gguf file, or dims:layers=..,hidden=..")
    p.add_argument("--mode", choices=("infer", "full", "lora", "qlora"), default=None,
                   help="infer (default), or the training adapter: full, lora, qlora (lora when --method is given)")
    p.add_argument("--method", dest="objective", choices=("sft", "dpo", "orpo", "kto", "grpo"),
                   help="training objective (default sft): DPO/KTO add a reference model on a full fine-tune, "
                   "GRPO a generation phase")
    g = p.add_argument_group("inference")
    g.add_argument("--context", type=int, help="tokens in the KV cache (default 4096)")
    g.add_argument("--weights", dest="weight_dtype",
                   help="weight dtype: bf16, fp16, fp32, int8, nf4, or a GGUF type like Q4_K_M")
    g.add_argument("--kv-dtype", dest="kv_dtype", help="KV cache dtype: fp16 (default), bf16, fp32, fp8, q8_0, q4_0")
    g.add_argument("--backend", choices=("transformers", "llama.cpp"),
                   help="default: transformers (llama.cpp for a .gguf)")
    g.add_argument("--full-logits", action="store_true", help="keep logits for every position (perplexity runs)")
    t = p.add_argument_group("training")
    t.add_argument("--batch", type=int, help="micro-batch per GPU (default 1)")
    t.add_argument("--seq-len", type=int, dest="seq_len", help="training sequence length (default 2048)")
    t.add_argument("--precision", choices=("mixed", "bf16", "fp32"),
                   help="mixed = fp32 master weights + bf16 autocast; bf16 = pure bf16 (default)")
    t.add_argument("--optimizer", choices=("adamw", "adamw_8bit", "paged_adamw", "paged_adamw_8bit", "sgd"))
    t.add_argument("--optimizer-impl", dest="optimizer_impl", choices=("fused", "foreach", "forloop"),
                   help="torch AdamW implementation (default fused, transformers' default)")
    t.add_argument("--grad-checkpointing", "--gc", dest="grad_checkpointing", action="store_true", default=None)
    t.add_argument("--rank", type=int, dest="lora_rank", help="LoRA rank (default 16)")
    t.add_argument("--targets", dest="lora_targets",
                   help="LoRA targets: all-linear (default), qv, attn, mlp or q_proj,v_proj,...")
    t.add_argument("--lora-dropout", type=float, dest="lora_dropout")
    t.add_argument("--attention", choices=("sdpa", "eager"))
    t.add_argument("--chunked-loss", dest="chunked_loss", action="store_true", default=None,
                   help="chunked cross-entropy (torchtune/Liger): fp32 logits one chunk at a time")
    t.add_argument("--optimizer-in-backward", dest="optimizer_in_backward", action="store_true", default=None,
                   help="apply each gradient as soon as it exists (torchtune optimizer_in_bwd)")
    t.add_argument("--beta", type=float, help="GRPO: KL coefficient; > 0 needs a reference model (default 0)")
    t.add_argument("--grad-accum", type=int, dest="grad_accum", help="GRPO: generation batch = batch x grad_accum")
    t.add_argument("--num-generations", type=int, dest="num_generations", help="GRPO: completions per prompt")
    t.add_argument("--max-completion-len", type=int, dest="max_completion_len",
                   help="GRPO: new tokens per completion (--seq-len is then the prompt)")
    t.add_argument("--tokens", type=float, help="training tokens (all epochs) for a time estimate")
    t.add_argument("--mfu", type=float, default=0.4, help="utilisation for the FLOPs time estimate (default 0.4)")
    t.add_argument("--tokens-per-s", type=float, dest="measured_tokens_per_s",
                   help="measured tokens/s instead of FLOPs")
    h = p.add_argument_group("hardware")
    h.add_argument("--gpus", type=int, help="GPUs (data parallel / sharded training, or split inference); "
                   "per node with --nodes")
    h.add_argument("--nodes", type=int, default=1, help="machines training together (default 1): adds the inter-node "
                   "traffic per step and the step time it implies")
    h.add_argument("--interconnect", help="the link between nodes, per node: 100Gbps, 25GB/s, 400GbE, ib-hdr, "
                   "ib-400, 8x ib-400 (eight NICs); default 100Gbps")
    h.add_argument("--shard", choices=("ddp", "zero1", "zero2", "zero3", "fsdp"), help="multi-GPU training strategy")
    h.add_argument("--card", action="append",
                   help="card size(s) in GB to check: 24, 40, 48, 80, 141 (repeat or comma list)")
    h.add_argument("--gpu-name", dest="gpu_name",
                   help="GPU for speed estimates (e.g. H100, 4090); default: this machine's")
    h.add_argument("--no-local", action="store_true", help="do not query this machine's GPUs (NVML)")
    h.add_argument("--cuda-context", type=float, dest="cuda_context_gib",
                   help="GiB for CUDA context + libraries (default 0.5)")
    p.add_argument("--json", action="store_true", help="print the whole estimate as JSON")
    p.add_argument("--presets", action="store_true", help="list the built-in model presets and exit")
    p.set_defaults(func=cmd_estimate)


KNOBS = ("context", "weight_dtype", "kv_dtype", "backend", "batch", "seq_len", "precision", "optimizer",
         "optimizer_impl", "grad_checkpointing", "lora_rank", "lora_targets", "lora_dropout", "attention", "gpus",
         "chunked_loss", "optimizer_in_backward", "cuda_context_gib", "objective", "beta", "grad_accum",
         "num_generations", "max_completion_len")


def cmd_estimate(args: argparse.Namespace):
    from engine.commands.outcome import CommandError, OpenTUI

    if args.presets:
        from engine.estimate import PRESETS

        for name, spec in PRESETS.items():
            print(f"{name:16} {spec.params / 1e9:6.2f}B  L{spec.n_layers} h{spec.hidden} heads {spec.n_heads}/"
                  f"{spec.n_kv_heads} vocab {spec.vocab:,} ctx {spec.max_context:,}")
        return 0
    if args.mode is None:
        args.mode = "lora" if args.objective not in (None, "sft") else "infer"
    if args.mode == "infer" and args.objective not in (None, "sft"):
        raise CommandError(f"--method {args.objective} is a training method: give --mode full, lora or qlora")
    if args.nodes < 1:
        raise CommandError("--nodes must be 1 or more")
    if args.interconnect and args.nodes == 1:
        raise CommandError("--interconnect describes the link between nodes: give --nodes 2 or more")
    if not args.model:
        options = {"mode": args.mode} | {k: getattr(args, k) for k in KNOBS if getattr(args, k, None) is not None}
        return OpenTUI(mode="estimate", options={"estimate": options})

    from engine.estimate import EstimateError, estimate, format_report

    knobs = {k: getattr(args, k) for k in KNOBS if getattr(args, k, None) is not None}
    if args.shard:
        knobs["shard"] = args.shard
    if args.full_logits:
        knobs["full_logits"] = True
    gguf_weights = str(knobs.get("weight_dtype", "")).upper().startswith(("Q", "IQ", "TQ"))
    if args.mode == "infer" and "backend" not in knobs and (args.model.lower().endswith(".gguf") or gguf_weights):
        knobs["backend"] = "llama.cpp"
    try:
        report = estimate(args.model, args.mode, cards=_cards(args.card), local=not args.no_local,
                          tokens=args.tokens, mfu=args.mfu, measured_tokens_per_s=args.measured_tokens_per_s,
                          gpu_name=args.gpu_name, nodes=args.nodes, interconnect=args.interconnect, **knobs)
    except EstimateError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2, default=str)
        print()
    else:
        print(format_report(report))
    return 0
