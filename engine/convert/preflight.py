"""Pre-flight: everything that can be known about a conversion before it starts, in about a
second — input layout and files, architecture and tokenizer support, output path, free disk for
the output, estimated peak RAM against available RAM.

`check(spec)` never raises for bad input: it returns a `Verdict` listing problems, each marked
whether `--force` may override it (not enough disk/RAM, an unknown BPE pre-tokenizer, an existing
output) or not (a missing file, an unsupported architecture). The CLI prints it, the TUI shows it
as you type, and every job runs it again first.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.convert import ACTIONS
from engine.convert.common import ConvertError
from engine.formatting import format_bytes

_RAM_MARGIN = 512 * 1024**2


@dataclass
class Problem:
    text: str
    forceable: bool = False
    disk: bool = False
    """Not enough free disk for the output: while the size is an estimate, the exact size may fit."""


@dataclass
class Verdict:
    action: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    output: str = ""
    output_bytes: int = 0
    peak_ram: int = 0
    verify_ram: int = 0
    available_ram: int = 0
    free_disk: int = 0
    estimated: bool = False
    """`output_bytes` is an estimate from the header; the exact figure (llama.cpp's quantize
    plan) is not in yet, and the disk was checked against `disk_bytes`, an upper bound."""
    disk_bytes: int = 0
    """What the output may take on disk, for the free-space check: `output_bytes`, or while
    that is an estimate, a figure the output cannot exceed."""

    def blocking(self, force: bool = False) -> list[Problem]:
        return [p for p in self.problems if not (force and p.forceable)]

    def ok(self, force: bool = False) -> bool:
        return not self.blocking(force)

    def may_pass_when_exact(self, force: bool = False) -> bool:
        """Refused on an estimate only for the disk: the exact size may fit."""
        blocking = self.blocking(force)
        return self.estimated and bool(blocking) and all(p.disk for p in blocking)

    @property
    def verify_fits(self) -> bool:
        return not self.available_ram or self.verify_ram + _RAM_MARGIN <= self.available_ram

    def lines(self) -> list[str]:
        out = [f"{k}: {v}" for k, v in self.facts.items()]
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"{'problem (--force overrides)' if p.forceable else 'problem'}: {p.text}" for p in self.problems]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "ok": self.ok(),
            "problems": [{"text": p.text, "forceable": p.forceable} for p in self.problems],
            "warnings": self.warnings,
            "facts": self.facts,
            "output": self.output,
            "output_bytes": self.output_bytes,
            "peak_ram": self.peak_ram,
            "verify_ram": self.verify_ram,
            "estimated": self.estimated,
        }


PATH_KEYS = ("input", "output", "imatrix", "tokenizer", "base")


def absolute_paths(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with every path made absolute: a detached run works in its own folder, so a
    path relative to where the user typed it would point elsewhere there."""
    out = dict(spec)
    for key in PATH_KEYS:
        if out.get(key):
            out[key] = str(Path(str(out[key])).expanduser().absolute())
    return out


def default_output(action: str, spec: dict[str, Any]) -> Path | None:
    """Where a conversion writes when no output is given: next to its input."""
    raw = spec.get("input") or ""
    if not raw:
        return None
    src = Path(str(raw)).expanduser()
    if action == "hf-to-gguf":
        return src.parent / f"{src.name}-{spec.get('outtype', 'f16')}.gguf"
    if action == "quantize":
        stem = src.stem
        for suffix in ("-f32", "-f16", "-bf16", "-F16", "-BF16", "-F32"):
            stem = stem.removesuffix(suffix)
        return src.parent / f"{stem}-{str(spec.get('qtype', 'Q4_K_M')).upper()}.gguf"
    if action == "gguf-to-hf":
        return src.parent / f"{src.stem}-hf"
    if action == "meta-to-hf":
        return src.parent / f"{src.name}-hf"
    if action == "merge-lora":
        return src.parent / f"{src.name}-merged"
    return None


