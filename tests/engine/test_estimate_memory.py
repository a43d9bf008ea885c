"""Closed forms and the mechanics of the estimator: KV cache, GQA, budgets, sharding, fit, time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.estimate import (
    GIB,
    InferenceOptions,
    TrainingOptions,
    card_targets,
    estimate,
    estimate_inference,
    estimate_training,
    find_preset,
    fit_verdict,
    kv_cache_bytes,
    local_gpus,
    training_time,
)

LLAMA2_7B = find_preset("llama-2-7b")
LLAMA3_8B = find_preset("llama-3-8b")


def test_kv_cache_llama2_7b_4096_fp16_is_2_gib():
    assert kv_cache_bytes(LLAMA2_7B, 4096, 1, "fp16") == 2 * GIB
    est = estimate_inference(LLAMA2_7B, context=4096)
    assert est.bytes_of("kv_cache") == 2 * GIB


def test_kv_cache_gqa_uses_kv_heads():
    # Llama-3-8B: 8 KV heads of 128 -> 2*32*8*128*2 B = 128 KiB per token in bf16
    assert kv_cache_bytes(LLAMA3_8B, 1, 1, "bf16") == 128 * 1024
    mha = LLAMA3_8B.with_(n_kv_heads=32)
    assert kv_cache_bytes(mha, 8192) == 4 * kv_cache_bytes(LLAMA3_8B, 8192)
    assert any("GQA" in n for n in estimate_inference(LLAMA3_8B).notes)


def test_kv_cache_scales_with_batch_and_dtype():
    base = kv_cache_bytes(LLAMA2_7B, 2048, 1, "fp16")
    assert kv_cache_bytes(LLAMA2_7B, 2048, 3, "fp16") == 3 * base
    assert kv_cache_bytes(LLAMA2_7B, 2048, 1, "fp32") == 2 * base
    assert kv_cache_bytes(LLAMA2_7B, 2048, 1, "q8_0") == pytest.approx(base * 34 / 64)


def test_sliding_window_layers_keep_only_the_window():
    gemma = find_preset("gemma-3-270m")  # 18 layers, every 6th global, window 512, 1 KV head of 256
    per_token_layer = 2 * 1 * 256 * 2
    assert kv_cache_bytes(gemma, 32768) == (3 * 32768 + 15 * 512) * per_token_layer
    assert kv_cache_bytes(gemma, 256) == 18 * 256 * per_token_layer


def test_inference_weights_by_dtype():
    n = LLAMA2_7B.params
    assert estimate_inference(LLAMA2_7B, weight_dtype="fp16").bytes_of("weights") == 2 * n
    assert estimate_inference(LLAMA2_7B, weight_dtype="fp32").bytes_of("weights") == 4 * n
    q4 = estimate_inference(LLAMA2_7B, weight_dtype="Q4_K_M", backend="llama.cpp").bytes_of("weights")
    assert q4 == pytest.approx(n * 4.89 / 8)
    nf4 = estimate_inference(LLAMA2_7B, weight_dtype="nf4").bytes_of("weights")
    # decoder linears at 4.127 bits, embeddings + head (2 x 32000 x 4096) and norms in bf16
    linear = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert nf4 == pytest.approx(linear * 4.127 / 8 + (n - linear) * 2, rel=1e-3)
    with pytest.raises(ValueError, match="llama.cpp"):
        estimate_inference(LLAMA2_7B, weight_dtype="Q4_K_M")


def test_inference_total_is_sum_and_context_is_separate():
    est = estimate_inference(LLAMA2_7B, context=4096)
    assert est.total_bytes == pytest.approx(sum(c.bytes for c in est.components))
    assert est.total_bytes - est.allocated_bytes == pytest.approx(0.5 * GIB)
    # GPUStack/EleutherAI rule of thumb: ~1.2 x weights (+ overhead) for short contexts
    short = estimate_inference(LLAMA2_7B, context=2048)
    assert 1.05 < short.allocated_bytes / short.bytes_of("weights") < 1.25


def test_training_per_parameter_budgets():
    """With negligible activations the budgets are the textbook bytes per parameter."""
    tiny = dict(batch=1, seq_len=1, cuda_context_gib=0.0)
    n = LLAMA2_7B.params
    fp32 = estimate_training(LLAMA2_7B, method="full", precision="fp32", **tiny)
    assert fp32.allocated_bytes / n == pytest.approx(16, rel=0.02)  # 4 + 4 + 8
    pure = estimate_training(LLAMA2_7B, method="full", precision="bf16", **tiny)
    assert pure.allocated_bytes / n == pytest.approx(8, rel=0.02)  # 2 + 2 + 4
    eight = estimate_training(LLAMA2_7B, method="full", precision="fp32", optimizer="adamw_8bit", **tiny)
    assert eight.bytes_of("optimizer") / n == pytest.approx(2, rel=0.02)
    paged = estimate_training(LLAMA2_7B, method="full", precision="bf16", optimizer="paged_adamw_8bit", **tiny)
    assert not paged.component("optimizer").at_peak  # unified memory: outside the per-GPU total
    foreach = estimate_training(LLAMA2_7B, method="full", precision="fp32", optimizer_impl="foreach", **tiny)
    assert foreach.allocated_bytes / n == pytest.approx(20, rel=0.02)  # + one state-sized temporary


def test_activations_grow_with_batch_and_seq_and_checkpointing_cuts_them():
    a1 = estimate_training(LLAMA2_7B, method="lora", batch=1, seq_len=1024).bytes_of("activations")
    a2 = estimate_training(LLAMA2_7B, method="lora", batch=2, seq_len=1024).bytes_of("activations")
    a4 = estimate_training(LLAMA2_7B, method="lora", batch=1, seq_len=4096).bytes_of("activations")
    assert a2 == pytest.approx(2 * a1, rel=0.01)
    assert a4 == pytest.approx(4 * a1, rel=0.01)  # SDPA: linear in s
    eager = estimate_training(LLAMA2_7B, method="lora", batch=1, seq_len=4096, attention="eager")
    assert eager.bytes_of("activations") > 1.5 * a4  # s^2 attention scores
    ckpt = estimate_training(LLAMA2_7B, method="lora", batch=1, seq_len=1024, grad_checkpointing=True)
    assert ckpt.total_bytes < estimate_training(LLAMA2_7B, method="lora", batch=1, seq_len=1024).total_bytes
    assert ckpt.bytes_of("activations") < a1 / 5


def test_logits_of_a_large_vocabulary_dominate_short_runs():
    est = estimate_training(LLAMA3_8B, method="qlora", batch=8, seq_len=512, grad_checkpointing=True)
    assert est.bytes_of("logits") == 8 * 512 * 128256 * 12  # fp32 log-softmax + 2 fp32 gradients (loss backward)
    assert est.bytes_of("logits") > est.bytes_of("activations")
    assert any("vocabulary" in n for n in est.notes)
    chunked = estimate_training(LLAMA3_8B, method="qlora", batch=8, seq_len=512, grad_checkpointing=True,
                                chunked_loss=True)
    assert chunked.bytes_of("logits") < est.bytes_of("logits") / 3


def test_sharding_divides_states():
    kw = dict(method="full", precision="fp32", batch=1, seq_len=1, cuda_context_gib=0.0)
    one = estimate_training(LLAMA2_7B, **kw)
    n = LLAMA2_7B.params
    z1 = estimate_training(LLAMA2_7B, gpus=4, shard="zero1", **kw)
    assert z1.bytes_of("optimizer") == pytest.approx(one.bytes_of("optimizer") / 4)
    z2 = estimate_training(LLAMA2_7B, gpus=4, shard="zero2", **kw)
    assert z2.component("grads").bytes == pytest.approx(4 * n / 4, rel=0.05)
    z3 = estimate_training(LLAMA2_7B, gpus=4, shard="zero3", **kw)
    # Megatron/ZeRO: (4 + 4 + 8) / d per parameter, plus gathered layers
    assert z3.allocated_bytes / n == pytest.approx(16 / 4, rel=0.05)
    ddp = estimate_training(LLAMA2_7B, gpus=4, shard="ddp", **kw)
    assert ddp.allocated_bytes > one.allocated_bytes  # buckets: a copy of the gradients
    with pytest.raises(ValueError, match="gpus 2"):
        estimate_training(LLAMA2_7B, shard="fsdp", gpus=1)


def test_fit_verdicts_and_cheapest_change():
    opts = TrainingOptions(method="lora", batch=4, seq_len=2048)
    est = estimate_training(LLAMA2_7B, opts)
    verdicts = fit_verdict(est, card_targets([24, 141]), LLAMA2_7B, opts)
    small, big = verdicts
    assert small.status == "does not fit" and big.status == "fits"
    assert "gradient checkpointing" in small.change and small.change_need_gib < 24 * 0.95
    assert big.change is None
    # inference: a 70B model on one 48 GB card
    inf = InferenceOptions(context=4096)
    spec = find_preset("llama-2-70b")
    (v,) = fit_verdict(estimate_inference(spec, inf), card_targets([48]), spec, inf)
    assert v.status == "does not fit" and v.change and v.change_need_gib <= 48


def test_tight_band():
    from engine.estimate.fit import status_for

    assert status_for(90, 100) == "fits"
    assert status_for(97, 100) == "tight"
    assert status_for(101, 100) == "does not fit"


class _FakeNVML:
    """pynvml's API for two GPUs; the layer below the estimator, faked for a CPU-only test."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def nvmlInit(self):
        if self.fail:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return "NVIDIA H200" if h == 0 else b"NVIDIA A100-SXM4-40GB"

    def nvmlDeviceGetMemoryInfo(self, h):
        total = (140 if h == 0 else 40) * GIB
        return SimpleNamespace(total=total, free=total - 10 * GIB, used=10 * GIB)


