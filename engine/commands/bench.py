"""`llmdeck eval ppl MODEL FILE`, `llmdeck bench [MODEL]`, `llmdeck bench sweep MODEL`, `llmdeck bench results`.

Every evaluation runs as a detached run (kinds eval.ppl, bench.speed, bench.sweep), so its result
is kept in the run folder and shows up in `llmdeck bench results` and Bench mode. Without
--detach the command follows the run, printing progress on stderr and the result on stdout;
Ctrl-C cancels it. `llmdeck bench` with no model opens Bench mode. Light at import.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from engine.commands.outcome import CommandError, OpenTUI

EXAMPLES = (
    "llmdeck eval ppl model.gguf wiki.txt --ctx 512   perplexity of a GGUF (or HF folder) on a text file",
    "llmdeck bench model.gguf --prompt-len 512 --gen 128   prompt/generation tokens/s and TTFT, median of 3",
    "llmdeck bench sweep ./hf-model --types Q4_K_M,Q5_K_M,Q8_0 --ppl-file wiki.txt   quantize + compare",
    "llmdeck bench results             every kept eval/bench result, as tables",
    "llmdeck bench                     open Bench mode",
)



class _AnyName(dict):
    """Subcommand table that accepts any first word, so `bench MODEL` works next to `bench sweep`."""

    def __contains__(self, key: object) -> bool:
        return True


class _DefaultSubparsers(argparse._SubParsersAction):
    """A word that names no subcommand is the MODEL of the default one (`speed`)."""

    default_name = "speed"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices = _AnyName()  # only the value check reads this; the parser map stays as it is

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        if values and values[0] not in self._name_parser_map:
            values = [self.default_name, *values]
        super().__call__(parser, namespace, values, option_string)


# -- parser ------------------------------------------------------------------------------------
def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--backend", choices=("auto", "llama.cpp", "transformers"), default="auto",
                   help="default: llama.cpp for a .gguf, transformers for a folder")
    g.add_argument("--gpu-layers", type=int, default=None, dest="n_gpu_layers",
                   help="llama.cpp layers on the GPU (-1 all; default all when built with GPU support)")
    g.add_argument("--threads", type=int, default=None, dest="n_threads",
                   help="CPU threads (llama.cpp; torch for transformers)")
    g.add_argument("--dtype", default=None, help="transformers dtype: auto, float32, bfloat16, float16")
    g.add_argument("--device-map", default=None, help="transformers device map: auto, cpu, cuda:0")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detach", action="store_true",
                   help="start the run and return (follow it with `llmdeck runs follow ID`)")
    p.add_argument("--json", action="store_true", help="print the result record as JSON")
    p.add_argument("--name", default="", help="a name for the run")


def _ppl_options(p: argparse.ArgumentParser, *, ppl_ctx_default: int = 512) -> None:
    p.add_argument("--ctx", type=int, default=ppl_ctx_default, help=f"window in tokens (default {ppl_ctx_default})")
    p.add_argument("--stride", type=int, default=None, help="tokens between window starts (default: half a window)")
    p.add_argument("--max-tokens", type=int, default=None, help="score only the first N tokens of the file")


def _speed_options(p: argparse.ArgumentParser, *, reps: int = 3) -> None:
    p.add_argument("--prompt-len", type=int, default=512, help="prompt tokens (default 512)")
    p.add_argument("--gen", type=int, default=128, dest="gen_len", help="generated tokens (default 128)")
    p.add_argument("--reps", type=int, default=reps, help=f"timed repetitions after one warm-up (default {reps})")


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate a model: perplexity on a text file")
    ev_sub = ev.add_subparsers(dest="eval_command", metavar="ACTION", required=True)
    p = ev_sub.add_parser("ppl", help="perplexity of MODEL (.gguf or HF folder) on a local text FILE (sliding window)")
    p.add_argument("model", help=".gguf file or HF model folder")
    p.add_argument("file", help="UTF-8 text file")
    _ppl_options(p)
    _model_options(p)
    _run_options(p)
    p.set_defaults(func=cmd_ppl)

    bench = sub.add_parser(
        "bench", help="speed of a model, quant sweeps, kept results; no MODEL: open Bench mode",
        description="llmdeck bench MODEL [options]: prompt/generation speed and TTFT.\n"
        "llmdeck bench sweep MODEL --types ... --ppl-file FILE: quantize and compare.\n"
        "llmdeck bench results: kept results. llmdeck bench: open Bench mode.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.set_defaults(func=cmd_bench_tui)
    bsub = bench.add_subparsers(dest="bench_command", metavar="MODEL | sweep | results", action=_DefaultSubparsers)

    p = bsub.add_parser("speed", help="(default) prompt processing and generation tokens/s, TTFT")
    p.add_argument("model", help=".gguf file or HF model folder")
    _speed_options(p)
    _model_options(p)
    _run_options(p)
    p.set_defaults(func=cmd_speed)

    p = bsub.add_parser("sweep", help="quantize MODEL to several types, then one table of size, BPW, PPL and speed")
    p.add_argument("model", help="HF model folder or f16/bf16/f32 GGUF (a quantized GGUF needs --allow-requantize)")
    p.add_argument("--types", required=True, help="comma-separated llama.cpp types, e.g. Q4_K_M,Q5_K_M,Q8_0")
    p.add_argument("--ppl-file", required=True, help="UTF-8 text file for perplexity")
    p.add_argument("--allow-requantize", action="store_true",
                   help="sweep from an F16 copy of an already quantized GGUF")
    p.add_argument("--out", default=None, help="folder for the GGUF files (default: the run's out/ folder)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    _ppl_options(p)
    _speed_options(p, reps=2)
    g = p.add_argument_group("model")
    g.add_argument("--gpu-layers", type=int, default=None, dest="n_gpu_layers")
    g.add_argument("--threads", type=int, default=None, dest="n_threads")
    _run_options(p)
    p.set_defaults(func=cmd_sweep)

    p = bsub.add_parser("results", help="every kept eval/bench result, as tables")
    p.add_argument("--kind", choices=("ppl", "speed", "sweep"), default=None, help="only this kind")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true")
    p.set_defaults(func=cmd_results)


# -- commands ----------------------------------------------------------------------------------
def _check_model(model: str) -> str:
    path = Path(model).expanduser()
    if not path.exists():
        raise CommandError(f"model not found: {model} (give a .gguf file or an HF model folder)")
    return str(path.resolve())


def _check_file(file: str, what: str = "text file") -> str:
    path = Path(file).expanduser()
    if not path.is_file():
        raise CommandError(f"{what} not found: {file}")
    return str(path.resolve())


def _positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")


def _model_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {"backend": getattr(args, "backend", "auto")}
    for key in ("n_gpu_layers", "n_threads", "dtype", "device_map"):
        value = getattr(args, key, None)
        if value is not None:
            spec[key] = value
    return spec


def cmd_bench_tui(args: argparse.Namespace) -> OpenTUI:
    return OpenTUI(mode="bench", options={"theme": getattr(args, "theme", None)})


def cmd_ppl(args: argparse.Namespace) -> int:
    _positive(ctx=args.ctx, stride=args.stride, max_tokens=args.max_tokens)
    spec = {"model": _check_model(args.model), "file": _check_file(args.file), "ctx": args.ctx, "stride": args.stride,
            "max_tokens": args.max_tokens, **_model_spec(args)}
    return _start("eval.ppl", spec, args, name=args.name or f"ppl {Path(args.model).name}")


def cmd_speed(args: argparse.Namespace) -> int:
    _positive(prompt_len=args.prompt_len, gen=args.gen_len, reps=args.reps)
    spec = {"model": _check_model(args.model), "prompt_len": args.prompt_len, "gen_len": args.gen_len,
            "reps": args.reps,
            **_model_spec(args)}
    return _start("bench.speed", spec, args, name=args.name or f"speed {Path(args.model).name}")


def cmd_sweep(args: argparse.Namespace) -> int:
    from engine.evaluate.models import EvalError
    from engine.evaluate.sweep import parse_types

    _positive(ctx=args.ctx, stride=args.stride, max_tokens=args.max_tokens, prompt_len=args.prompt_len,
              gen=args.gen_len, reps=args.reps)
    try:
        types = parse_types(args.types)
    except EvalError as exc:
        raise CommandError(str(exc)) from None
    spec: dict[str, Any] = {
        "model": _check_model(args.model), "types": ",".join(types),
        "ppl_file": _check_file(args.ppl_file, "--ppl-file"),
        "ctx": args.ctx, "stride": args.stride, "max_tokens": args.max_tokens, "prompt_len": args.prompt_len,
        "gen_len": args.gen_len, "reps": args.reps, "allow_requantize": args.allow_requantize,
    }
    if args.out:
        spec["out_dir"] = str(Path(args.out).expanduser().resolve())
    for key in ("n_gpu_layers", "n_threads"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    return _start("bench.sweep", spec, args, name=args.name or f"sweep {Path(args.model).name}")


def _start(kind: str, spec: dict[str, Any], args: argparse.Namespace, *, name: str) -> int:
    from engine.runs import RunStore

    store = RunStore()
    info = store.start(kind, spec, name=name)
    if args.detach:
        print(f"started run {info.id}; `llmdeck runs follow {info.id}` to watch it, `llmdeck bench results` when done")
        return 0
    return _follow(store, info.id, args)


def _follow(store: Any, run_id: str, args: argparse.Namespace) -> int:
    from engine.events import Failed, Finished, Log, Progress
    from engine.formatting import progress_text

    tty = sys.stderr.isatty()
    last_phase = ""
    record: dict[str, Any] | None = None
    try:
        for event in store.follow(run_id):
            if isinstance(event, Progress):
                if tty:
                    print(f"\r\033[K{progress_text(event)}", end="", file=sys.stderr, flush=True)
                elif event.phase != last_phase:
                    print(f"… {event.phase}", file=sys.stderr, flush=True)
                last_phase = event.phase
            elif isinstance(event, Log):
                print(("\r\033[K" if tty else "") + event.text, file=sys.stderr, flush=True)
            elif isinstance(event, Finished):
                record = dict(event.summary)
            elif isinstance(event, Failed):
                if tty:
                    print("\r\033[K", end="", file=sys.stderr)
                raise CommandError(f"{event.message} (run {run_id}; `llmdeck runs show {run_id}` for the log)")
    except KeyboardInterrupt:
        store.cancel(run_id)
        deadline = time.monotonic() + 10
        while store.get(run_id).active and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"\ncancelled run {run_id}", file=sys.stderr)
        return 130
    if tty:
        print("\r\033[K", end="", file=sys.stderr)
    info = store.get(run_id)
    if record is None:
        raise CommandError(f"run {run_id} ended {info.status}" + (f": {info.exit_reason}" if info.exit_reason else ""))
    record["run_id"] = run_id
    print_record(record, as_json=args.json, markdown=getattr(args, "markdown", False))
    return 0


def print_record(record: dict[str, Any], *, as_json: bool = False, markdown: bool = False) -> None:
    from engine.evaluate import results

    if as_json:
        json.dump(record, sys.stdout, indent=2, default=str)
        print()
        return
    table = results.markdown_table if markdown else results.format_table
    kind = record["kind"]
    if kind == "eval.ppl":
        r = record["result"]
        print(f"PPL {r['ppl']:.4f}  ({r['tokens_evaluated']} tokens scored, window {r['ctx']}, stride {r['stride']}, "
              f"{r['windows']} windows, {record['backend']}, {r['seconds']:.1f} s)")
    elif kind == "bench.speed":
        print(table(results.SPEED_HEADERS, [results.speed_row(record)]))
    elif kind == "bench.sweep":
        r = record["result"]
        print(f"sweep of {record['model']} (baseline {r['baseline']}, from {r['baseline_from']}); "
              f"PPL on {Path(r['ppl_file']).name}, window {r['ctx']}; speed pp{r['prompt_len']}/tg{r['gen_len']}, "
              f"median of {r['reps']}")
        print(table(results.SWEEP_HEADERS, results.sweep_rows(record)))
        last = shlex.quote(r["rows"][-1]["path"])
        print(f"use one, e.g.: llmdeck chat {last}   or serve it: llmdeck serve {last}")


def cmd_results(args: argparse.Namespace) -> int:
    from engine.evaluate import results
    from engine.runs import RunStore

    by_name = {"ppl": ("eval.ppl",), "speed": ("bench.speed",), "sweep": ("bench.sweep",)}
    kinds = by_name.get(args.kind or "", results.RESULT_KINDS)
    records = results.list_records(RunStore(), kinds)
    if args.json:
        json.dump(records, sys.stdout, indent=2, default=str)
        print()
        return 0
    if not records:
        print("no evaluation results yet: run `llmdeck eval ppl`, `llmdeck bench MODEL` or `llmdeck bench sweep`")
        return 0
    table = results.markdown_table if args.markdown else results.format_table
    ppl = [results.ppl_row(r) for r in records if r["kind"] == "eval.ppl"]
    speed = [results.speed_row(r) for r in records if r["kind"] == "bench.speed"]
    sweeps = [r for r in records if r["kind"] == "bench.sweep"]
    blocks = []
    if ppl:
        blocks.append("perplexity\n" + table(results.PPL_HEADERS, ppl))
    if speed:
        blocks.append("speed\n" + table(results.SPEED_HEADERS, speed))
    for record in sweeps:
        blocks.append(f"sweep {Path(record['model']).name} (run {record.get('run_id', '')})\n"
                      + table(results.SWEEP_HEADERS, results.sweep_rows(record)))
    print("\n\n".join(blocks))
    return 0