def _existing_ancestor(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path("/")


def _available_ram() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no psutil: skip the RAM check
        return 0


def check(spec: dict[str, Any], *, exact: bool = True) -> Verdict:
    """The verdict for `spec`. What the input says about itself (its layout, size, architecture,
    tokenizer) is kept per input and options, keyed by the files' sizes and times: editing the
    output path, ticking force or verify re-checks only the output, the disk and the RAM.

    `exact=False` answers from the input's header alone where the exact figure takes longer: a
    quantize whose llama.cpp plan (a dry run of its quantizer, 1-5 s) is not cached yet gets an
    estimated size (`Verdict.estimated`) and its disk check uses an upper bound on the output
    (`quantize.size_bound`), so a start on that verdict never begins a quantize the disk cannot
    hold. A second call with `exact=True` then runs the plan (once per input, type and
    requantize choice, however many callers wait for it) and gives the exact figure."""
    action = str(spec.get("action", ""))
    verdict = Verdict(action=action)
    if action not in ACTIONS:
        verdict.problems.append(Problem(f"unknown conversion {action!r}; one of {', '.join(ACTIONS)}"))
        return verdict
    if not spec.get("input"):
        verdict.problems.append(Problem("no input path given"))
        return verdict
    verdict, readable = _input_verdict(spec, exact)
    if readable:  # else the input itself could not be read: nothing to say about the output
        _check_output(spec, verdict)
    return verdict


_OUTPUT_KEYS = ("output", "force", "verify")
_INPUT_CACHE: dict[tuple, tuple[Verdict, bool]] = {}
_INPUT_CACHE_LOCK = threading.Lock()
_INPUT_CACHE_SIZE = 32


def _identity(raw: Any) -> tuple:
    """What changes when a path's content changes: size and time of the file, or of a folder's
    entries (a model folder: config.json, the shards, the tokenizer)."""
    if not raw:
        return ()
    path = Path(str(raw)).expanduser()
    try:
        st = path.stat()
        if not path.is_dir():
            return (str(path.absolute()), st.st_size, st.st_mtime_ns)
        with os.scandir(path) as entries:
            listed = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries)
        return (str(path.absolute()), st.st_mtime_ns, tuple(listed))
    except OSError:
        return (str(path), None)


def _input_verdict(spec: dict[str, Any], exact: bool) -> tuple[Verdict, bool]:
    """A copy of the verdict on the input alone (cached, see `check`), and whether the input
    could be read at all."""
    action = str(spec["action"])
    options = tuple(sorted((k, str(v)) for k, v in spec.items() if k not in _OUTPUT_KEYS))
    key: tuple = (options, *(_identity(spec.get(k)) for k in PATH_KEYS if k != "output"))
    plan: _Plan | None = None
    if action == "quantize":
        plan = _quantize_plan(spec, key[1], wait=False)
        if plan is None and exact:
            estimate, readable = _input_verdict(spec, exact=False)
            if not readable:  # not a GGUF: no dry run to wait for
                return estimate, readable
            plan = _quantize_plan(spec, key[1], wait=True)
        key = (*key, _requantize(spec), plan is not None)  # an estimate and the exact verdict apart
    with _INPUT_CACHE_LOCK:
        cached = _INPUT_CACHE.get(key)
    if cached is None:
        verdict, readable = Verdict(action=action), True
        try:
            if action == "quantize":
                _quantize(spec, verdict, plan)
            else:
                {
                    "hf-to-gguf": _hf_to_gguf,
                    "gguf-to-hf": _gguf_to_hf,
                    "meta-to-hf": _meta_to_hf,
                    "merge-lora": _merge_lora,
                }[action](spec, verdict)
        except ConvertError as exc:
            verdict.problems.append(Problem(str(exc)))
            readable = False
        cached = (verdict, readable)
        with _INPUT_CACHE_LOCK:
            if len(_INPUT_CACHE) >= _INPUT_CACHE_SIZE:
                _INPUT_CACHE.pop(next(iter(_INPUT_CACHE)))
            _INPUT_CACHE[key] = cached
    verdict, readable = cached
    copy = replace(verdict, problems=list(verdict.problems), warnings=list(verdict.warnings), facts=dict(verdict.facts))
    return copy, readable


