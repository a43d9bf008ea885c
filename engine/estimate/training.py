"""Training memory per GPU: weights, gradients, optimizer states, activations, logits.

Per-parameter budgets (N all parameters, T trainable; source for the byte counts: HF
"model memory anatomy" doc, Megatron-Core distributed-optimizer doc):

  precision "mixed" (fp32 weights + bf16 autocast, the HF Trainer with bf16=True):
      weights 4N + autocast's bf16 copies of every Linear weight, cached for the forward and kept
      by autograd until their layer's backward (2 x linear params; HF doc's "6 bytes/param"),
      fp32 grads 4T, AdamW 8T (exp_avg + exp_avg_sq in fp32)           -> 16-18 B/param
  precision "bf16" (pure bf16 weights, grads and AdamW states, torchtune/LLaMA-Factory pure_bf16):
      2N + 2T + 4T                                                   -> 8 B/param
  precision "fp32": 4N + 4T + 8T                                     -> 16 B/param
  LoRA: frozen base in bf16 (2N) or fp32, adapters in fp32 (peft autocast_adapter_dtype), grads
      4T and AdamW 8T on the adapters only. QLoRA: decoder Linear weights in NF4 with double
      quantisation (4.127 bits), embeddings/norms/head in bf16, plus one dequantized Linear.
  Optimizers: adamw 8 B/param (state dtype = param dtype in pure bf16: 4), adamw_8bit/paged
      (bitsandbytes blockwise 8-bit, 2 states x 1 B + absmax) 2.03 B, sgd momentum 4 B.
      "paged" states live in CUDA unified memory (cudaMallocManaged), outside torch's allocator,
      and are evicted to CPU RAM under pressure: listed, but not counted in the per-GPU total.
      optimizer_in_backward (torchtune optimizer_in_bwd) applies each gradient as soon as it
      exists, so only the largest one is ever alive.
  Implementation temporaries (torch.optim.AdamW): fused 0 (transformers' default on torch>=2.8),
      foreach + one state-sized buffer over all params (_foreach_sqrt), for-loop 2 x largest param.

Activations saved for backward per decoder layer (b batch, s sequence, h hidden, i
intermediate, q = heads x head_dim, kv = kv_heads x head_dim), SDPA attention (no s^2 term):

  b*s*(c_h*h + c_q*q + c_kv*kv + c_i*i) + 4*b*heads*s (softmax logsumexp)

with (c_h, c_q, c_kv, c_i) = (18, 6, 4, 8) for bf16, (20, 10, 8, 8) for mixed (fp32 residual
stream and norms, bf16 matmul inputs) and (20, 12, 8, 16) for fp32. The structure follows
Korthikanti et al. 2022 ("Reducing Activation Recomputation", 34*s*b*h per layer for GPT with
dropout); the coefficients were measured here for transformers 5's LlamaDecoderLayer by tracking
every tensor autograd keeps (torch.distributed._tools.mem_tracker.MemTracker; see
tests/engine/test_estimate_measured.py). Eager attention adds 2*a*b*heads*s^2.

LoRA / QLoRA (frozen base): a frozen Linear or norm weight needs no weight gradient, so autograd
keeps nothing for it that only the weight gradient would use: not the input of q/k/v/o/gate/up/
down, not the normalised activations of the norms. Measured per token and layer with
torch.autograd.graph.saved_tensors_hooks (tests/engine/test_estimate_saved.py):
  frozen bf16 base: the norms' fp32 inputs 2*4h, SDPA's q and output 2*2q, k and v 2*2kv, the
      MLP's gate output, SiLU output and up output 3*2i  -> (8, 4, 4, 6)   [full bf16: (18, 6, 4, 8)]
  frozen fp32 base: (8, 8, 8, 12)
Until 2026-12 LoRA used the full fine-tune's coefficients, which count every Linear input a
second time (10h + 2q + 2i bytes per token and layer too many): Llama LoRA runs without
checkpointing at batch 4 x 2048 were over-predicted by 14-19% on an H200.
Each targeted module then keeps its own adapter input (peft: x -> cast to the adapter dtype ->
dropout -> lora_A -> lora_B):
  lora_A's input: the fp32 dropout output (4 B per input element); under bf16 autocast ("mixed",
      the HF Trainer with bf16=True) lora_A runs in bf16 and keeps a bf16 copy instead (2 B);
  dropout's mask: CUDA's fused native_dropout keeps a bool mask (1 B); on CPU aten::dropout keeps
      its noise tensor in the input's dtype (4 B), so CPU measurements see 3 B more per element;
  without dropout lora_A keeps the cast input itself (4 B, or 2 B under autocast); on an fp32 base
      without dropout the cast is a no-op and modules that read the same tensor (q/k/v, gate/up)
      share one saved input;
  lora_B's input: b*s*r in the adapter (or autocast) dtype.

Gradient checkpointing (transformers wraps each decoder layer): keeps each layer's input,
L*b*s*h*a_residual, plus one layer's full activations during its recomputation.

Chunked loss (torchtune CEWithChunkedOutputLoss, 8 chunks): logits stay in compute dtype,
b*s*V*a; the fp32 upcast, log-softmax and gradient exist for one chunk at a time,
b*s*V*(8+a)/8 (each chunk's gradient flows through its own output projection).

Logits (the vocabulary term that dominates short sequences with 128k-256k vocabularies):
transformers' ForCausalLMLoss upcasts the logits to fp32 and calls cross_entropy (log_softmax +
nll_loss). The forward holds, for a moment, the lm_head output, its fp32 copy and the fp32
log-softmax (b*s*V*(a + 8) in 16-bit; the caller drops the output object, so only the log-softmax
stays). The loss backward is the peak: the saved log-softmax, nll_loss's fp32 gradient and
log_softmax's fp32 input gradient, b*s*V*12, in any precision; the cast back to 16 bits comes
after the first two are freed. Measured with a live-storage tracker on transformers 5.17
(tests/engine/test_estimate_saved.py); until 2026-12 this was b*s*V*(6 + 8) = 14 B per logit,
which counted the 16-bit logits and their gradient as alive together with the fp32 buffers.

The peak is the largest of four moments of a step (measured peaks land on each, depending on
the shape): (loss) weights + optimizer states + autocast weight copies + all activations + logits
with the loss backward's buffers; (layer) the backward of the last decoder layer: logits freed,
the head's gradient exists, a checkpointed layer is recomputed, plus one layer's backward
workspace a*b*s*(3i+4h); (end) the first layer's backward: every gradient but the embedding's,
plus that workspace (tied embeddings: the embedding's new gradient exists beside the head's,
before autograd adds it in place, AccumulateGrad case 2.3: + V*h*g); (step) the optimizer step:
weights + states + gradients + temporaries.
Gradients of the previous step are freed (zero_grad(set_to_none=True)). Autocast's weight
copies die with the forward when checkpointing (they are not saved), else live until backward.

Data parallel / sharding over d GPUs (Megatron: 4+16/d, 6+12/d, 8+8/d; ZeRO paper):
  ddp    every GPU holds everything, plus DDP's gradient buckets (a copy of the gradients);
  zero1  optimizer states / d;  zero2 + gradients / d;
  zero3 / fsdp  + weights / d, plus two gathered layers (prefetch) in compute precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.estimate.lora import lora_targets, lora_trainable_params
from engine.estimate.result import Component, Estimate
from engine.estimate.spec import GIB, ModelSpec

METHODS = ("full", "lora", "qlora")
PRECISIONS = ("mixed", "bf16", "fp32")
OPTIMIZERS = ("adamw", "adamw_8bit", "paged_adamw", "paged_adamw_8bit", "sgd")
OPTIMIZER_IMPLS = ("fused", "foreach", "forloop")
SHARDS = ("none", "ddp", "zero1", "zero2", "zero3", "fsdp")
ATTENTIONS = ("sdpa", "eager")
DEVICES = ("cuda", "cpu")

# (c_h, c_q, c_kv, c_i, c_rest): bytes per b*s*dim kept for backward, see module docstring.
ACT_COEFFS: dict[str, tuple[float, float, float, float, float]] = {
    "bf16": (18, 6, 4, 8, 8),
    "mixed": (20, 10, 8, 8, 10),
    "fp32": (20, 12, 8, 16, 10),
}
# The same for a frozen base (LoRA/QLoRA): no Linear input and no normalised activation is kept for
# a weight gradient (module docstring). c_rest: the final norm's fp32 input only (the frozen
# lm_head keeps nothing), 4h instead of the full fine-tune's 8h.
FROZEN_ACT_COEFFS: dict[str, tuple[float, float, float, float, float]] = {
    "bf16": (8, 4, 4, 6, 4),
    "fp32": (8, 8, 8, 12, 4),
}
# Bytes per element of the mask dropout keeps for backward: CUDA's fused native_dropout keeps a
# bool mask; CPU's aten::dropout multiplies by a noise tensor in the input's dtype (fp32 here).
DROPOUT_MASK_BYTES: dict[str, int] = {"cuda": 1, "cpu": 4}
# Bytes per logit alive at the loss backward (module docstring): fp32 log-softmax, its gradient from
# nll_loss, and log_softmax's input gradient.
LOGIT_BYTES = 12


@dataclass(frozen=True)
class TrainingOptions:
    method: str = "lora"
    batch: int = 1  # micro-batch per GPU
    seq_len: int = 2048
    precision: str = "bf16"  # mixed | bf16 | fp32 (LoRA/QLoRA: the compute and base-weight dtype)
    optimizer: str = "adamw"
    optimizer_impl: str = "fused"
    grad_checkpointing: bool = False
    lora_rank: int = 16
    lora_targets: str = "all-linear"
    lora_dropout: float = 0.05
    gpus: int = 1
    shard: str = "none"
    attention: str = "sdpa"
    chunked_loss: bool = False  # torchtune CEWithChunkedOutputLoss / Liger-style: fp32 logits per chunk
    optimizer_in_backward: bool = False  # torchtune optimizer_in_bwd: each grad is applied and freed at once
    cuda_context_gib: float = 0.5
    device: str = "cuda"  # where it trains: only dropout's saved mask differs (1 B on CUDA, 4 B on CPU)


def _check(opt: TrainingOptions) -> None:
    for name, allowed in (("method", METHODS), ("precision", PRECISIONS), ("optimizer", OPTIMIZERS),
                          ("optimizer_impl", OPTIMIZER_IMPLS), ("shard", SHARDS), ("attention", ATTENTIONS),
                          ("device", DEVICES)):
        if getattr(opt, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {getattr(opt, name)!r})")
    if opt.batch <= 0 or opt.seq_len <= 0 or opt.gpus <= 0:
        raise ValueError("batch, seq_len and gpus must be positive")
    if opt.shard != "none" and opt.gpus == 1:
        raise ValueError(f"--shard {opt.shard} needs --gpus 2 or more")


def activation_bytes(spec: ModelSpec, opt: TrainingOptions) -> tuple[float, float, str]:
    """(activations kept for backward without logits, one layer's activations, formula)."""
    frozen = opt.method in ("lora", "qlora")
    prec = "mixed" if opt.method == "full" and opt.precision == "mixed" else opt.precision
    if frozen and prec == "mixed":
        prec = "bf16"  # a bf16 base under bf16 autocast computes as pure bf16; only the adapters differ
    c_h, c_q, c_kv, c_i, c_rest = (FROZEN_ACT_COEFFS if frozen else ACT_COEFFS)[prec]
    a = 4 if prec == "fp32" else 2
    b, s = opt.batch, opt.seq_len
    if not spec.gated_mlp:
        c_i *= 0.75 if not frozen else 2 / 3  # no gate: the up output alone (frozen: 2 of 3 MLP tensors)
    per_layer = b * s * (c_h * spec.hidden + c_q * spec.q_dim + c_kv * spec.kv_dim + c_i * spec.intermediate)
    per_layer += 4 * b * spec.n_heads * s
    if opt.attention == "eager":
        per_layer += 2 * a * b * spec.n_heads * s * s
    if frozen:
        per_layer += lora_saved_bytes(spec, opt)
    rest = c_rest * b * s * spec.hidden
    label = "frozen base, " if frozen else ""
    if opt.grad_checkpointing:
        a_res = 2 if prec == "bf16" else 4
        kept = spec.n_layers * b * s * spec.hidden * a_res
        return kept + rest, per_layer, f"L*b*s*h*{a_res} (layer inputs); one layer recomputed in backward"
    return (spec.n_layers * per_layer + rest, per_layer,
            f"L*b*s*({c_h}h+{c_q}q+{c_kv}kv+{c_i:g}i) ({label}{prec})" + (" + adapter inputs" if frozen else ""))


def lora_saved_bytes(spec: ModelSpec, opt: TrainingOptions) -> float:
    """Bytes one decoder layer's LoRA adapters keep for backward (module docstring, "LoRA")."""
    shapes = spec.linear_shapes()
    targets = lora_targets(spec, opt.lora_targets)
    b, s = opt.batch, opt.seq_len
    autocast = opt.precision == "mixed"  # bf16 autocast: lora_A/lora_B compute (and keep inputs) in bf16
    fp32_base = opt.precision == "fp32"
    held = 2 if autocast else 4  # lora_A's input as it is kept
    mask = DROPOUT_MASK_BYTES[opt.device] if opt.lora_dropout > 0 else 0
    if fp32_base and not mask:
        # no cast, no dropout: lora_A keeps the very tensor its base layer received, shared by the
        # modules that read it (q/k/v read the norm output, gate/up the second norm's); o_proj reads
        # SDPA's output, which SDPA keeps anyway (already in c_q)
        groups = {"q_proj": "attn_in", "k_proj": "attn_in", "v_proj": "attn_in",
                  "gate_proj": "mlp_in", "up_proj": "mlp_in"}
        inputs = {groups.get(n, n): shapes[n][0] for n in targets if n != "o_proj"}
        adapter_in = sum(inputs.values()) * 4
    else:
        adapter_in = sum(shapes[n][0] for n in targets) * (held + mask)
    lora_b_in = len(targets) * opt.lora_rank * held
    # autocast's bf16 copies of the fp32 adapter weights, kept by lora_A/lora_B until backward
    weight_copies = 2 * opt.lora_rank * sum(shapes[n][0] + shapes[n][1] for n in targets) if autocast else 0
    return b * s * (adapter_in + lora_b_in) + weight_copies


def estimate_training(spec: ModelSpec, options: TrainingOptions | None = None, **overrides) -> Estimate:
    """Peak memory per GPU for one training step (see module docstring for every formula)."""
    opt = options or TrainingOptions()
    if overrides:
        opt = TrainingOptions(**(asdict(opt) | overrides))
    _check(opt)
    N = spec.params
    full = opt.method == "full"
    d = opt.gpus if opt.shard in ("zero1", "zero2", "zero3", "fsdp") else 1
    shard_w = opt.shard in ("zero3", "fsdp")
    shard_g = opt.shard in ("zero2", "zero3", "fsdp")
    notes: list[str] = []

    # --- weights ---------------------------------------------------------------------------
    cast_copies = 0.0
    if full:
        T = N
        wbytes = {"mixed": 4, "bf16": 2, "fp32": 4}[opt.precision]
        weights = N * wbytes
        wlabel = f"weights ({'fp32 master' if opt.precision == 'mixed' else opt.precision})"
        wformula = f"{N:,} x {wbytes} B"
        if opt.precision == "mixed":
            cast_copies = 2.0 * (spec.decoder_linear_params + spec.vocab * spec.hidden)
        gbytes = 2 if opt.precision == "bf16" else 4
    else:
        T = lora_trainable_params(spec, opt.lora_rank, opt.lora_targets)
        if opt.method == "qlora":
            base = spec.weight_bytes("nf4")
            wlabel = "base weights (NF4, double quant)"
            wformula = "linear x 4.127 bits + rest in bf16"
        else:
            bb = 4 if opt.precision == "fp32" else 2
            base = N * bb
            wlabel = f"base weights ({'fp32' if bb == 4 else 'bf16'}, frozen)"
            wformula = f"{N:,} x {bb} B"
        weights = base + 4.0 * T
        wformula += f" + adapters {T:,} x 4 B"
        gbytes = 4
    grads = T * gbytes

    # --- optimizer -------------------------------------------------------------------------
    if opt.optimizer in ("adamw", "paged_adamw"):
        per = 4 if (full and opt.precision == "bf16") else 8
    elif opt.optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        per = 2 * (1 + 4 / 256)
    else:
        per = 4 if not (full and opt.precision == "bf16") else 2
    optim = T * per
    temp = 0.0
    if opt.optimizer in ("adamw", "paged_adamw", "sgd"):
        if opt.optimizer_impl == "foreach":
            temp = T * per / 2
        elif opt.optimizer_impl == "forloop":
            largest = max(spec.largest_linear_params, spec.vocab * spec.hidden) if full else T / max(spec.n_layers, 1)
            temp = 2 * largest * per / 2

    if opt.optimizer_in_backward:
        grad_params = (spec.largest_linear_params if not full
                       else max(spec.largest_linear_params, spec.vocab * spec.hidden))
        grads = grad_params * gbytes
        notes.append("optimizer in backward: each gradient is applied and freed as soon as it is computed")
    paged = opt.optimizer.startswith("paged")

    # --- sharding --------------------------------------------------------------------------
    weights_gpu = weights / d if shard_w else weights
    grads_gpu = grads / d if shard_g else grads
    optim_gpu = optim / d
    temp_gpu = temp / d
    gather = 0.0
    if shard_w:
        per_layer_params = spec.layer_linear_params + spec.layer_norm_params
        gather = 2 * per_layer_params * (2 if opt.precision != "fp32" else 4) * (1 if full else 0.5)
    buckets = grads if (opt.shard == "ddp" and opt.gpus > 1) else 0.0

    # --- activations and logits ------------------------------------------------------------
    acts, layer_acts, act_formula = activation_bytes(spec, opt)
    a_logit = 4 if opt.precision == "fp32" else 2
    tokens = opt.batch * opt.seq_len
    if opt.chunked_loss:
        # logits stay in compute dtype; only one of 8 chunks is upcast and soft-maxed at a time
        logits_fwd = tokens * spec.vocab * a_logit
        logits_bwd = tokens * spec.vocab * (8 + a_logit) / 8
    else:
        # the loss backward's fp32 buffers (module docstring): more than the forward's moment
        logits_fwd = tokens * spec.vocab * (a_logit + 8 if a_logit == 2 else 8)
        logits_bwd = tokens * spec.vocab * LOGIT_BYTES
    logits = max(logits_fwd, logits_bwd) if not opt.chunked_loss else logits_fwd + logits_bwd
    dequant = 2.0 * spec.largest_linear_params if opt.method == "qlora" else 0.0

    # Phases (the peak is the largest; see module docstring):
    #  loss:  everything saved by the forward + logits and the loss backward's buffers;
    #  layer: backward of the first decoder layer reached (head gradient exists, logits freed;
    #         with checkpointing its activations are recomputed now);
    #  end:   last layer's backward, all gradients present;
    #  step:  optimizer step (gradients + states + temporaries).
    a_c = 4 if opt.precision == "fp32" else 2
    transient = a_c * opt.batch * opt.seq_len * (3 * spec.intermediate + 4 * spec.hidden)
    live_casts = cast_copies if not opt.grad_checkpointing else 0.0
    layer_cast = 2.0 * spec.layer_linear_params if cast_copies else 0.0
    head_grad = spec.vocab * spec.hidden * gbytes if full else 0.0
    embed_share = (spec.vocab * spec.hidden / T) if full else 0.0
    # tied embeddings: the shared weight's gradient exists from the head's backward on, and the
    # embedding's own gradient is a second V x h tensor until autograd adds it in place
    tied = full and spec.tie_embeddings and not opt.optimizer_in_backward
    end_extra = max(transient, spec.vocab * spec.hidden * gbytes) if tied else transient
    if tied:
        embed_share = 0.0
    optim_dev = 0.0 if paged else optim_gpu  # paged states: CUDA unified memory, outside torch's allocator
    base = weights_gpu + optim_dev + gather + dequant
    recompute = layer_acts if opt.grad_checkpointing else 0.0
    phases = {
        "loss": base + live_casts + acts + logits,
        "layer": (base + live_casts + acts + recompute + transient + head_grad
                  + (layer_cast if opt.grad_checkpointing else 0)),
        # the embedding's gradient comes last, after the first layer's activations are consumed
        "end": base + grads_gpu * (1 - embed_share) + buckets + end_extra + layer_cast,
        "step": 0.0 if opt.optimizer_in_backward else weights_gpu + optim_dev + grads_gpu + temp_gpu + buckets + gather,
    }
    phase = max(phases, key=phases.get)
    peak_phase = {
        "loss": "loss backward (activations + logits alive)",
        "layer": "backward of the last decoder layer" + (" (recomputed)" if opt.grad_checkpointing else ""),
        "end": "end of backward (all gradients + one layer)",
        "step": "optimizer step (gradients + states)",
    }[phase]
    act_at_peak = {"loss": acts, "layer": acts + recompute, "end": 0.0, "step": 0.0}[phase]
    cast_at_peak = {"loss": live_casts, "layer": live_casts + (layer_cast if opt.grad_checkpointing else 0),
                    "end": layer_cast, "step": 0.0}[phase]
    grads_at_peak = {"loss": 0.0, "layer": head_grad, "end": grads_gpu * (1 - embed_share), "step": grads_gpu}[phase]
    comps = [
        Component("weights", wlabel + (f" / {d}" if shard_w else ""), weights_gpu, wformula),
        Component("optimizer", f"optimizer ({opt.optimizer})" + (f" / {d}" if d > 1 else "")
                  + (" paged, spills to CPU" if paged else ""), optim_gpu,
                  f"{T:,} x {per:.2f} B" + (" in CUDA unified memory" if paged else ""),
                  at_peak=not paged, allocator=not paged),
        Component("grads", f"gradients ({'fp32' if gbytes == 4 else 'bf16'})" + (f" / {d}" if shard_g else ""),
                  grads_at_peak if grads_at_peak else grads_gpu,
                  f"{T:,} trainable x {gbytes} B"
                  + (" (head only at this point)" if phase == "layer" and grads_at_peak else ""),
                  at_peak=bool(grads_at_peak)),
    ]
    if temp_gpu:
        comps.append(Component("optimizer_temp", f"optimizer step temporaries ({opt.optimizer_impl})", temp_gpu,
                               "torch.optim.AdamW foreach/for-loop buffers", at_peak=phase == "step"))
    if cast_copies:
        comps.append(Component("weight_copies", "bf16 weight copies (autocast)", cast_at_peak or cast_copies,
                               "2 B x (decoder linear + head) params, kept by autograd", at_peak=bool(cast_at_peak)))
    if buckets:
        comps.append(Component("ddp_buckets", "DDP gradient buckets", buckets, "a copy of the gradients",
                               at_peak=phase in ("end", "step")))
    if gather:
        comps.append(Component("gathered", "gathered layers (ZeRO-3/FSDP prefetch)", gather,
                               "2 layers in compute precision", at_peak=phase != "step"))
    comps += [
        Component("activations", "activations" + (" (checkpointed)" if opt.grad_checkpointing else ""),
                  act_at_peak or acts, act_formula, at_peak=bool(act_at_peak)),
        Component("logits", f"logits + loss (vocab {spec.vocab:,})" + (" chunked" if opt.chunked_loss else ""), logits,
                  "b*s*V*a + b*s*V*(8+a)/8 (8 chunks)" if opt.chunked_loss else
                  f"b*s*V*{LOGIT_BYTES} (fp32 log-softmax + 2 fp32 gradients in the loss backward)",
                  at_peak=phase == "loss"),
        Component("backward_ws", "backward workspace (one layer)", transient, "a*b*s*(3i+4h)",
                  at_peak=phase == "layer" or (phase == "end" and end_extra == transient)),
    ]
    if tied:
        comps.append(Component("tied_grad", "embedding gradient before it joins the tied head's",
                               spec.vocab * spec.hidden * gbytes, "V*h*g, added in place at the end of backward",
                               at_peak=phase == "end" and end_extra != transient))
    if dequant:
        comps.append(Component("dequant", "NF4 dequantize buffer", dequant, "largest Linear in bf16",
                               at_peak=phase != "step"))
    comps.append(Component("cuda_context", "CUDA context + libraries", opt.cuda_context_gib * GIB,
                           "not in max_memory_allocated", allocator=False))
    if not full:
        notes.append(f"trainable parameters: {T:,} ({100 * T / N:.2f}% of {N:,}), rank {opt.lora_rank}, "
                     f"targets {opt.lora_targets}")
    if spec.vocab >= 100_000 and logits > 0.25 * acts:
        notes.append(f"the {spec.vocab:,}-token vocabulary's logits are "
                     f"{logits / GIB:.1f} GiB at b*s = {tokens:,}")
    settings = asdict(opt)
    return Estimate(mode=opt.method, model=spec.summary(), settings=settings, components=tuple(comps),
                    peak_phase=peak_phase, notes=tuple(notes), trainable_params=T,
                    extra={"phase_bytes": {k: int(v) for k, v in phases.items()}})
