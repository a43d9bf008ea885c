"""Memory and time estimator: "will it fit" before anything is loaded.

The pre-flight check of Train (estimate_training), Chat and Serve (estimate_inference):

    from engine.estimate import resolve_model, estimate_training, fit_verdict, card_targets
    spec = resolve_model("llama-2-7b")            # or an HF folder / .gguf path
    est = estimate_training(spec, method="qlora", batch=4, seq_len=2048)
    for v in fit_verdict(est, card_targets([24]), spec, TrainingOptions(method="qlora", ...)):
        print(v.target, v.status, v.change)

Light at import: no torch, transformers, gguf or pynvml until a function needs them.
Every formula, with its source, is documented in spec.py, inference.py, training.py, timing.py.
"""

from engine.estimate.fit import (
    DEFAULT_CARDS,
    Target,
    Verdict,
    card_targets,
    cheapest_change,
    fit_verdict,
    local_gpus,
)
from engine.estimate.inference import InferenceOptions, estimate_inference, kv_cache_bytes
from engine.estimate.lora import lora_targets, lora_trainable_params
from engine.estimate.presets import PRESETS, find_preset, preset_names
from engine.estimate.report import estimate, format_report
from engine.estimate.result import Component, Estimate
from engine.estimate.sources import EstimateError, resolve_model, spec_from_gguf, spec_from_hf_dir
from engine.estimate.spec import GB, GIB, ModelSpec
from engine.estimate.timing import decode_tokens_per_s, training_time
from engine.estimate.training import TrainingOptions, estimate_training

__all__ = [
    "DEFAULT_CARDS", "GB", "GIB", "PRESETS", "Component", "Estimate", "EstimateError", "InferenceOptions",
    "ModelSpec", "Target", "TrainingOptions", "Verdict", "card_targets", "cheapest_change",
    "decode_tokens_per_s", "estimate", "estimate_inference", "estimate_training", "find_preset",
    "fit_verdict", "format_report", "kv_cache_bytes", "local_gpus", "lora_targets", "lora_trainable_params",
    "preset_names", "resolve_model", "spec_from_gguf", "spec_from_hf_dir", "training_time",
]
