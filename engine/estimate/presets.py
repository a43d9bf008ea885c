"""Built-in model shapes, copied from each model's released config.json (HF hub configs of
huggyllama/*, meta-llama/Llama-2-*-hf, codellama/CodeLlama-*-hf, meta-llama/Meta-Llama-3-*,
mistralai/Mistral-7B-v0.1, google/gemma-3-270m and google/gemma-3-1b-pt).

Parameter counts follow from the dims (spec.py); e.g. Llama-2-7B = 6,738,415,616 and
Llama-3-8B = 8,030,261,248, as the model cards state.
"""

from __future__ import annotations

from engine.estimate.spec import ModelSpec


def _llama(name: str, L: int, h: int, i: int, nh: int, nkv: int, V: int, ctx: int) -> ModelSpec:
    return ModelSpec(name=name, n_layers=L, hidden=h, intermediate=i, n_heads=nh, n_kv_heads=nkv,
                     vocab=V, max_context=ctx, arch="llama", source="preset")


PRESETS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        _llama("llama-7b", 32, 4096, 11008, 32, 32, 32000, 2048),
        _llama("llama-13b", 40, 5120, 13824, 40, 40, 32000, 2048),
        _llama("llama-33b", 60, 6656, 17920, 52, 52, 32000, 2048),
        _llama("llama-65b", 80, 8192, 22016, 64, 64, 32000, 2048),
        _llama("llama-2-7b", 32, 4096, 11008, 32, 32, 32000, 4096),
        _llama("llama-2-13b", 40, 5120, 13824, 40, 40, 32000, 4096),
        _llama("llama-2-70b", 80, 8192, 28672, 64, 8, 32000, 4096),
        _llama("codellama-7b", 32, 4096, 11008, 32, 32, 32016, 16384),
        _llama("codellama-13b", 40, 5120, 13824, 40, 40, 32016, 16384),
        _llama("codellama-34b", 48, 8192, 22016, 64, 8, 32000, 16384),
        _llama("llama-3-8b", 32, 4096, 14336, 32, 8, 128256, 8192),
        _llama("llama-3-70b", 80, 8192, 28672, 64, 8, 128256, 8192),
        _llama("llama-3.1-8b", 32, 4096, 14336, 32, 8, 128256, 131072),
        _llama("llama-3.1-70b", 80, 8192, 28672, 64, 8, 128256, 131072),
        # v0.1 dims; its 4096-token sliding window is not applied (v0.2+ dropped it).
        ModelSpec(name="mistral-7b", n_layers=32, hidden=4096, intermediate=14336, n_heads=32,
                  n_kv_heads=8, vocab=32000, max_context=32768, arch="mistral", source="preset"),
        ModelSpec(name="gemma-3-270m", n_layers=18, hidden=640, intermediate=2048, n_heads=4,
                  n_kv_heads=1, head_dim=256, vocab=262144, tie_embeddings=True, max_context=32768,
                  arch="gemma3", sliding_window=512, global_every=6, source="preset"),
        ModelSpec(name="gemma-3-1b", n_layers=26, hidden=1152, intermediate=6912, n_heads=4,
                  n_kv_heads=1, head_dim=256, vocab=262144, tie_embeddings=True, max_context=32768,
                  arch="gemma3", sliding_window=512, global_every=6, source="preset"),
    )
}

ALIASES = {
    "llama-30b": "llama-33b", "llama2-7b": "llama-2-7b", "llama2-13b": "llama-2-13b",
    "llama2-70b": "llama-2-70b", "llama3-8b": "llama-3-8b", "llama3-70b": "llama-3-70b",
    "code-llama-7b": "codellama-7b", "code-llama-13b": "codellama-13b",
    "code-llama-34b": "codellama-34b", "mistral-7b-v0.1": "mistral-7b",
    "gemma3-270m": "gemma-3-270m", "gemma3-1b": "gemma-3-1b",
}


def preset_names() -> list[str]:
    return list(PRESETS)


def find_preset(name: str) -> ModelSpec | None:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = ALIASES.get(key, key)
    return PRESETS.get(key)
