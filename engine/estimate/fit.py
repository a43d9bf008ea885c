"""Will it fit: compare an estimate with GPUs (this machine's, via NVML) or chosen cards, and
find the cheapest change that makes it fit.

Card sizes are the usable memory the driver reports (nvidia-smi "Total"), in GiB: a "24 GB"
RTX 4090 has 24,564 MiB, an "80 GB" A100/H100 81,920 / 81,559 MiB, a "141 GB" H200 143,771 MiB.
A verdict is "fits" with at least 5% headroom, "tight" within the last 5% (allocator
fragmentation and library buffers can tip it over), else "does not fit".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from engine.estimate.inference import InferenceOptions, estimate_inference
from engine.estimate.result import Estimate
from engine.estimate.spec import GIB, ModelSpec
from engine.estimate.training import TrainingOptions, estimate_training

CARD_GIB: dict[int, float] = {24: 23.99, 40: 40.0, 48: 47.99, 80: 79.65, 141: 140.4}
DEFAULT_CARDS: tuple[int, ...] = (24, 40, 48, 80, 141)
HEADROOM = 0.05


@dataclass(frozen=True)
class Target:
    """A GPU to fit into: a card size or a GPU of this machine (free memory from NVML)."""

    name: str
    capacity_bytes: float
    source: str = "card"  # card | nvml

    @property
    def gib(self) -> float:
        return self.capacity_bytes / GIB


def card_targets(cards: list[float] | tuple[float, ...] = DEFAULT_CARDS) -> list[Target]:
    out = []
    for c in cards:
        gib = CARD_GIB.get(int(c), float(c)) if float(c).is_integer() else float(c)
        out.append(Target(f"{c:g} GB card", gib * GIB, "card"))
    return out


def local_gpus(nvml: Any = None) -> tuple[list[Target], str | None]:
    """This machine's GPUs with their *free* memory, or ([], why not).

    `nvml` lets tests pass a fake module with pynvml's API; the real one is imported lazily.
    """
    if nvml is None:
        try:
            import pynvml as nvml  # type: ignore[no-redef]
        except ImportError:
            return [], "pynvml (nvidia-ml-py) is not installed"
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError and friends: no driver / no GPU
        return [], f"no NVIDIA GPU visible (NVML: {exc})"
    try:
        targets = []
        for idx in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(idx)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            targets.append(Target(f"GPU {idx} {name} (free {mem.free / GIB:.1f}/{mem.total / GIB:.1f} GiB)",
                                  float(mem.free), "nvml"))
        return targets, None if targets else "NVML reports no GPU"
    except Exception as exc:  # noqa: BLE001
        return [], f"NVML query failed: {exc}"
    finally:
        try:  # noqa: SIM105 - kept as try/except so the deliberate broad catch carries its reason
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - a failed shutdown must not hide the query's result
            pass


@dataclass(frozen=True)
class Verdict:
    target: str
    capacity_gib: float
    need_gib: float
    status: str  # fits | tight | does not fit
    headroom_gib: float
    change: str | None = None  # cheapest change that fits, when it does not
    change_need_gib: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def status_for(need: float, capacity: float) -> str:
    if need <= capacity * (1 - HEADROOM):
        return "fits"
    if need <= capacity:
        return "tight"
    return "does not fit"


# --- cheapest change -------------------------------------------------------------------------
# Ordered by what they cost the user: memory tricks that cost little or no quality/speed first,
# then smaller work per step (same effective batch via gradient accumulation), then method and
# quality trade-offs, then hardware.

Change = tuple[str, Callable[[Any], Any | None]]


def _training_changes(spec: ModelSpec, opt: TrainingOptions) -> list[Change]:
    def set_(desc: str, **kw: Any) -> Change:
        def apply(o: TrainingOptions) -> TrainingOptions | None:
            if all(getattr(o, k) == v for k, v in kw.items()):
                return None
            return replace(o, **kw)
        return desc, apply

    changes: list[Change] = [
        set_("enable gradient checkpointing (~30% slower steps)", grad_checkpointing=True),
        set_("use 8-bit AdamW (bitsandbytes)", optimizer="adamw_8bit"),
        set_("use paged 8-bit AdamW (states spill to CPU)", optimizer="paged_adamw_8bit"),
    ]
    if opt.batch > 1:
        changes.append((f"micro-batch 1 with gradient accumulation x{opt.batch} (same effective batch)",
                        lambda o: replace(o, batch=1) if o.batch > 1 else None))
    if opt.method == "full":
        if opt.precision != "bf16":
            changes.append(set_("pure bf16 weights/grads/optimizer states", precision="bf16"))
        changes.append(set_("LoRA instead of full fine-tuning (rank 16, all linear layers)", method="lora",
                            precision="bf16", lora_rank=16, lora_targets="all-linear"))
    if opt.method in ("full", "lora"):
        changes.append(set_("QLoRA (4-bit base weights)", method="qlora", precision="bf16"))
    for s in (opt.seq_len // 2, opt.seq_len // 4):
        if s >= 256:
            changes.append((f"shorter sequences: --seq-len {s}",
                            (lambda s_: lambda o: replace(o, seq_len=s_) if o.seq_len > s_ else None)(s)))
    if opt.gpus > 1 and opt.shard not in ("zero3", "fsdp"):
        changes.append(set_(f"shard weights, gradients and states over {opt.gpus} GPUs (FSDP / ZeRO-3)", shard="fsdp"))
    for g in (2, 4, 8):
        if g > opt.gpus:
            changes.append((f"{g} GPUs with FSDP / ZeRO-3",
                            (lambda g_: lambda o: replace(o, gpus=g_, shard="fsdp"))(g)))
    from engine.estimate.methods import MethodOptions, method_changes

    if isinstance(opt, MethodOptions):
        changes[3:3] = method_changes(spec, opt)  # after the free memory tricks, before method trade-offs
    return changes


def _inference_changes(spec: ModelSpec, opt: InferenceOptions) -> list[Change]:
    changes: list[Change] = []
    if opt.backend == "llama.cpp" and opt.kv_dtype not in ("q8_0", "q4_0"):
        changes.append(("KV cache in q8_0 (--kv-dtype q8_0)", lambda o: replace(o, kv_dtype="q8_0")))
    if opt.batch > 1:
        changes.append(("batch 1", lambda o: replace(o, batch=1)))
    for c in (opt.context // 2, opt.context // 4, opt.context // 8):
        if c >= 512:
            changes.append((f"context {c:,}", (lambda c_: lambda o: replace(o, context=c_))(c)))
    current = opt.weight_dtype or spec.file_dtype or "bf16"
    if opt.backend == "transformers":
        if current not in ("int8", "nf4"):
            changes.append(("8-bit weights (bitsandbytes int8)", lambda o: replace(o, weight_dtype="int8")))
        changes.append(("4-bit weights (bitsandbytes nf4)", lambda o: replace(o, weight_dtype="nf4")))
        changes.append(("GGUF Q4_K_M with llama.cpp", lambda o: replace(o, backend="llama.cpp", weight_dtype="Q4_K_M")))
    else:
        for q in ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K"):
            changes.append((f"quantize to {q}", (lambda q_: lambda o: replace(o, weight_dtype=q_))(q)))
    for g in (2, 4, 8):
        if g > opt.gpus:
            changes.append((f"split over {g} GPUs", (lambda g_: lambda o: replace(o, gpus=g_))(g)))
    return changes


def _run(spec: ModelSpec, opt: Any) -> Estimate:
    from engine.estimate.methods import MethodOptions, estimate_method

    if isinstance(opt, MethodOptions):  # DPO, ORPO, KTO, GRPO: reference model, generation phase
        return estimate_method(spec, opt)
    if isinstance(opt, TrainingOptions):
        return estimate_training(spec, opt)
    return estimate_inference(spec, opt)


def cheapest_change(spec: ModelSpec, options: TrainingOptions | InferenceOptions, capacity_bytes: float
                    ) -> tuple[str, Estimate] | None:
    """The cheapest change (or shortest combination) that brings the estimate under capacity.

    First every single change, in cost order. If none fits alone, changes are stacked greedily:
    each round applies the cheapest change that still saves over 2%, then retries singles on top
    (a change can start to matter once another moved the peak, e.g. checkpointing after LoRA).
    The chain found is then pruned of steps it does not need.
    """
    changes = (_training_changes(spec, options) if isinstance(options, TrainingOptions)
               else _inference_changes(spec, options))
    limit = capacity_bytes * (1 - HEADROOM)

    def total(o: Any) -> float | None:
        try:
            return _run(spec, o).total_bytes
        except ValueError:
            return None

    def apply_chain(chain: list[int]) -> Any | None:
        o = options
        for idx in chain:
            new = changes[idx][1](o)
            if new is not None:
                o = new
        return o

    chain: list[int] = []
    current = options
    for _ in range(len(changes)):
        base = total(current)
        if base is None:
            return None
        fitting = None
        best = None
        for idx, (_desc, apply) in enumerate(changes):
            if idx in chain:
                continue
            new = apply(current)
            if new is None:
                continue
            t = total(new)
            if t is None:
                continue
            if t <= limit:
                fitting = idx
                break
            if best is None and t < base * 0.98:
                best = idx
        if fitting is not None:
            chain.append(fitting)
            for idx in list(chain[:-1])[::-1]:  # prune steps the fit does not need
                trial = [i for i in chain if i != idx]
                t = total(apply_chain(trial))
                if t is not None and t <= limit:
                    chain = trial
            final = apply_chain(chain)
            return " + ".join(changes[i][0] for i in chain), _run(spec, final)
        if best is None:
            return None
        chain.append(best)
        current = changes[best][1](current)
    return None


def fit_verdict(estimate: Estimate, targets: list[Target], spec: ModelSpec | None = None,
                options: TrainingOptions | InferenceOptions | None = None) -> list[Verdict]:
    """A verdict per target; with spec+options, the cheapest change for targets it misses."""
    out = []
    need = estimate.total_bytes
    for t in targets:
        status = status_for(need, t.capacity_bytes)
        change = change_need = None
        if status == "does not fit" and spec is not None and options is not None:
            found = cheapest_change(spec, options, t.capacity_bytes)
            if found:
                change, est = found
                change_need = round(est.total_gib, 2)
            else:
                change = "no single-GPU setting found; use more GPUs or a smaller model"
        out.append(Verdict(t.name, round(t.gib, 2), round(need / GIB, 2), status,
                           round((t.capacity_bytes - need) / GIB, 2), change, change_need))
    return out