def test_local_gpus_from_nvml_and_no_gpu():
    targets, note = local_gpus(_FakeNVML())
    assert note is None and len(targets) == 2
    assert targets[0].capacity_bytes == 130 * GIB and "H200" in targets[0].name
    targets, note = local_gpus(_FakeNVML(fail=True))
    assert targets == [] and "no NVIDIA GPU" in note
    report = estimate("llama-2-7b", "infer", nvml=_FakeNVML(fail=True))
    assert "no NVIDIA GPU" in report.gpu_note
    assert [v.target for v in report.verdicts][:1] == ["24 GB card"]  # falls back to the standard cards
    report = estimate("llama-2-7b", "lora", nvml=_FakeNVML(), batch=2)
    assert [v.status for v in report.verdicts] == ["fits", "does not fit"]
    assert "H200" in report.timing["basis"]


def test_training_time_from_flops_and_measured_rate():
    t = training_time(8_000_000_000, 1e9, "full", gpus=1, gpu="H100", mfu=0.4)
    assert t.flops == 6 * 8e9 * 1e9
    assert t.seconds == pytest.approx(6 * 8e9 * 1e9 / (989e12 * 0.4))
    assert "6*N*tokens" in t.basis and "40%" in t.basis
    lora = training_time(8_000_000_000, 1e9, "lora", grad_checkpointing=True)
    assert lora.flops == 6 * 8e9 * 1e9  # 4ND + 2ND recompute
    measured = training_time(8_000_000_000, 1e6, measured_tokens_per_s=2000)
    assert measured.seconds == 500 and measured.flops is None


def test_llama_cpp_kv_cache_is_what_its_loader_allocates():
    """llama.cpp (llmdeck loads with its defaults) gives Gemma 3's sliding-window layers a
    full-size cache (swa_full) and pads the context to 256 cells: 18 x 4096 x 1 KiB = 72 MiB."""
    gemma = find_preset("gemma-3-270m")
    kv = estimate_inference(gemma, context=4096, backend="llama.cpp", weight_dtype="Q4_K_M").bytes_of("kv_cache")
    assert kv == 72 * 2**20
    padded = estimate_inference(gemma, context=4000, backend="llama.cpp", weight_dtype="Q4_K_M").bytes_of("kv_cache")
    assert padded == kv  # 4000 cells are padded to 4096
    windows = estimate_inference(gemma, context=4096, backend="llama.cpp", weight_dtype="Q4_K_M", swa_full=False)
    assert windows.bytes_of("kv_cache") == (3 * 4096 + 15 * 1024) * 1024  # pad256(512 + n_ubatch 512)
    # transformers keeps only the window for the sliding layers
    assert estimate_inference(gemma, context=4096).bytes_of("kv_cache") == (3 * 4096 + 15 * 512) * 1024
