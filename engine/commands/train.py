"""`llmdeck train`: start, resume, inspect and plot fine-tuning runs.

Every training option of `engine.train.spec.TrainSpec` is a flag (the same names `to_cli()`
prints), so a run started in the TUI can be repeated from a shell. Runs are detached: the
command follows the run's events and prints them; Ctrl-C stops following, never the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from engine.commands.outcome import CommandError, OpenTUI

EXAMPLES = (
    "llmdeck train                     open Train mode (start runs, live curves, checkpoints)",
    "llmdeck train --demo              LoRA on the bundled Gemma 3 270M, on CPU, in a few minutes",
    "llmdeck train --demo --method dpo   the same with DPO on preference pairs (grpo: rewards on sampled answers)",
    "llmdeck train --model ./m --data chat.jsonl --method sft --adapter lora --max-steps 200   start and follow",
    "llmdeck train --model ./m --data pairs.jsonl --method dpo --adapter lora --experiment dpo-b0.1 --seed 1",
    "llmdeck train --model ./m --data math.jsonl --method grpo --reward exact:answer --reward length:4:64",
    "llmdeck train resume 20261128-0930  continue a stopped or killed run from its last checkpoint",
    "llmdeck train export-plot RUN1 RUN2 RUN3 --out curves.png --band std   experiments: mean of seeds + band",
    "llmdeck train --model ./m --data d.jsonl --devices 0,1,2,3 --nodes gpu1,gpu2 --distributed fsdp   two machines "
    "over SSH",
    "llmdeck train --model ./m --data d.jsonl --slurm --nodes 2 --gpus-per-node 8 --partition gpu --time 4:00:00   "
    "a SLURM job",
)

_HIDDEN = ("debug", "resume_from", "cluster")
_CLUSTER_HELP = {
    "nodes": "over SSH: host1,host2[,...] in rank order (ssh names: hosts, ~/.ssh/config aliases); "
             "with --slurm: how many nodes",
    "hostfile": "over SSH: a DeepSpeed hostfile (`host slots=N` per line) instead of --nodes",
    "ssh_config": "an ssh_config file for every ssh call (default: LLMDECK_SSH_CONFIG, else ~/.ssh/config)",
    "sync": "copy the model, data and chat template to nodes that cannot read them (rsync, else scp)",
    "sync_dir": "with --sync: copy them into this folder on every node (its own disk) and train on the copies "
                "there, kept up to date by rsync (default: the same paths as here, copied only where missing)",
    "main_ip": "the address the nodes reach rank 0 at (default: node 0's HostName, from `ssh -G`)",
    "main_port": "the rendezvous port on node 0 (default: one that node 0 reports free)",
    "remote_python": "the Python on the nodes (default: the same path as here)",
    "slurm": "submit the run as a SLURM job (sbatch + srun) and follow it",
    "partition": "SLURM partition",
    "gpus_per_node": "SLURM: GPUs (= training processes) per node (default: from --devices)",
    "time": "SLURM time limit, e.g. 4:00:00 or 1-00:00:00",
    "account": "SLURM account to charge",
    "sbatch": "an extra `#SBATCH` option, e.g. --sbatch=--qos=high (repeat it for more)",
}


def _flag(name: str) -> str:
    from engine.train.spec import CLI_FLAGS

    return CLI_FLAGS.get(name, "--" + name.replace("_", "-"))


_HELP = {
    "method": "objective: sft, dpo, orpo, kto, grpo (lora, qlora, full: sft with that adapter, as before)",
    "adapter": "weights that train: lora (default), qlora (4-bit base, CUDA), full",
    "experiment": "experiment name for plots (default: the run name without a -sN/_seedN suffix)",
    "beta": "DPO/KTO/ORPO strength, GRPO KL coefficient (0 = the method's default: 0.1; GRPO 0)",
    "sft_weight": "DPO: add an SFT loss on the chosen answers with this weight (RPO; 0 = plain DPO)",
    "rewards": "GRPO reward, repeatable: exact:COLUMN, firstline:COLUMN, regex:PATTERN, length:MIN:MAX, boxed, "
               "FILE.py:FUNC",
    "reward_model": "GRPO: a local sequence-classification model folder that scores completions",
    "num_generations": "GRPO: completions sampled per prompt (default 4)",
    "max_completion_len": "GRPO: new tokens per sampled completion (default 128)",
    "temperature": "GRPO: sampling temperature (default 1.0)",
}


def register(sub: argparse._SubParsersAction) -> None:
    from engine.train.spec import ADAPTERS, LEGACY_METHODS, METHODS, PRECISIONS, SCHEDULERS, TrainSpec

    p = sub.add_parser(
        "train",
        help="fine-tune (SFT, DPO, ORPO, KTO, GRPO; LoRA, QLoRA, full) as a detached run; "
        "no arguments opens Train mode",
        description="Start a fine-tuning run (detached: it survives closing the terminal). "
        "With no arguments, opens the TUI in Train mode.",
    )
    choices = {"method": METHODS + LEGACY_METHODS, "adapter": ADAPTERS, "scheduler": SCHEDULERS,
               "precision": PRECISIONS, "loss_on": ("assistant", "all")}
    for f in fields(TrainSpec):
        if f.name in _HIDDEN:
            continue
        kind = str(f.type)
        flag = _flag(f.name)
        if kind == "bool":
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=_HELP.get(f.name))
        elif kind == "list[str]":
            p.add_argument(flag, dest=f.name, action="append", default=None, metavar="SPEC", help=_HELP.get(f.name))
        else:
            conv = {"int": int, "float": float}.get(kind, str)
            p.add_argument(flag, dest=f.name, type=conv, default=None, choices=choices.get(f.name),
                           metavar=None if f.name in choices else f.name.upper(), help=_HELP.get(f.name))
    _add_cluster_flags(p)
    p.add_argument("--spec", type=Path, help="start from a saved spec (JSON); flags override it")
    p.add_argument("--demo", action="store_true", help="LoRA on the bundled Gemma 3 270M (CPU, a few minutes); "
                   "with --method dpo or grpo, that method's demo")
    p.add_argument("--detach", action="store_true", help="start the run and return at once")
    p.add_argument("--print-cli", action="store_true", help="print the equivalent command and the spec, start nothing")
    p.set_defaults(func=cmd_train)
    tsub = p.add_subparsers(dest="train_command", metavar="ACTION")

    r = tsub.add_parser("resume", help="continue a training run from its newest complete checkpoint")
    r.add_argument("run", help="run id, unique prefix, or name")
    r.add_argument("--max-steps", type=int, default=None, help="train to this many steps in total")
    r.add_argument("--detach", action="store_true")
    r.set_defaults(func=cmd_resume)

    c = tsub.add_parser("checkpoints", help="list a run's checkpoints (step, loss, size, complete)")
    c.add_argument("run")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_checkpoints)

    e = tsub.add_parser("export-plot", help="plot runs' curves to PNG, SVG or CSV, grouped into experiments")
    e.add_argument("runs", nargs="+", help="run ids, prefixes or names")
    e.add_argument("--out", type=Path, required=True, help="output file: .png, .svg, or .csv (the picture's numbers)")
    e.add_argument("--metric", action="append",
                   help="metric(s) to plot, one panel each (default: loss, eval_loss and the method's rewards)")
    e.add_argument("--smooth", type=float, default=0.0,
                   help="EMA smoothing 0..0.99, per run before averaging (default 0)")
    e.add_argument("--line-width", type=float, default=1.5)
    e.add_argument("--band", choices=("minmax", "std", "none"), default="minmax",
                   help="around each experiment's mean over seeds: min-max (default), +-1 std, or none")
    e.add_argument("--csv", action="store_true", help="write CSV even if --out does not end in .csv")
    e.set_defaults(func=cmd_export_plot)


def _check_method(args: argparse.Namespace) -> None:
    """`--method lora --adapter full` says two different things: refuse it."""
    from engine.train.spec import LEGACY_METHODS

    method, adapter = getattr(args, "method", None), getattr(args, "adapter", None)
    if method in LEGACY_METHODS and adapter and adapter != method:
        raise CommandError(
            f"--method {method} means --method sft --adapter {method}; it contradicts --adapter {adapter}"
        )


def _add_cluster_flags(p: argparse.ArgumentParser) -> None:
    """The multi-node options (engine.cluster.spec.ClusterSpec), stored under `cluster_<name>`."""
    from engine.cluster.spec import CLI_FLAGS, ClusterSpec

    group = p.add_argument_group("several machines (README: Training on several machines)")
    for f in fields(ClusterSpec):
        flag, dest, text = CLI_FLAGS[f.name], f"cluster_{f.name}", _CLUSTER_HELP[f.name]
        if f.type == "bool":
            group.add_argument(flag, dest=dest, action="store_true", default=None, help=text)
        elif f.name == "sbatch":
            group.add_argument(flag, dest=dest, action="append", default=None, metavar="OPTION", help=text)
        else:
            group.add_argument(flag, dest=dest, type=int if f.type == "int" else str, default=None,
                               metavar=f.name.upper(), help=text)


def _cluster_from_args(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    """The spec's `cluster` part: the saved spec's, with any multi-node flag given on top."""
    from engine.cluster.spec import ClusterSpec

    cluster = dict(base.get("cluster") or {})
    for f in fields(ClusterSpec):
        value = getattr(args, f"cluster_{f.name}", None)
        if value is not None:
            cluster[f.name] = value
    return cluster


def _cluster_given(args: argparse.Namespace) -> bool:
    from engine.cluster.spec import ClusterSpec

    return any(getattr(args, f"cluster_{f.name}", None) is not None for f in fields(ClusterSpec))


def _spec_from_args(args: argparse.Namespace) -> Any:
    from engine.train.spec import SpecError, TrainSpec

    try:
        base = TrainSpec.from_json(args.spec.read_text(encoding="utf-8")).to_dict() if args.spec else {}
    except OSError as exc:
        raise CommandError(f"cannot read {args.spec}: {exc.strerror or exc}") from None
    except SpecError as exc:
        raise CommandError(f"{args.spec}: {exc}") from None
    for f in fields(TrainSpec):
        if f.name in _HIDDEN:
            continue
        value = getattr(args, f.name, None)
        if value is not None:
            base[f.name] = value
    cluster = _cluster_from_args(args, base)
    if cluster:
        base["cluster"] = cluster
    try:
        return TrainSpec.from_dict(base)
    except SpecError as exc:
        raise CommandError(str(exc)) from None


def cmd_train(args: argparse.Namespace) -> int | OpenTUI:
    from engine.runs import RunStore
    from engine.train.spec import SpecError, TrainSpec

    given = any(getattr(args, f.name, None) is not None for f in fields(TrainSpec) if f.name not in _HIDDEN)
    if not (given or args.demo or args.spec or _cluster_given(args)):
        return OpenTUI(mode="train", options={})
    _check_method(args)
    store = RunStore()
    if args.demo and _cluster_given(args):
        raise CommandError("--demo trains on this machine; give --model and --data to train on several machines")
    if args.demo:
        from engine.train.demo import demo_spec

        overrides = {f.name: getattr(args, f.name) for f in fields(TrainSpec)
                     if f.name not in _HIDDEN and getattr(args, f.name, None) is not None}
        try:
            spec = demo_spec(**overrides)
        except SpecError as exc:
            raise CommandError(str(exc)) from None
        problems = spec.problems(check_paths=False)
        if problems:
            raise CommandError("; ".join(problems))
        if args.print_cli:
            print(spec.to_json())
            return 0
        info = store.start("train.demo", spec.to_dict(), name=spec.label)
    else:
        spec = _spec_from_args(args)
        if args.print_cli:
            print(spec.to_cli())
            print(spec.to_json())
            return 0
        from engine.train import launch

        try:
            template = launch.data_check(spec.validate())
            print(f"chat template: {template}", flush=True)
            info = launch.start(spec, store, check_data=False)
        except SpecError as exc:
            raise CommandError(str(exc)) from None
    print(f"started run {info.id} ({info.name}); `llmdeck runs follow {info.id}` to watch, `llmdeck runs cancel "
          f"{info.id}` to stop")
    if args.detach:
        return 0
    return _follow(store, info.id)


def _follow(store: Any, run_id: str) -> int:
    from engine.events import Cancelled, Failed, Finished, Log, Metric, Progress
    from engine.formatting import format_duration

    last_phase = ""
    try:
        for event in store.follow(run_id):
            if isinstance(event, Metric):
                if "loss" not in event.values and "eval_loss" not in event.values:
                    continue  # conversion phases' own figures
                print(metric_line(event.step, event.values), flush=True)
            elif isinstance(event, Log):
                print(f"{event.level}: {event.text}" if event.level != "info" else event.text, flush=True)
            elif isinstance(event, Progress) and event.phase not in ("train", "scan") and event.total:
                if event.phase != last_phase or event.done >= event.total:
                    print(f"{event.phase} {100 * (event.fraction or 0):.0f}%", flush=True)
                    last_phase = event.phase
            elif isinstance(event, Finished):
                s = event.summary
                first, final = s.get("first_loss"), s.get("final_loss")
                loss = f"loss {first:.4f} -> {final:.4f}, " if first is not None and final is not None else ""
                for key, (a, b) in (s.get("metrics") or {}).items():
                    loss += f"{key} {a:.3f} -> {b:.3f}, "
                print(f"finished: {s.get('steps')} steps, {loss}{format_duration(s.get('train_runtime_s') or 0)}; "
                      f"output {s.get('output', '-')}")
            elif isinstance(event, Failed):
                print(f"failed: {event.message}", file=sys.stderr)
            elif isinstance(event, Cancelled):
                print(f"cancelled: {event.reason} (resume with `llmdeck train resume {run_id}`)")
    except KeyboardInterrupt:
        print(f"\nstopped following; the run goes on (`llmdeck runs follow {run_id}`)")
        return 0
    return 0 if store.get(run_id).status == "succeeded" else 1


def metric_line(step: int, v: dict[str, float]) -> str:
    from engine.formatting import format_duration

    if "eval_loss" in v and "loss" not in v:
        return f"step {step}: eval loss {v['eval_loss']:.4f} (ppl {v.get('eval_ppl', 0):.2f})"
    total = int(v.get("total_steps", 0))
    parts = [f"step {step}/{total}" if total else f"step {step}"]
    if "loss" in v:
        parts.append(f"loss {v['loss']:.4f}")
    if "lr" in v:
        parts.append(f"lr {v['lr']:.2e}")
    if "grad_norm" in v:
        parts.append(f"grad {v['grad_norm']:.3f}")
    for key, label in (("rewards/margins", "margin"), ("rewards/accuracies", "acc"), ("reward", "reward"),
                       ("kl", "kl")):
        if key in v:
            parts.append(f"{label} {v[key]:.3f}")
    if "tokens_per_s" in v:
        parts.append(f"{v['tokens_per_s']:.0f} tok/s")
    if "eta_s" in v:
        parts.append(f"eta {format_duration(v['eta_s'])}")
    return "  ".join(parts)


def cmd_resume(args: argparse.Namespace) -> int:
    from engine.runs import RunStore
    from engine.train import launch

    store = RunStore()
    info = launch.resume(args.run, store, max_steps=args.max_steps)
    print(f"resumed run {info.id} from its newest complete checkpoint")
    if args.detach:
        return 0
    return _follow(store, info.id)


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from engine.formatting import format_bytes
    from engine.runs import RunStore
    from engine.train import launch

    store = RunStore()
    info = store.get(args.run)
    found = launch.checkpoints_of(info)
    if args.json:
        json.dump([c.to_dict() for c in found], sys.stdout, indent=2)
        print()
        return 0
    if not found:
        print(f"run {info.id} has no checkpoints")
        return 0
    for c in found:
        loss = f"{c.loss:.4f}" if c.loss is not None else "-"
        state = "complete" if c.complete else c.problem
        print(f"{c.name:20} step {c.step:>6}  loss {loss:>8}  {format_bytes(c.size):>9}  {state}")
    return 0


def cmd_export_plot(args: argparse.Namespace) -> int:
    from engine.runs import RunStore
    from engine.train import plots

    store = RunStore()
    curves = [plots.load_run_curves(store, run) for run in args.runs]
    metrics = args.metric or plots.present_metrics(curves) or ["loss"]
    if not 0 <= args.smooth < 1:
        raise CommandError("--smooth must be in [0, 1)")
    if args.line_width <= 0:
        raise CommandError("--line-width must be more than 0")
    try:
        if args.csv or args.out.suffix.lower() == ".csv":
            plots.write_csv(curves, args.out, metrics, smooth=args.smooth, band=args.band)
        else:
            plots.write_image(curves, args.out, metrics, smooth=args.smooth, line_width=args.line_width, band=args.band)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    groups = sorted({c.experiment for c in curves})
    print(f"wrote {args.out} ({len(curves)} runs in {len(groups)} experiments: {', '.join(groups)})")
    return 0
