"""`llmdeck convert meta-to-hf|hf-to-gguf|quantize|merge-lora|gguf-to-hf ...`.

Every conversion runs as a detached run (it survives a closed terminal); without `--detach`
the command follows it and prints progress lines, and Ctrl-C cancels it. `--check` prints the
pre-flight verdict only. With no action, the TUI opens in Convert mode.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from engine.formatting import format_bytes

EXAMPLES = (
    "llmdeck convert                   open Convert mode in the TUI",
    "llmdeck convert hf-to-gguf ./my-llama --outtype f16   HF folder -> GGUF (verified with llama.cpp)",
    "llmdeck convert quantize my-llama-f16.gguf --type Q4_K_M   quantize with llama.cpp's quantizer",
    "llmdeck convert gguf-to-hf gemma.gguf -o ./gemma-hf   dequantize a GGUF into an HF folder",
    "llmdeck convert meta-to-hf ./llama-2-7b -o ./llama-2-7b-hf   Meta consolidated.*.pth -> HF",
    "llmdeck convert merge-lora ./adapter --base ./base -o ./merged   fold a LoRA into its base",
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", help="output path (default: next to the input)")
    p.add_argument("--force", action="store_true", help="replace an existing output; go on despite low disk/RAM warnings")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip comparing logits of output and source")
    p.add_argument("--detach", action="store_true", help="start the run and return at once (`llmdeck runs follow ID`)")
    p.add_argument("--check", action="store_true", help="only print the pre-flight verdict")
    p.add_argument("--json", action="store_true", help="print the verdict/summary as JSON")
    p.add_argument("--name", default="", help="run name (default: the action and output name)")


def register(sub: argparse._SubParsersAction) -> None:
    conv = sub.add_parser("convert", help="convert models: Meta -> HF, HF -> GGUF, quantize, merge LoRA, GGUF -> HF")
    conv.set_defaults(func=cmd_open_tui)
    actions = conv.add_subparsers(dest="convert_action", metavar="ACTION")

    p = actions.add_parser("hf-to-gguf", help="HF safetensors folder -> GGUF (llama, mistral, qwen2, gemma3)")
    p.add_argument("input", help="HF model folder (config.json + *.safetensors + tokenizer)")
    p.add_argument("--outtype", choices=("f32", "f16", "bf16", "q8_0"), default="f16")
    p.add_argument("--model-name", dest="model_name", default="", help="general.name written into the GGUF")
    _common(p)
    p.set_defaults(func=cmd_convert, action="hf-to-gguf")

    p = actions.add_parser("quantize", help="quantize a GGUF with llama.cpp (Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0...)")
    p.add_argument("input", help="a float (f32/f16/bf16) GGUF file")
    p.add_argument("--type", dest="qtype", default="Q4_K_M", help="quantization type (default Q4_K_M)")
    p.add_argument("--threads", dest="nthread", type=int, default=0, help="threads (default: all cores)")
    p.add_argument("--imatrix", default="", help="importance matrix from llama-imatrix (.gguf or .dat)")
    p.add_argument("--allow-requantize", action="store_true", help="allow an already quantized input")
    _common(p)
    p.set_defaults(func=cmd_convert, action="quantize")

    p = actions.add_parser("gguf-to-hf", help="GGUF -> HF folder (dequantized; llama, qwen2, gemma3)")
    p.add_argument("input", help="a .gguf file")
    p.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32")
    p.add_argument("--shard-size", default="2GB", help="max size of one safetensors shard (default 2GB)")
    _common(p)
    p.set_defaults(func=cmd_convert, action="gguf-to-hf")

    p = actions.add_parser("meta-to-hf", help="Meta Llama 1/2/Code Llama (consolidated.*.pth) -> HF folder")
    p.add_argument("input", help="folder with params.json and consolidated.NN.pth")
    p.add_argument("--dtype", choices=("auto", "f32", "f16", "bf16"), default="auto", help="default: the checkpoint's own")
    p.add_argument("--shard-size", default="2GB")
    p.add_argument("--llama-version", type=int, choices=(1, 2), default=2, help="sets the context length (2048 / 4096)")
    p.add_argument("--context", type=int, default=0, help="override max_position_embeddings")
    p.add_argument("--tokenizer", default="", help="tokenizer.model (default: in the folder or its parent)")
    _common(p)
    p.set_defaults(func=cmd_convert, action="meta-to-hf")

    p = actions.add_parser("merge-lora", help="merge a peft LoRA adapter into its base -> standalone HF folder")
    p.add_argument("input", help="adapter folder (adapter_config.json + adapter_model.safetensors)")
    p.add_argument("--base", default="", help="base model folder (default: the adapter's base_model_name_or_path)")
    p.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32")
    p.add_argument("--shard-size", default="2GB")
    _common(p)
    p.set_defaults(func=cmd_convert, action="merge-lora")


def cmd_open_tui(args: argparse.Namespace) -> Any:
    from engine.commands.outcome import OpenTUI

    return OpenTUI(mode="convert", options={})


def build_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "action": args.action,
        "input": args.input,
        "output": args.output or "",
        "force": bool(args.force),
        "verify": bool(args.verify),
    }
    if args.action == "hf-to-gguf":
        spec.update(outtype=args.outtype, name=args.model_name)
    elif args.action == "quantize":
        spec.update(qtype=args.qtype.upper(), nthread=args.nthread, imatrix=args.imatrix, allow_requantize=args.allow_requantize)
    elif args.action == "gguf-to-hf":
        spec.update(dtype=args.dtype, shard_size=args.shard_size)
    elif args.action == "meta-to-hf":
        spec.update(dtype=args.dtype, shard_size=args.shard_size, llama_version=args.llama_version, context=args.context, tokenizer=args.tokenizer)
    elif args.action == "merge-lora":
        spec.update(base=args.base, dtype=args.dtype, shard_size=args.shard_size)
    return spec


def verify_text(verify: Any) -> str:
    if not isinstance(verify, dict):
        return f"verify: {verify}"
    parts = [
        f"max |Δlogit| {verify.get('max_abs_diff')}",
        f"top-1 agreement {100 * float(verify.get('top1_agreement', 0)):.1f}%",
        f"correlation {verify.get('correlation')}",
    ]
    if verify.get("kld") is not None:
        parts.append(f"KLD {float(verify['kld']):.3g}")
    if verify.get("greedy_in_top") is not None:
        parts.append(
            f"greedy: {100 * float(verify.get('greedy_agreement') or 0):.0f}% of tokens equal, "
            f"{100 * float(verify['greedy_in_top']):.0f}% in the output's top 5"
        )
    if verify.get("tokenizer_match"):
        parts.append(f"tokenizer {verify['tokenizer_match']} samples identical")
    text = "verify: " + ", ".join(parts) + f" over {verify.get('positions')} positions"
    if verify.get("sample"):
        text += f"\nsample: {verify['sample']!r}"
    return text


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What a finished conversion says besides its verification: the tokenizer it wrote, the
    chat template it put in an HF folder."""
    out = []
    if summary.get("tokenizer_source"):
        out.append(
            f"tokenizer: {summary['tokenizer_source']} "
            f"(llama.cpp splits {summary.get('tokenizer_check')} samples like transformers)"
        )
    if summary.get("chat_template_why"):
        out.append(f"chat template: {summary['chat_template_why']}")
    return out


