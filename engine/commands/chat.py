"""`llmdeck chat [MODEL]` (opens Chat mode) and `llmdeck generate MODEL --prompt ...` (headless).

MODEL is a .gguf file (llama.cpp), an HF model folder or LoRA adapter folder (transformers), or,
with --base-url, a model name on an OpenAI-compatible server. Without MODEL: the model in the
settings file, else the bundled Gemma 3 270M GGUF. Light at import: backends load in the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from engine.commands.outcome import CommandError, OpenTUI

EXAMPLES = (
    "llmdeck chat                      chat with the bundled Gemma 3 270M GGUF",
    "llmdeck chat model.gguf --gpu-layers 99   chat with any GGUF, layers on the GPU",
    "llmdeck chat ./out/lora --base-model ./base   chat with a LoRA adapter on its base (transformers)",
    "llmdeck chat --base-url http://127.0.0.1:8000/v1   chat with an OpenAI-compatible server",
    "llmdeck generate model.gguf --prompt 'Hi' --json   one completion to stdout, with TTFT and tok/s",
    "llmdeck generate --prompt 'The capital of France is'   the bundled base model continues the text",
    "llmdeck chat base.gguf --prompt-mode chat   force a chat template on a model auto-run as completion",
)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--backend", choices=("auto", "llama.cpp", "transformers", "openai"), default=None,
                   help="default: from MODEL (.gguf -> llama.cpp, folder -> transformers, --base-url -> openai)")
    g.add_argument("--template", default=None,
                   help="chat template: auto (model's own, else by architecture), model, llama-2, llama-3, "
                        "mistral, chatml, gemma, or a .jinja file")
    g.add_argument("--prompt-mode", choices=("auto", "chat", "completion"), default="auto",
                   help="chat: messages through the chat template; completion: the text is continued as written, "
                        "no template (for base models). auto (default): chat when the model has a template of its "
                        "own or its name/metadata says instruction-tuned, else completion")
    g.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context size (default 4096)")
    g.add_argument("--gpu-layers", type=int, default=None, dest="n_gpu_layers",
                   help="llama.cpp layers on the GPU (-1 all; default: all when built with GPU support)")
    g.add_argument("--threads", type=int, default=None, dest="n_threads", help="llama.cpp CPU threads")
    g.add_argument("--dtype", default="auto", help="transformers dtype: auto, float32, bfloat16, float16")
    g.add_argument("--device-map", default=None, help="transformers device map: auto, cpu, cuda:0")
    g.add_argument("--gpu-memory", type=float, nargs="+", default=None, metavar="GIB",
                   help="per-GPU memory caps in GiB for transformers, e.g. --gpu-memory 20 20")
    g.add_argument("--base-model", default="", help="base model folder for a LoRA adapter folder")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model folder's own Python code to run (off by default)")
    g.add_argument("--base-url", default=None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--system", default=None, help="system prompt")
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--top-k", type=int, default=None)
    g.add_argument("--min-p", type=float, default=None)
    g.add_argument("--repetition-penalty", type=float, default=None)
    g.add_argument("--max-new-tokens", type=int, default=None)
    g.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    g.add_argument("--seed", type=int, default=None)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="open Chat mode (default model: the bundled Gemma 3 270M GGUF)")
    p.add_argument("model", nargs="?", default=None, help=".gguf file, HF model folder, or server model name")
    _add_model_options(p)
    _add_sampling_options(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("generate", help="stream one completion to stdout, then TTFT and tokens/s")
    p.add_argument("model", nargs="?", default=None, help=".gguf file, HF model folder, or server model name")
    p.add_argument("--prompt", "-p", required=True, help="the user message ('-' reads stdin)")
    p.add_argument("--json", action="store_true", help="JSON lines: one per text delta, then a 'done' line with stats")
    _add_model_options(p)
    _add_sampling_options(p)
    p.set_defaults(func=cmd_generate)


def build_spec(args: argparse.Namespace) -> Any:
    """BackendSpec from the command line, falling back to the settings file."""
    from engine import settings
    from engine.chat.loader import BackendSpec

    conf = settings.load_for_command()
    chat = conf.chat
    base_url = args.base_url or ""
    backend = args.backend or ("openai" if base_url else chat.backend or "auto")
    if backend == "openai" and not base_url:
        base_url = chat.openai_base_url
        if not base_url:
            raise CommandError("the openai backend needs a server: pass --base-url http://host:port/v1 or set chat.openai_base_url")
    model = args.model or (chat.openai_model if backend == "openai" else chat.model) or ""
    return BackendSpec(
        model=model, backend=backend, template=args.template or "auto", prompt_mode=args.prompt_mode, n_ctx=args.n_ctx,
        n_gpu_layers=args.n_gpu_layers, n_threads=args.n_threads, dtype=args.dtype, device_map=args.device_map,
        gpu_memory=list(args.gpu_memory or []), base_model=args.base_model, trust_remote_code=args.trust_remote_code,
        base_url=base_url,
    )


def build_params(args: argparse.Namespace) -> Any:
    from engine import settings
    from engine.chat.params import ParamError, SamplingParams

    conf = settings.load_for_command()
    values: dict[str, Any] = {"system_prompt": conf.chat.system_prompt}
    for name in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens", "seed"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.stop:
        values["stop"] = tuple(args.stop)
    if args.system is not None:
        values["system_prompt"] = args.system
    try:
        return SamplingParams(**values)
    except ParamError as exc:
        raise CommandError(str(exc)) from None


def _warn_ignored(spec: Any) -> None:
    from engine.chat.base import BackendError
    from engine.chat.loader import ignored_options

    try:
        for line in ignored_options(spec):
            print(f"warning: {line}", file=sys.stderr)
    except BackendError:
        pass  # the model is missing: loading it says so


def cmd_chat(args: argparse.Namespace) -> OpenTUI:
    spec = build_spec(args)
    params = build_params(args)
    _warn_ignored(spec)
    return OpenTUI(mode="chat", options={"model": spec.model or None, "chat_spec": spec.to_dict(), "chat_params": params.to_dict()})


def _load(spec: Any) -> Any:
    from engine.chat.base import BackendError
    from engine.chat.loader import load_backend
    from engine.chat.templates import TemplateError

    try:
        return load_backend(spec)
    except (BackendError, TemplateError) as exc:
        raise CommandError(str(exc)) from None


def cmd_generate(args: argparse.Namespace) -> int:
    from engine.chat.base import BackendError
    from engine.chat.templates import TemplateError

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    spec = build_spec(args)
    params = build_params(args)
    _warn_ignored(spec)
    backend = _load(spec)
    cancel = threading.Event()
    out = sys.stdout
    code = 0
    mode = backend.prompt_mode
    if not args.json:
        switch = "chat" if mode.completion else "completion"
        print(f"llmdeck: {mode.mode} mode: {mode.reason} (--prompt-mode {switch} switches)", file=sys.stderr)
    try:
        for delta in backend.stream([{"role": "user", "content": prompt}], params, cancel):
            if args.json:
                out.write(json.dumps({"type": "token", "text": delta.text}) + "\n")
            else:
                out.write(delta.text)
            out.flush()
    except KeyboardInterrupt:
        cancel.set()
        code = 130
    except (BackendError, TemplateError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        stats = backend.last_stats
        backend.close()
    if stats is not None and code == 130:
        stats.finish_reason = "cancelled"
    if args.json:
        done = {"type": "done", "backend": backend.NAME, "model": spec.model or "bundled gemma-3-270m",
                "prompt_mode": mode.mode, "prompt_mode_reason": mode.reason}
        done |= stats.to_dict() if stats else {}
        out.write(json.dumps(done) + "\n")
    else:
        out.write("\n")
        if stats is not None:
            print(stats.summary(), file=sys.stderr)
    out.flush()
    return code
