"""LoRA trainable-parameter count, the way peft counts it.

peft adds to every targeted Linear(in, out) an A matrix (r x in) and a B matrix (out x r):
r * (in + out) trainable parameters per module, biases excluded (peft's default bias="none").
Target names follow peft: "all-linear" is every Linear of the decoder except the output head
(peft `INCLUDE_LINEAR_LAYERS_SHORTHAND`); the default for Llama/Mistral/Gemma is q_proj and v_proj
(peft `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`). Tests compare this count with
`PeftModel.get_nb_trainable_parameters()` on real tiny models.
"""

from __future__ import annotations

from engine.estimate.spec import ModelSpec

TARGET_SHORTHANDS: dict[str, tuple[str, ...]] = {
    "default": ("q_proj", "v_proj"),
    "qv": ("q_proj", "v_proj"),
    "attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
}


def lora_targets(spec: ModelSpec, targets: str | list[str] | tuple[str, ...] = "all-linear") -> list[str]:
    """Module names (keys of spec.linear_shapes()) that the LoRA targets cover."""
    shapes = spec.linear_shapes()
    if isinstance(targets, str):
        key = targets.strip().lower()
        if key in ("all-linear", "all_linear", "all"):
            return list(shapes)
        names = TARGET_SHORTHANDS.get(key) or tuple(t.strip() for t in targets.split(",") if t.strip())
    else:
        names = tuple(targets)
    unknown = [n for n in names if n not in shapes]
    if unknown:
        raise ValueError(f"unknown LoRA target module(s) {', '.join(unknown)}; known: {', '.join(shapes)}, "
                         "or all-linear / attn / mlp / qv")
    return [n for n in shapes if n in names]


def lora_trainable_params(spec: ModelSpec, rank: int, targets: str | list[str] | tuple[str, ...] = "all-linear") -> int:
    """sum over targeted modules of n_layers * r * (in + out)."""
    if rank <= 0:
        raise ValueError("LoRA rank must be positive")
    shapes = spec.linear_shapes()
    return sum(spec.n_layers * rank * (shapes[n][0] + shapes[n][1]) for n in lora_targets(spec, targets))
