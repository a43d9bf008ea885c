"""`llmdeck data inspect FILE --model M` and `llmdeck data` (opens Data mode).

`inspect` scans the file once against the model's tokenizer and chat template and prints what
Data mode shows: the detected format, every problem with its line, token lengths with the
histogram and the cut at --max-seq-len, and what the length policy would do. It exits 0 when
every record is usable, 1 when some records were skipped as problems, 2 on errors (an unusable
file, or --strict and a problem).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.commands.outcome import CommandError, OpenTUI

EXAMPLES = (
    "llmdeck data                      open Data mode: browse a dataset through a model's chat template",
    "llmdeck data inspect chat.jsonl --model ./my-model --max-seq-len 2048   format, problems, lengths, cut",
    "llmdeck data inspect qa.csv --model ./m --map instruction=question --map output=answer --json",
)


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data",
        help="datasets: detect the format, validate, render through the chat template, measure lengths",
        description="With no action, open the TUI in Data mode (optionally on --file and --model).",
    )
    data.add_argument("--file", help="dataset to open in Data mode")
    data.add_argument("--model", help="local model or tokenizer folder to render it with")
    data.add_argument("--max-seq-len", dest="open_max_seq_len", type=int, metavar="N", help="training context to mark the cut at")
    data.set_defaults(func=cmd_open)
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")

    p = actions.add_parser(
        "inspect",
        help="print the dataset report: format, problems, token lengths, histogram, cut at max_seq_len",
        description="Scan a JSONL/JSON/CSV/Parquet dataset against a model's tokenizer and chat template. "
        "Exit status: 0 all records usable, 1 some records skipped as problems, 2 error.",
    )
    p.add_argument("file", help="dataset file (.jsonl, .json, .csv, .tsv, .parquet)")
    p.add_argument("--model", required=True, metavar="M", help="local HF model folder, tokenizer folder or .gguf file")
    p.add_argument("--max-seq-len", type=int, metavar="N", help="training context: count what is longer")
    p.add_argument("--policy", choices=("truncate", "drop", "pack"), default="truncate", help="what happens at N (default truncate)")
    p.add_argument("--format", metavar="F", help="openai, sharegpt, alpaca, prompt_completion, text, preference, "
                   "unpaired or prompt (default: detect)")
    p.add_argument("--map", action="append", default=[], metavar="FIELD=NAME", help="read FIELD from the file's NAME (repeatable)")
    p.add_argument("--loss-on", choices=("assistant", "all"), default="assistant", help="trained tokens (default: assistant turns)")
    p.add_argument(
        "--chat-template",
        metavar="NAME|FILE",
        help="chat template: auto (the tokenizer's own, else the built-in one for the architecture), model, "
        "llama-2, llama-3, mistral, chatml, gemma, alpaca, or a Jinja file",
    )
    p.add_argument("--strict", action="store_true", help="stop at the first problem (exit 2)")
    p.add_argument("--keep-duplicates", action="store_true", help="do not skip exact duplicate records")
    p.add_argument("--show", type=int, default=0, metavar="K", help="print the first K records rendered, trained text marked")
    p.add_argument("--problems", type=int, default=20, metavar="K", help="list at most K problems (default 20)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_inspect)


def cmd_open(args: argparse.Namespace) -> OpenTUI:
    pairs = (("file", args.file), ("model", args.model), ("max_seq_len", args.open_max_seq_len))
    options = {k: v for k, v in pairs if v}
    return OpenTUI(mode="data", options=options)


def cmd_inspect(args: argparse.Namespace) -> int:
    from engine.data.job import scan_job
    from engine.jobs import JobContext

    if args.max_seq_len is not None and args.max_seq_len < 2:
        raise CommandError("--max-seq-len must be at least 2")
    if args.policy == "pack" and not args.max_seq_len:
        raise CommandError("--policy pack needs --max-seq-len (the length of each packed sequence)")
    spec: dict[str, Any] = {
        "path": args.file,
        "model": args.model,
        "format": args.format,
        "map": args.map,
        "strict": args.strict,
        "dedupe": not args.keep_duplicates,
        "loss_on": args.loss_on,
        "max_seq_len": args.max_seq_len,
        "policy": args.policy,
        "chat_template": args.chat_template,
        "previews": max(0, args.show),
        "problems_limit": max(0, args.problems),
    }
    ctx = JobContext(_progress_printer() if sys.stderr.isatty() and not args.json else (lambda event: None), min_interval=0.2)
    try:
        summary = scan_job(spec, ctx)
    finally:
        if sys.stderr.isatty() and not args.json:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    if args.json:
        json.dump(summary, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print("\n".join(format_report(summary, show=args.show, color=sys.stdout.isatty())))
    return 1 if summary["problem_total"] else 0


def _progress_printer():
    from engine.events import Progress

    def emit(event) -> None:
        if isinstance(event, Progress):
            text = f"{event.phase} {100 * event.fraction:.0f}%" if event.total else f"{event.phase}..."
            print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)

    return emit


def format_report(s: dict[str, Any], *, show: int = 0, color: bool = False) -> list[str]:
    """The human-readable report (also what the tests read)."""
    from engine.data.stats import Histogram, format_histogram

    lines = [
        f"{s['file']}: {s['format']} · tokenizer {s['tokenizer']} · loss on {s['loss_on']}",
        f"template: {s['template']}",
    ]
    problems = s["problems"]
    kinds = ", ".join(f"{k} {n}" for k, n in problems.items())
    lines.append(
        f"records {s['records']} · valid {s['valid']} · problems {s['problem_total']}"
        + (f" ({kinds})" if kinds else "")
        + f" · rendered {s['examples']}"
        + (f" · nothing to train on {s['no_target']}" if s["no_target"] else "")
    )
    listed = s["problem_list"]
    if listed:
        total = s["problem_total"]
        lines.append("problems:" if len(listed) == total else f"problems (first {len(listed)} of {total}):")
        width = max(len(p["where"]) for p in listed)
        for p in listed:
            lines.append(f"  {p['where']:<{width}}  {p['kind']:<13} {p['reason']}")
    tokens, trained = s["tokens"], s["trained_tokens"]
    share = f" ({100 * trained / tokens:.0f}%)" if tokens else ""
    lines.append(f"tokens {tokens:,} · trained on {trained:,}{share}")
    length = s["length"]
    if length["count"]:
        lines.append(
            f"lengths: min {length['min']} · p50 {length['p50']} · p90 {length['p90']} · p95 {length['p95']} · "
            f"p99 {length['p99']} · max {length['max']} · mean {length['mean']}"
        )
        hist = Histogram.from_dict(s["histogram"])
        over_label = f"{s['over']} longer" if s["max_seq_len"] else ""
        lines.append("histogram (tokens per example):")
        lines.extend("  " + line for line in format_histogram(hist, width=40, over_label=over_label))
    lines.extend(policy_lines(s))
    for item in s.get("previews", [])[:show]:
        lines.append("")
        if "sides" in item:
            lines.extend(pair_lines(item))
            continue
        lines.append(f"── {item['where']} · {item['n_tokens']} tokens, {item['n_trained']} trained ──")
        lines.append(mark_trained(item["text"], item["spans"], color=color))
    return lines


def pair_lines(item: dict[str, Any]) -> list[str]:
    """A preference/KTO/prompt record: the rendered prompt, then each answer with its tokens and
    where max_seq_len cuts it (marked ✂)."""
    lines = [f"── {item['where']} · prompt ──", item["prompt"].rstrip("\n")]
    for side in item["sides"]:
        cut = side["cut_char"]
        where = f" · cut by max_seq_len after {cut} chars" if cut is not None else ""
        if side.get("prompt_over"):
            where = " · the prompt alone fills max_seq_len: this record is dropped"
        lines.append(f"── {side['label']} · {side['n_answer']} answer tokens, {side['n_tokens']} with the prompt{where} ──")
        answer = side["answer"]
        lines.append(answer if cut is None else answer[:cut] + "✂" + answer[cut:])
    if item.get("columns"):
        lines.append("── columns ── " + ", ".join(f"{k}={v!r}" for k, v in item["columns"].items()))
    return lines


def policy_lines(s: dict[str, Any]) -> list[str]:
    """What max_seq_len and the policy do, in one or two lines."""
    limit = s["max_seq_len"]
    if not limit:
        return ["no --max-seq-len: nothing is cut (give one to see what would be truncated or dropped)"]
    over, policy = s["over"], s["policy"]
    line = f"max_seq_len {limit}, policy {policy}: {over} of {s['examples'] - s['no_target']} examples longer"
    if over:
        if policy == "drop":
            line += f" -> dropped ({s['tokens_cut']:,} tokens lost)"
        else:
            line += f" -> truncated ({s['tokens_cut']:,} tokens cut)"
            if s["dropped_after_cut"]:
                line += f", {s['dropped_after_cut']} left with nothing to train on and dropped"
    out = [line, f"kept {s['kept']} examples, {s['kept_tokens']:,} tokens ({s['kept_trained_tokens']:,} trained)"]
    if policy == "pack":
        out.append(f"packed into {s['packs']} sequences of {limit} tokens, {100 * s['pack_fill']:.0f}% full")
    return out


def mark_trained(text: str, spans: list[list[int]], *, color: bool) -> str:
    """Trained text in reverse video on a terminal, else between ⟦ and ⟧."""
    start, end = ("\033[7m", "\033[27m") if color else ("⟦", "⟧")
    out, pos = [], 0
    for s, e in spans:
        out.append(text[pos:s])
        out.append(start + text[s:e] + end)
        pos = e
    out.append(text[pos:])
    return "".join(out)
