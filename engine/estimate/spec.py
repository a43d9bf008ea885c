"""What the estimator knows about a model: its shape, its exact parameter count, its weights.

A `ModelSpec` is built from a preset, a local Hugging Face folder (config.json + safetensors
headers), a GGUF file (metadata + tensor table) or explicit dimensions. Nothing here loads
weights: the estimator must answer "will it fit" before anyone waits for a download or a load.

Parameter count of a Llama-shaped decoder (exact for LlamaForCausalLM / MistralForCausalLM /
Gemma3ForCausalLM, checked against transformers in tests/engine/test_estimate_spec.py):

    per layer  = h*(nh*d) + 2*h*(nkv*d) + (nh*d)*h          attention q, k, v, o
               + 3*h*i  (gated MLP: gate, up, down; 2*h*i if not gated)
               + norms  (2*h for Llama; 4*h + 2*d for Gemma 3, which adds q/k norms)
    total      = L*per_layer + V*h (embeddings) + h (final norm) + V*h if the head is untied

h hidden size, nh/nkv query/KV heads, d head_dim (read from config; never assumed h/nh),
i intermediate size, L layers, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

GIB = 1024**3
GB = 1000**3

# Bytes per element of plain dtypes (weights, KV cache, activations).
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "q8_0": 34 / 32,  # llama.cpp KV cache types: block of 32 with an fp16 scale
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
}

DTYPE_ALIASES = {
    "float32": "fp32", "f32": "fp32", "float": "fp32",
    "float16": "fp16", "f16": "fp16", "half": "fp16",
    "bfloat16": "bf16",
    "float8": "fp8", "f8": "fp8",
    "8bit": "int8", "4bit": "nf4", "q4": "nf4",
}

# bitsandbytes 4-bit (QLoRA): 4-bit codes + one absmax per 64-weight block. Without double
# quantisation the absmax is fp32 (32/64 = 0.5 bit/weight); with it the absmax is 8-bit plus one
# fp32 per 256 blocks (8/64 + 32/(64*256) = 0.127 bit). Source: QLoRA paper (Dettmers et al. 2023)
# section 3 "Double Quantization"; bitsandbytes `Params4bit` (blocksize 64).
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
NF4_BITS_NO_DQ = 4 + 32 / 64
# bitsandbytes LLM.int8: int8 codes plus one fp32 scale per output row (`SCB`).
INT8_BITS = 8.0

# Effective bits per weight of whole llama.cpp files (all tensors, embeddings and head included),
# used when estimating an HF model "as if quantized". Source: ggml-org/llama.cpp
# tools/quantize/README.md table for Llama-3.1-8B. A GGUF file given as input is never estimated
# this way: its tensors' real sizes are summed.
GGUF_FTYPE_BPW: dict[str, float] = {
    "IQ1_S": 2.00, "IQ2_XXS": 2.38, "Q2_K": 3.16, "Q3_K_S": 3.64, "Q3_K_M": 4.00,
    "IQ4_XS": 4.46, "Q4_0": 4.55, "Q4_K_S": 4.67, "Q4_K_M": 4.89, "Q5_0": 5.55,
    "Q5_K_S": 5.57, "Q5_K_M": 5.70, "Q6_K": 6.56, "Q8_0": 8.50, "F16": 16.0, "BF16": 16.0,
    "F32": 32.0,
}


def normalise_dtype(name: str) -> str:
    """Canonical dtype name: fp32/fp16/bf16/fp8/int8/nf4 or a GGUF file type like Q4_K_M."""
    raw = name.strip()
    low = raw.lower().replace("-", "_")
    low = DTYPE_ALIASES.get(low, low)
    if low in DTYPE_BYTES or low in ("nf4", "fp4"):
        return low
    up = raw.upper().replace("-", "_")
    if up in GGUF_FTYPE_BPW:
        return up
    raise ValueError(
        f"unknown dtype {name!r}: use fp32, fp16, bf16, fp8, int8, nf4 or a GGUF type "
        f"({', '.join(sorted(GGUF_FTYPE_BPW))})"
    )


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a decoder-only transformer, plus what is known exactly from files."""

    name: str
    n_layers: int
    hidden: int
    intermediate: int
    n_heads: int
    n_kv_heads: int
    vocab: int
    head_dim: int = 0  # 0: hidden // n_heads
    tie_embeddings: bool = False
    max_context: int = 4096
    arch: str = "llama"
    gated_mlp: bool = True
    attention_bias: bool = False
    sliding_window: int | None = None  # window of the sliding-window layers
    global_every: int = 0  # Gemma 3: every Nth layer is global (0: all layers are global)
    source: str = "dims"  # preset | hf | gguf | dims
    path: str | None = None
    exact_params: int | None = None  # from safetensors/GGUF tensor shapes
    file_bytes: int | None = None  # weights as stored (safetensors/GGUF tensor data)
    file_dtype: str | None = None  # dtype of the stored weights (bf16, Q4_K_M ...)
    tensor_types: dict[str, int] = field(default_factory=dict)  # GGUF: type name -> bytes

    def __post_init__(self) -> None:
        for name in ("n_layers", "hidden", "intermediate", "n_heads", "n_kv_heads", "vocab"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model dimension {name} must be positive, got {getattr(self, name)}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")

    # --- shapes -------------------------------------------------------------------------------
    @property
    def d(self) -> int:
        return self.head_dim or self.hidden // self.n_heads

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.d

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.d

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each decoder Linear, by its HF module name."""
        h, i = self.hidden, self.intermediate
        shapes = {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }
        if self.gated_mlp:
            shapes["gate_proj"] = (h, i)
        return shapes

    @property
    def layer_linear_params(self) -> int:
        n = sum(a * b for a, b in self.linear_shapes().values())
        if self.attention_bias:
            n += self.q_dim + 2 * self.kv_dim
        return n

    @property
    def layer_norm_params(self) -> int:
        if self.arch.startswith("gemma3"):
            return 4 * self.hidden + 2 * self.d
        return 2 * self.hidden

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def head_params(self) -> int:
        return 0 if self.tie_embeddings else self.vocab * self.hidden

    @property
    def computed_params(self) -> int:
        per_layer = self.layer_linear_params + self.layer_norm_params
        return self.n_layers * per_layer + self.embedding_params + self.hidden + self.head_params

    @property
    def params(self) -> int:
        """Exact count from tensor shapes when a file was read, else computed from dims."""
        return self.exact_params or self.computed_params

    @property
    def decoder_linear_params(self) -> int:
        """Parameters in decoder Linear layers: what bitsandbytes quantizes for QLoRA."""
        return self.n_layers * self.layer_linear_params

    @property
    def n_global_layers(self) -> int:
        if not self.sliding_window or not self.global_every:
            return self.n_layers if not self.sliding_window else 0
        return self.n_layers // self.global_every

    def kv_tokens_per_layer(self, context: int) -> list[int]:
        """Tokens each layer keeps in its KV cache: sliding-window layers keep at most the window."""
        out = []
        for layer in range(self.n_layers):
            is_global = not self.sliding_window or (
                self.global_every and (layer + 1) % self.global_every == 0
            )
            out.append(context if is_global else min(context, self.sliding_window or context))
        return out

    # --- weights ------------------------------------------------------------------------------
    def weight_bytes(self, dtype: str | None = None) -> float:
        """Bytes of all weights in `dtype` (None: as stored in the file, else bf16).

        nf4/int8 (bitsandbytes) quantize only the decoder Linear layers; embeddings, norms and the
        output head stay in 16-bit (transformers `get_keys_to_not_convert` keeps the head).
        A GGUF type (Q4_K_M ...) uses llama.cpp's measured whole-file bits per weight.
        """
        if dtype is None:
            if self.file_bytes is not None:
                return float(self.file_bytes)
            dtype = "bf16"
        dtype = normalise_dtype(dtype)
        if self.file_bytes is not None and self.file_dtype and dtype == self.file_dtype:
            return float(self.file_bytes)
        n = self.params
        if dtype in ("nf4", "fp4", "int8"):
            bits = {"nf4": NF4_BITS, "fp4": NF4_BITS, "int8": INT8_BITS}[dtype]
            lin = min(self.decoder_linear_params, n)
            extra = (
                self.n_layers * (self.q_dim + 2 * self.kv_dim + self.hidden * 2 + self.intermediate * 2) * 4
                if dtype == "int8"
                else 0
            )
            return lin * bits / 8 + (n - lin) * 2 + extra
        if dtype in GGUF_FTYPE_BPW:
            return n * GGUF_FTYPE_BPW[dtype] / 8
        return n * DTYPE_BYTES[dtype]

    @property
    def largest_linear_params(self) -> int:
        return max(a * b for a, b in self.linear_shapes().values())

    def with_(self, **changes: Any) -> ModelSpec:
        return replace(self, **changes)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "path": self.path,
            "arch": self.arch,
            "params": self.params,
            "layers": self.n_layers,
            "hidden": self.hidden,
            "intermediate": self.intermediate,
            "heads": self.n_heads,
            "kv_heads": self.n_kv_heads,
            "head_dim": self.d,
            "vocab": self.vocab,
            "tied_embeddings": self.tie_embeddings,
            "max_context": self.max_context,
            "sliding_window": self.sliding_window,
            "stored_dtype": self.file_dtype,
            "stored_bytes": self.file_bytes,
        }
