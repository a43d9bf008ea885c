"""How long: training time from FLOPs or a measured rate; decode speed from memory bandwidth.

Training compute (EleutherAI "Transformer Math 101"; Kaplan et al. 2020): C = 6 * N * D FLOPs
for D tokens (2ND forward + 4ND backward). With LoRA/QLoRA the frozen weights need no weight
gradients: about 4ND. Gradient checkpointing recomputes the forward: +2ND. The attention-score
FLOPs (6*L*s*h per token, a fraction s/(12h) ~ 4% at s=2048, h=4096) are left out.
Time = C / (GPUs x peak dense bf16 FLOP/s x utilisation); 0.4 (40% MFU) is a typical
well-tuned single-node figure, stated in every answer. A measured tokens/s replaces all of this.

Decode (one token per step) reads every weight and the KV cache once:
tokens/s ~ efficiency x bandwidth / (weight bytes + KV bytes), efficiency ~0.7.
"""

from __future__ import annotations

from dataclasses import dataclass

# Dense bf16 tensor-core peak (FLOP/s) and memory bandwidth (bytes/s), from NVIDIA datasheets.
GPU_SPECS: dict[str, tuple[float, float]] = {
    "H200": (989e12, 4.8e12),
    "H100": (989e12, 3.35e12),
    "A100-SXM4-80GB": (312e12, 2.04e12),
    "A100 80GB": (312e12, 1.94e12),
    "A100": (312e12, 1.555e12),
    "L40S": (362e12, 0.864e12),
    "A6000": (154.8e12, 0.768e12),
    "4090": (165.2e12, 1.008e12),
    "3090": (71e12, 0.936e12),
    "A10G": (70e12, 0.6e12),
    "A10": (125e12, 0.6e12),
    "L4": (121e12, 0.3e12),
    "V100": (125e12, 0.9e12),
    "T4": (65e12, 0.32e12),
}
DEFAULT_GPU = "H100"
DEFAULT_MFU = 0.4


def gpu_specs(name: str | None) -> tuple[str, float, float]:
    """(matched name, peak FLOP/s, bandwidth) for a GPU name like 'NVIDIA H200' or '4090'."""
    if name:
        up = name.upper()
        for key, (flops, bw) in GPU_SPECS.items():
            if key.upper() in up:
                return key, flops, bw
    return DEFAULT_GPU, *GPU_SPECS[DEFAULT_GPU]


@dataclass(frozen=True)
class TimeEstimate:
    seconds: float
    flops: float | None
    basis: str  # human sentence: what the number assumes

    def to_dict(self) -> dict:
        return {"seconds": round(self.seconds, 1), "flops": self.flops, "basis": self.basis}


def training_flops(params: int, tokens: float, method: str = "full", grad_checkpointing: bool = False) -> float:
    per_token = 6.0 if method == "full" else 4.0
    if grad_checkpointing:
        per_token += 2.0
    return per_token * params * tokens


def training_time(params: int, tokens: float, method: str = "full", gpus: int = 1, gpu: str | None = None,
                  mfu: float = DEFAULT_MFU, grad_checkpointing: bool = False,
                  measured_tokens_per_s: float | None = None) -> TimeEstimate:
    """Wall time to train on `tokens` tokens (all epochs), per the module docstring."""
    if measured_tokens_per_s:
        return TimeEstimate(tokens / measured_tokens_per_s, None,
                            f"measured {measured_tokens_per_s:,.0f} tokens/s")
    name, peak, _ = gpu_specs(gpu)
    flops = training_flops(params, tokens, method, grad_checkpointing)
    k = 6 if method == "full" else 4
    k += 2 if grad_checkpointing else 0
    secs = flops / (gpus * peak * mfu)
    return TimeEstimate(secs, flops, f"{k}*N*tokens FLOPs at {mfu:.0%} of {gpus} x {name} "
                                     f"({peak / 1e12:.0f} TFLOP/s bf16 dense)")


def decode_tokens_per_s(
    weight_bytes: float, kv_bytes: float, gpu: str | None = None, efficiency: float = 0.7
) -> tuple[float, str]:
    name, _, bw = gpu_specs(gpu)
    rate = efficiency * bw / max(weight_bytes + kv_bytes, 1.0)
    return rate, f"{efficiency:.0%} of {name} bandwidth {bw / 1e12:.2f} TB/s over weights + KV read per token"


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
