"""Predicted vs measured peaks of real training steps on CPU.

engine.estimate.measure tracks every tensor storage autograd and the optimizer keep (torch's
MemTracker: the accounting of torch.cuda.max_memory_allocated, without a GPU). Tiny models run
for real; a real-width Llama layer stack runs on FakeTensors (shapes only, no memory), so the
activation coefficients are checked at Llama-2-7B width on a 2-core CPU machine.
"""

from __future__ import annotations

import pytest

from engine.estimate import ModelSpec, estimate_training

TOL = 0.10


def _measure(h, i, L, nh, nkv, V, b, s, *, precision="bf16", method="full", ckpt=False, rank=8, fake=False):
    """(measured peak bytes, estimate) for one training configuration."""
    from engine.estimate.measure import measure_llama_step

    measured = measure_llama_step(h, i, L, nh, nkv, V, b, s, mode="train", precision=precision, method=method,
                                  ckpt=ckpt, rank=rank, device="fake" if fake else "cpu")
    est = estimate_training(ModelSpec("m", L, h, i, nh, nkv, V), method=method, precision=precision, batch=b,
                            seq_len=s, grad_checkpointing=ckpt, lora_rank=rank, lora_targets="all-linear",
                            lora_dropout=0.05, optimizer_impl="fused", device="cpu")
    return measured, est


TINY = dict(h=256, i=704, L=2, nh=4, nkv=2, V=2000, b=2, s=256)


@pytest.mark.parametrize("precision,method,ckpt", [
    ("bf16", "full", False),
    ("mixed", "full", False),
    ("fp32", "full", False),
    ("bf16", "full", True),
    ("bf16", "lora", False),
    ("bf16", "lora", True),
])
def test_tiny_model_cpu_peak_within_10_percent(precision, method, ckpt):
    measured, est = _measure(**TINY, precision=precision, method=method, ckpt=ckpt)
    predicted = est.allocated_bytes
    assert abs(predicted / measured - 1) < TOL, (predicted, measured, est.peak_phase, est.extra)


@pytest.mark.parametrize("precision,ckpt,nkv,s", [("bf16", False, 32, 4096), ("mixed", False, 32, 2048),
                                                 ("bf16", True, 32, 4096), ("bf16", False, 8, 4096)])
def test_llama2_7b_width_fake_tensors_within_10_percent(precision, ckpt, nkv, s):
    """Four Llama-2-7B-wide layers (h 4096, i 11008, 32 heads; GQA variant 8 KV heads), vocab 32000."""
    measured, est = _measure(h=4096, i=11008, L=4, nh=32, nkv=nkv, V=32000, b=1, s=s,
                             precision=precision, ckpt=ckpt, fake=True)
    predicted = est.allocated_bytes
    assert abs(predicted / measured - 1) < TOL, (predicted, measured, est.peak_phase, est.extra)


@pytest.mark.parametrize("nkv,i,V,b,s", [(32, 11008, 32000, 1, 4096), (8, 14336, 128256, 2, 4096)])
def test_inference_prefill_fake_tensors_within_10_percent(nkv, i, V, b, s):
    """Weights + KV cache + prefill workspace of 4 Llama-wide layers, as transformers runs them."""
    from engine.estimate import estimate_inference
    from engine.estimate.measure import measure_llama_step

    measured = measure_llama_step(4096, i, 4, 32, nkv, V, b, s, mode="infer", device="fake")
    est = estimate_inference(ModelSpec("m", 4, 4096, i, 32, nkv, V), context=s, batch=b, weight_dtype="bf16")
    assert abs(est.allocated_bytes / measured - 1) < TOL


@pytest.mark.parametrize("method,ckpt,b", [("lora", False, 4), ("lora", True, 2), ("full", True, 2)])
def test_step_as_cuda_runs_it_within_3_percent(method, ckpt, b):
    """The whole step with CUDA's dropout (a bool mask kept, not an fp32 noise tensor) against the
    estimator's default (device cuda): the accounting issue 18 measured on an H200, where LoRA
    without checkpointing was over-predicted by 14-19% (here the old formulas gave +17%)."""
    from engine.estimate.measure import emulate_cuda_dropout, measure_llama_step

    h, i, L, nh, nkv, V, s = 512, 1408, 4, 8, 2, 32000, 256
    with emulate_cuda_dropout():
        measured = measure_llama_step(h, i, L, nh, nkv, V, b, s, mode="train", precision="bf16", method=method,
                                      ckpt=ckpt, rank=8, device="cpu")
    est = estimate_training(ModelSpec("m", L, h, i, nh, nkv, V), method=method, precision="bf16", batch=b, seq_len=s,
                            grad_checkpointing=ckpt, lora_rank=8, lora_dropout=0.05, optimizer_impl="fused")
    assert abs(est.allocated_bytes / measured - 1) < 0.03, (est.allocated_bytes, measured, est.peak_phase)
