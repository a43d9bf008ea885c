"""`llmdeck doctor`: what will work on this machine, and the command that fixes the rest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EXAMPLES = (
    "llmdeck doctor                    what works here (GPU, torch, llama.cpp, QLoRA, vLLM, disk…) and each fix",
    "llmdeck doctor --json             the same as JSON (format llmdeck-doctor/1, in the README)",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check this machine: what works, and the command that fixes the rest",
        description="Check Python, the NVIDIA driver and GPUs, the CUDA toolkit, torch, the llama.cpp build, "
        "bitsandbytes (QLoRA), vLLM, flash attention, free disk, RAM, the settings file and the data folder. "
        "Each line says ok, warning or missing, with the exact command that fixes it. Loads no model; "
        "imports torch (about 2 s) only to count the GPUs a CUDA build of it sees. Exit status 0.",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON (format llmdeck-doctor/1)")
    p.add_argument("--replay", metavar="FILE",
                   help="answer the NVIDIA driver/GPU part from a raw NVML recording (tests/fixtures/nvml_h200.json)")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> Any:
    from engine import doctor
    from engine.commands.outcome import CommandError

    probes = doctor.Probes()
    if args.replay:
        try:
            probes.nvml = doctor.replay_nvml(Path(args.replay))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    report = doctor.run_checks(probes)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(doctor.render_text(report)))
    return 0
