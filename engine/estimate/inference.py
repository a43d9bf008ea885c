"""Inference memory: weights + KV cache + activation/logits workspace + CUDA context.

Formulas (bytes; b batch, c context tokens, a compute bytes):

- Weights: the file's real tensor bytes (GGUF: every tensor's n_bytes, i.e. the real bits per
  weight of its quant types; safetensors: header data_offsets), else params x bytes(dtype).
- KV cache: 2 (K and V) x sum over layers of tokens_kept(layer) x n_kv_heads x head_dim x b x
  bytes(cache dtype). tokens_kept is the context, or the sliding window for sliding layers
  (Gemma 3). KV heads, not query heads: GQA shrinks the cache by n_heads/n_kv_heads (4x on
  Llama-3-8B). Llama-2-7B, 4096 tokens, fp16: 2 x 32 x 32 x 128 x 4096 x 2 = 2 GiB exactly.
  Sources: kv-cache-size crate README; vram.asmirnov.xyz.
- Workspace, transformers: the prompt is prefilled in one forward pass with no autograd, so one
  layer's temporaries live at a time: b x c x a x (2.75 i + 4.8 h) (gate/up/act of the MLP,
  q/k/v and their RoPE copies, residual, fp32 norm). The coefficients were measured with
  engine.estimate.measure (torch MemTracker on transformers 5's LlamaForCausalLM, SDPA).
  Logits: generate() computes only the last position (logits_to_keep=1), upcast to fp32 and
  softmaxed for sampling: b x V x (a + 4 + 4); a full-sequence pass (perplexity) keeps
  b x c x V x (a + 4).
- Workspace, llama.cpp: the compute buffer for one micro-batch of n_ub tokens (512):
  n_ub x [4 V (logits) + 4 (3h + 2i + q_dim + 2 kv_dim)] plus, without flash attention, the
  f32 KQ matrix n_ub x c x n_heads x 4.
- CUDA context + libraries: 0.5 GiB for PyTorch (CUDA lazy loading; "between 300 MiB and
  2 GiB", vram.asmirnov.xyz; 1.3 GB on a V100 without lazy loading, HF model_memory_anatomy),
  0.4 GiB for llama.cpp. Not counted by torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.estimate.result import Component, Estimate
from engine.estimate.spec import DTYPE_BYTES, GIB, ModelSpec, normalise_dtype

BACKENDS = ("transformers", "llama.cpp")
CONTEXT_GIB = {"transformers": 0.5, "llama.cpp": 0.4}


@dataclass(frozen=True)
class InferenceOptions:
    context: int = 4096
    batch: int = 1
    weight_dtype: str | None = None  # None: as stored (GGUF/safetensors), else bf16
    kv_dtype: str = "fp16"
    backend: str = "transformers"
    ubatch: int = 512  # llama.cpp micro-batch
    flash_attention: bool = True  # llama.cpp (auto-enabled on CUDA builds)
    swa_full: bool = True  # llama.cpp: full-size cache for sliding-window layers (its default)
    full_logits: bool = False  # perplexity-style pass keeps logits for every position
    gpus: int = 1  # weights and cache split evenly (tensor/layer split)
    cuda_context_gib: float | None = None


def kv_cache_bytes(spec: ModelSpec, context: int, batch: int = 1, dtype: str = "fp16") -> float:
    """2 x sum_layers(tokens kept) x n_kv_heads x head_dim x batch x bytes(dtype)."""
    per_token_layer = 2 * spec.n_kv_heads * spec.d * batch * DTYPE_BYTES[normalise_dtype(dtype)]
    return float(sum(spec.kv_tokens_per_layer(context)) * per_token_layer)


def _pad256(n: int) -> int:
    return -(-n // 256) * 256


def llama_cpp_kv_cells(spec: ModelSpec, context: int, *, swa_full: bool = True, ubatch: int = 512) -> list[int]:
    """KV cells per layer as llama.cpp allocates them (llama-context.cpp, llama-kv-cache-iswa.cpp
    in the vendored llama.cpp of llama-cpp-python 0.3.36): the context is padded to a multiple of
    256; sliding-window layers get the same full-size cache when `swa_full` is on, which is
    `llama_context_default_params()`'s default and so what `Llama(...)` (and llmdeck) loads with
    ("using full-size SWA cache" in its log); with it off, pad256(min(ctx, window + n_ubatch))."""
    cells = _pad256(context)
    swa_cells = cells if swa_full else _pad256(min(cells, (spec.sliding_window or cells) + ubatch))
    # a layer keeping fewer tokens than the context is a sliding one
    return [cells if kept >= context else swa_cells for kept in spec.kv_tokens_per_layer(context)]


def estimate_inference(spec: ModelSpec, options: InferenceOptions | None = None, **overrides) -> Estimate:
    """Memory per GPU to serve/chat with `spec` at `context` tokens (see module docstring)."""
    opt = options or InferenceOptions()
    if overrides:
        opt = InferenceOptions(**(asdict(opt) | overrides))
    if opt.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}")
    if opt.context <= 0 or opt.batch <= 0 or opt.gpus <= 0:
        raise ValueError("context, batch and gpus must be positive")
    if opt.backend == "transformers" and opt.weight_dtype and normalise_dtype(opt.weight_dtype).startswith(("Q", "IQ")):
        raise ValueError("GGUF quant types need --backend llama.cpp")
    g = opt.gpus
    b, c = opt.batch, opt.context
    kv_dtype = normalise_dtype(opt.kv_dtype)
    wdtype = opt.weight_dtype
    notes = []
    if wdtype is None and opt.backend == "transformers" and spec.source == "gguf":
        wdtype = "bf16"  # transformers dequantizes a GGUF when it loads it
        notes.append("transformers dequantizes GGUF weights on load (bf16 here); llama.cpp keeps them quantized")
    weights = spec.weight_bytes(wdtype)
    if wdtype is None and spec.file_bytes is not None:
        wlabel = f"weights ({spec.file_dtype or 'as stored'}, {weights * 8 / spec.params:.2f} bits/weight)"
        wformula = "sum of the file's tensor bytes"
    else:
        shown = normalise_dtype(wdtype) if wdtype else "bf16"
        wlabel = f"weights ({shown}, {weights * 8 / spec.params:.2f} bits/weight)"
        wformula = f"{spec.params:,} params x bytes({shown})"
    if opt.backend == "llama.cpp":
        per_cell = 2 * spec.n_kv_heads * spec.d * b * DTYPE_BYTES[kv_dtype]
        kv = float(sum(llama_cpp_kv_cells(spec, c, swa_full=opt.swa_full, ubatch=opt.ubatch)) * per_cell)
    else:
        kv = kv_cache_bytes(spec, c, b, kv_dtype)
    a = 2.0
    h, i, V = spec.hidden, spec.intermediate, spec.vocab
    if opt.backend == "transformers":
        ws = b * c * a * (2.75 * i + 4.8 * h)
        ws_formula = "b*c*a*(2.75i+4.8h): one layer's prefill temporaries (measured)"
        logits = b * c * V * (a + 4) if opt.full_logits else b * V * (a + 8)
        logits_formula = "b*c*V*(a+4)" if opt.full_logits else "b*V*(a+4+4): last position, fp32 + softmax"
        allocator = True
    else:
        ub = min(opt.ubatch, c)
        ws = ub * (4 * (3 * h + 2 * i + spec.q_dim + 2 * spec.kv_dim))
        if not opt.flash_attention:
            ws += ub * c * spec.n_heads * 4
        ws_formula = "n_ub*4*(3h+2i+q+2kv)" + ("" if opt.flash_attention else " + n_ub*c*heads*4 (KQ)")
        logits = ub * V * 4
        logits_formula = "n_ub*V*4 (graph output)"
        allocator = False
    ctx_gib = opt.cuda_context_gib if opt.cuda_context_gib is not None else CONTEXT_GIB[opt.backend]
    kv_note = f"2*L*kv_heads*head_dim*ctx*b*bytes({kv_dtype})"
    if opt.backend == "llama.cpp":
        kv_note += "; ctx padded to 256"
    if spec.sliding_window and spec.n_global_layers < spec.n_layers:
        n_swa = spec.n_layers - spec.n_global_layers
        if opt.backend == "llama.cpp" and opt.swa_full:
            kv_note += f"; {n_swa} sliding layers get a full-size cache (llama.cpp's swa_full default)"
        elif opt.backend == "llama.cpp":
            kv_note += f"; {n_swa} sliding layers keep pad256(window {spec.sliding_window} + n_ubatch)"
        else:
            kv_note += f"; {n_swa} sliding layers keep {spec.sliding_window}"
    components = (
        Component("weights", wlabel, weights / g, wformula + (f" / {g} GPUs" if g > 1 else ""), allocator=allocator),
        Component("kv_cache", f"KV cache ({c:,} tokens x {b}, {kv_dtype})", kv / g, kv_note, allocator=allocator),
        Component("activations", "activation workspace", ws, ws_formula, allocator=allocator),
        Component("logits", "logits", logits, logits_formula, allocator=allocator),
        Component("cuda_context", "CUDA context + libraries", ctx_gib * GIB, "not in max_memory_allocated",
                  allocator=False),
    )
    if spec.n_kv_heads < spec.n_heads:
        notes.append(f"GQA: {spec.n_kv_heads} KV heads for {spec.n_heads} query heads "
                     f"(cache {spec.n_heads // spec.n_kv_heads}x smaller than MHA)")
    if c > spec.max_context:
        notes.append(f"context {c:,} exceeds the model's trained context {spec.max_context:,}")
    settings = asdict(opt) | {"kv_dtype": kv_dtype, "cuda_context_gib": ctx_gib}
    return Estimate(mode="infer", model=spec.summary(), settings=settings, components=components,
                    peak_phase="prefill of the full context", notes=tuple(notes))