def _check_output(spec: dict[str, Any], verdict: Verdict) -> None:
    out = Path(str(spec.get("output") or default_output(verdict.action, spec) or "")).expanduser()
    verdict.output = str(out)
    src = Path(str(spec["input"])).expanduser()
    if out.resolve() == src.resolve():
        verdict.problems.append(Problem(f"output {out} is the input; choose another output path"))
        return
    wants_file = verdict.action in ("hf-to-gguf", "quantize")
    if wants_file and out.suffix.lower() != ".gguf":
        verdict.warnings.append(f"output {out.name} does not end in .gguf")
    if out.exists():
        kind = "file" if out.is_file() else "folder"
        verdict.problems.append(Problem(f"output {out} already exists ({kind}); pass --force to replace it", True))
    anchor = _existing_ancestor(out.parent)
    if not anchor.is_dir():
        verdict.problems.append(Problem(f"output folder {out.parent} is under a file ({anchor})"))
        return
    if not os.access(anchor, os.W_OK):
        verdict.problems.append(Problem(f"cannot write to {anchor}; choose an output path you can write"))
        return
    verdict.free_disk = shutil.disk_usage(anchor).free
    disk_bytes = verdict.disk_bytes or verdict.output_bytes
    need = int(disk_bytes * 1.05) + 16 * 1024**2
    size = f"about {format_bytes(verdict.output_bytes)}"
    if verdict.estimated:
        size += f" estimated from the header, at most {format_bytes(disk_bytes)}"
    verdict.facts["output"] = f"{out} ({size}; {format_bytes(verdict.free_disk)} free)"
    if disk_bytes and need > verdict.free_disk:
        what = "may need up to" if verdict.disk_bytes else "needs about"
        verdict.problems.append(
            Problem(f"not enough disk at {anchor}: the output {what} {format_bytes(need)}, "
                    f"{format_bytes(verdict.free_disk)} is free", True, disk=True)
        )
    verdict.available_ram = _available_ram()
    if verdict.available_ram:
        verdict.facts["memory"] = (
            f"peak about {format_bytes(verdict.peak_ram)} to convert, {format_bytes(verdict.verify_ram)} to verify; "
            f"{format_bytes(verdict.available_ram)} available"
        )
        if verdict.peak_ram + _RAM_MARGIN > verdict.available_ram:
            verdict.problems.append(
                Problem(
                    f"not enough RAM: converting needs about {format_bytes(verdict.peak_ram)}, "
                    f"{format_bytes(verdict.available_ram)} is available",
                    True,
                )
            )
        elif spec.get("verify", True) and not verdict.verify_fits:
            verdict.warnings.append(
                f"verification needs about {format_bytes(verdict.verify_ram)} of RAM, more than is available; "
                "it will be skipped"
            )