def cmd_convert(args: argparse.Namespace) -> int:
    from engine.commands.outcome import CommandError
    from engine.convert import preflight

    spec = preflight.absolute_paths(build_spec(args))
    verdict = preflight.check(spec)
    if args.check:
        if args.json:
            json.dump(verdict.to_dict(), sys.stdout, indent=2)
            print()
        else:
            for line in verdict.lines():
                print(line)
            print("ready" if verdict.ok(args.force) else "refused")
        return 0 if verdict.ok(args.force) else 1
    blocking = verdict.blocking(args.force)
    if blocking:
        hint = " (pass --force to go on anyway)" if all(p.forceable for p in blocking) and "--force" not in blocking[0].text else ""
        raise CommandError(blocking[0].text + hint)
    if not args.json:
        for line in verdict.lines():
            print(line)
    spec["output"] = verdict.output
    from pathlib import Path

    from engine.runs import RunStore

    store = RunStore()
    kind = f"convert.{args.action}"
    name = args.name or f"{args.action} {Path(verdict.output).name}"
    info = store.start(kind, spec, name=name)
    if args.detach:
        print(f"started run {info.id}; `llmdeck runs follow {info.id}` to watch it, `llmdeck runs cancel {info.id}` to stop it")
        return 0
    return follow(store, info.id, as_json=args.json)


def _size(summary: dict[str, Any]) -> int:
    from pathlib import Path

    path = Path(str(summary.get("output") or ""))
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def follow(store: Any, run_id: str, *, as_json: bool = False) -> int:
    """Print a run's progress until it ends; Ctrl-C cancels it. Exit 0 only on success."""
    from engine.events import Cancelled, Failed, Finished, Log, Metric, Progress
    from engine.formatting import progress_text

    metric: dict[str, float] | None = None
    last_print = 0.0
    last_phase = ""
    final: Any = None
    try:
        for event in store.follow(run_id):
            if isinstance(event, Metric):
                metric = event.values
            elif isinstance(event, Progress):
                now = time.monotonic()
                complete = event.total is not None and event.done >= event.total
                if not as_json and (event.phase != last_phase or complete or now - last_print >= 1.0):
                    print(progress_text(event, metric), flush=True)
                    last_print, last_phase = now, event.phase
            elif isinstance(event, Log) and not as_json and event.level in ("warning", "error"):
                print(f"{event.level}: {event.text}", flush=True)
            elif isinstance(event, (Finished, Failed, Cancelled)):
                final = event
    except KeyboardInterrupt:
        print("cancelling...", file=sys.stderr, flush=True)
        try:
            store.cancel(run_id)
        except Exception:  # noqa: BLE001 - it may have just ended
            pass
        deadline = time.monotonic() + 10
        while store.get(run_id).active and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"run {run_id}: {store.get(run_id).status}", file=sys.stderr)
        return 130
    if isinstance(final, Finished):
        if as_json:
            json.dump(final.summary, sys.stdout, indent=2, default=str)
            print()
        else:
            size = format_bytes(_size(final.summary))
            print(f"wrote {final.summary.get('output')} ({size}) in {final.summary.get('seconds')}s")
            for line in summary_lines(final.summary):
                print(line)
            print(verify_text(final.summary.get("verify")))
        return 0
    if isinstance(final, Failed):
        print(f"llmdeck: error: {final.message}", file=sys.stderr)
        print(f"(run {run_id}; its log: `llmdeck runs show {run_id}`)", file=sys.stderr)
        return 1
    if isinstance(final, Cancelled):
        print(f"run {run_id}: cancelled", file=sys.stderr)
        return 130
    info = store.get(run_id)
    print(f"llmdeck: error: run {run_id} ended {info.status}: {info.exit_reason}", file=sys.stderr)
    return 1