# -- per action ---------------------------------------------------------------------------------
def _hf_to_gguf(spec: dict[str, Any], verdict: Verdict) -> None:
    from engine.convert import hf_to_gguf
    from engine.convert.hf_source import open_hf_model
    from engine.convert.vocab import bpe_pre_tokenizer, tokenizer_kind

    model = open_hf_model(Path(str(spec["input"])).expanduser())
    outtype = str(spec.get("outtype", "f16"))
    arch, planned = hf_to_gguf.plan(model, outtype)
    verdict.output_bytes = sum(p.nbytes for p in planned)
    largest = max(model.tensors.values(), key=lambda t: t.nbytes)
    n_params = sum(t.nbytes // max(1, _itemsize(t.dtype)) for t in model.tensors.values())
    verdict.peak_ram = _numel(largest.shape) * 4 * 3 + 300 * 1024**2
    verdict.verify_ram = n_params * 4 + verdict.output_bytes + 300 * 1024**2
    verdict.facts["model"] = (f"{model.architecture} -> GGUF {arch}, {len(planned)} tensors, "
                              f"{n_params / 1e6:.1f}M parameters, {outtype}")
    kind = tokenizer_kind(model.path)
    if not kind:
        verdict.problems.append(Problem(f"{model.path} has no tokenizer (tokenizer.model or tokenizer.json)"))
    elif kind == "bpe":
        try:
            data = json.loads((model.path / "tokenizer.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConvertError(f"{model.path / 'tokenizer.json'} is not valid JSON ({exc})") from None
        mtype = (data.get("model") or {}).get("type")
        pre = bpe_pre_tokenizer(data)
        if mtype != "BPE":
            verdict.problems.append(Problem(f"{model.path / 'tokenizer.json'} is a {mtype} tokenizer; GGUF export "
                                            "needs BPE or a tokenizer.model"))
        elif pre is None and _sentencepiece_style(data):
            verdict.problems.append(Problem(
                f"{model.path / 'tokenizer.json'} is a SentencePiece-style tokenizer "
                "but the folder has no tokenizer.model: "
                "copy the base model's tokenizer.model into it (--force writes tokenizer.json as byte-level BPE, "
                "which splits text differently, and verification will fail)", True,
            ))
        elif pre is None:
            verdict.problems.append(
                Problem(f"{model.path / 'tokenizer.json'}: pre-tokenizer not known to llama.cpp; "
                        "--force writes it as 'default'", True)
            )
        else:
            verdict.facts["tokenizer"] = f"byte-level BPE, pre-tokenizer {pre}"
    else:
        verdict.facts["tokenizer"] = "SentencePiece tokenizer.model"


class _Plan(Future):  # type: ignore[type-arg]
    """llama.cpp's quantize plan of one input, type and requantize choice: the tensor types, or
    the ConvertError saying why its dry run gave none."""


_PLANS: dict[tuple, _Plan] = {}
_PLANS_SIZE = 32


def _requantize(spec: dict[str, Any]) -> bool:
    return bool(spec.get("allow_requantize") or spec.get("force"))


def _quantize_plan(spec: dict[str, Any], identity: tuple, *, wait: bool) -> _Plan | None:
    """The plan for this spec's input (its `identity`), type and requantize choice when it is
    known, or when `wait`, once the dry run is done: the first caller runs it, the others wait for
    that run (a check after an output edit while it runs). Without `wait`: None until it is done.
    A file that is not a GGUF or a type that does not exist is for `_quantize` to report."""
    from engine.convert.quantize import QUANT_TYPES, normalize_type, planned_types

    qtype = str(spec.get("qtype", "Q4_K_M")).strip().upper().replace("-", "_")
    if qtype not in QUANT_TYPES or len(identity) != 3 or not isinstance(identity[2], int):
        return None  # an unknown type, or an input that is no file: `_quantize` says so
    key = (identity, qtype, _requantize(spec))
    with _INPUT_CACHE_LOCK:
        plan = _PLANS.get(key)
        owner = plan is None and wait
        if owner:
            while len(_PLANS) >= _PLANS_SIZE:
                _PLANS.pop(next(iter(_PLANS)))
            plan = _PLANS[key] = _Plan()
    if plan is None or not (wait or plan.done()):
        return None
    if owner:
        try:
            plan.set_result(planned_types(Path(identity[0]), normalize_type(qtype), allow_requantize=key[2]))
        except ConvertError as exc:
            plan.set_exception(exc)
    plan.exception()  # waits for the owner's run
    return plan


def _quantize(spec: dict[str, Any], verdict: Verdict, plan: _Plan | None) -> None:
    """Without a `plan` (the dry run not done yet): the size estimated from the header, and the
    upper bound the disk check uses."""
    from engine.convert.gguf_source import architecture, file_type_name, is_float_file, read_gguf_header
    from engine.convert.quantize import BITS, estimated_size, normalize_type, planned_size, size_bound

    source = Path(str(spec["input"])).expanduser()
    head = read_gguf_header(source)
    qtype = normalize_type(str(spec.get("qtype", "Q4_K_M")))
    n_params = sum(math.prod(t.shape) for t in head.tensors)
    error = plan.exception() if plan is not None else None
    if plan is None:
        verdict.output_bytes = estimated_size(head, qtype)
        verdict.disk_bytes = max(size_bound(head), verdict.output_bytes)
        verdict.estimated = True
    elif error is None:
        types = plan.result()
        verdict.output_bytes = planned_size(head, types)
        verdict.facts["tensor types"] = "planned by llama.cpp's quantizer: " + ", ".join(
            f"{n} {t}" for t, n in sorted(_count(types.values()).items(), key=lambda kv: -kv[1])
        )
    else:
        verdict.output_bytes = estimated_size(head, qtype)
        verdict.disk_bytes = max(size_bound(head), verdict.output_bytes)
        verdict.warnings.append(f"output size is a rough guess ({BITS[qtype]} bits per weight): {error}")
    largest = max(math.prod(t.shape) for t in head.tensors)
    verdict.peak_ram = largest * 4 * 3 + 300 * 1024**2
    verdict.verify_ram = head.file_size + verdict.output_bytes + 300 * 1024**2
    verdict.facts["model"] = (f"GGUF {architecture(head)} {file_type_name(head)}, {len(head.tensors)} tensors, "
                              f"{n_params / 1e6:.1f}M parameters -> {qtype}")
    if not is_float_file(head) and not spec.get("allow_requantize"):
        verdict.problems.append(
            Problem(f"{Path(str(spec['input'])).name} is already quantized ({file_type_name(head)}); "
                    "requantizing loses quality — pass --allow-requantize", True)
        )
    if spec.get("imatrix") and not Path(str(spec["imatrix"])).expanduser().is_file():
        verdict.problems.append(Problem(f"imatrix file {spec['imatrix']} does not exist"))


def _gguf_to_hf(spec: dict[str, Any], verdict: Verdict) -> None:
    from engine.convert.gguf_source import file_type_name, read_gguf_header
    from engine.convert.gguf_to_hf import SUPPORTED, read_hparams
    from engine.convert.shards import DEFAULT_SHARD_BYTES, parse_size

    head = read_gguf_header(Path(str(spec["input"])).expanduser())
    hp = read_hparams(head)
    dtype = str(spec.get("dtype", "f32"))
    item = {"f32": 4, "f16": 2, "bf16": 2}.get(dtype, 4)
    n_params = sum(math.prod(t.shape) for t in head.tensors)
    largest = max(math.prod(t.shape) for t in head.tensors)
    shard = min(parse_size(spec.get("shard_size") or DEFAULT_SHARD_BYTES), n_params * item)
    verdict.output_bytes = n_params * item
    verdict.peak_ram = shard + largest * 4 * 3 + 500 * 1024**2
    verdict.verify_ram = n_params * 4 + head.file_size + 500 * 1024**2
    verdict.facts["model"] = (
        f"GGUF {hp['arch']} {file_type_name(head)} -> {SUPPORTED[hp['arch']]} {dtype}, {hp['n_layer']} layers, "
        f"{n_params / 1e6:.1f}M parameters"
    )


def _meta_to_hf(spec: dict[str, Any], verdict: Verdict) -> None:
    from engine.convert.meta_checkpoint import find_tokenizer, open_meta
    from engine.convert.shards import DEFAULT_SHARD_BYTES, parse_size

    path = Path(str(spec["input"])).expanduser()
    ckpt = open_meta(path, load=True)
    tok = find_tokenizer(path, Path(str(spec["tokenizer"])).expanduser() if spec.get("tokenizer") else None)
    if tok is None:
        verdict.problems.append(Problem(f"no tokenizer.model in {path} or its parent; pass --tokenizer PATH"))
    n_params = sum(t.numel() for t in ckpt.shards[0].values()) * ckpt.n_shards
    src_item = ckpt.shards[0]["tok_embeddings.weight"].element_size()
    item = {"f32": 4, "fp32": 4, "f16": 2, "fp16": 2, "bf16": 2}.get(str(spec.get("dtype", "auto")), src_item)
    shard = min(parse_size(spec.get("shard_size") or DEFAULT_SHARD_BYTES), n_params * item)
    layer = sum(t.numel() for k, t in ckpt.shards[0].items() if k.startswith("layers.0.")) * ckpt.n_shards
    verdict.output_bytes = n_params * item
    verdict.peak_ram = shard + layer * 4 * 2 + 500 * 1024**2
    verdict.verify_ram = n_params * 4 + layer * 8 + 500 * 1024**2
    kind = "Code Llama" if ckpt.rope_theta >= 1_000_000 else "Llama"
    verdict.facts["model"] = (
        f"Meta {kind}: {ckpt.n_layers} layers, dim {ckpt.dim}, {ckpt.n_heads} heads / {ckpt.n_kv_heads} KV heads, "
        f"{ckpt.n_shards} shard(s), vocab {ckpt.vocab_size}, {n_params / 1e6:.1f}M parameters"
    )


def _merge_lora(spec: dict[str, Any], verdict: Verdict) -> None:
    from engine.convert.hf_source import open_hf_model
    from engine.convert.merge_lora import resolve_base

    adapter = Path(str(spec["input"])).expanduser()
    if not adapter.is_dir():
        raise ConvertError(f"{adapter} is not a folder; a LoRA adapter is a folder with adapter_config.json")
    base = resolve_base(adapter, Path(str(spec["base"])).expanduser() if spec.get("base") else None)
    model = open_hf_model(base)
    if not any((adapter / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        verdict.problems.append(Problem(f"{adapter} has no adapter_model.safetensors"))
    item = {"f32": 4, "f16": 2, "bf16": 2}.get(str(spec.get("dtype", "f32")), 4)
    n_params = sum(t.nbytes // max(1, _itemsize(t.dtype)) for t in model.tensors.values())
    verdict.output_bytes = n_params * item
    verdict.peak_ram = n_params * item * 2 + 500 * 1024**2
    verdict.verify_ram = verdict.peak_ram + n_params * 4
    verdict.facts["model"] = (f"base {base} ({model.architecture}, {n_params / 1e6:.1f}M parameters) "
                              f"+ adapter {adapter.name}")


def _sentencepiece_style(tokenizer_json: dict[str, Any]) -> bool:
    """A tokenizer.json converted from a SentencePiece model: "▁" for spaces (Metaspace, or a
    normalizer replacing " " with it), byte fallback."""
    parts = {k: tokenizer_json.get(k) for k in ("normalizer", "pre_tokenizer", "decoder")}
    text = json.dumps(parts, ensure_ascii=False)
    return "\u2581" in text or "Metaspace" in text or bool((tokenizer_json.get("model") or {}).get("byte_fallback"))


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _itemsize(dtype: str) -> int:
    from engine.convert.hf_source import DTYPE_BYTES

    return DTYPE_BYTES.get(dtype, 4)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
