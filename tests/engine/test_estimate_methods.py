"""The estimator for DPO, ORPO, KTO and GRPO: the reference model a full fine-tune keeps (none
with LoRA, none for ORPO), chosen + rejected in one forward, GRPO's generation phase, and the
fit verdicts that follow from them."""

from __future__ import annotations

import pytest

from engine.cli import run_command
from engine.estimate import GIB, estimate, find_preset
from engine.estimate.methods import MethodOptions, estimate_method, options_for_spec
from engine.estimate.training import TrainingOptions, estimate_training
from engine.train.spec import TrainSpec

LLAMA = find_preset("llama-3-8b")


def test_dpo_keeps_a_reference_copy_only_on_a_full_fine_tune():
    full = estimate_method(LLAMA, MethodOptions(method="full", objective="dpo", precision="bf16"))
    ref = full.component("reference")
    assert ref is not None and ref.at_peak and ref.bytes == LLAMA.params * 2
    lora = estimate_method(LLAMA, MethodOptions(method="lora", objective="dpo"))
    assert lora.component("reference") is None and any("adapter disabled" in n for n in lora.notes)
    mixed = estimate_method(LLAMA, MethodOptions(method="full", objective="kto", precision="mixed"))
    assert mixed.component("reference").bytes == LLAMA.params * 4  # fp32 master weights: an fp32 copy
    orpo = estimate_method(LLAMA, MethodOptions(method="full", objective="orpo"))
    assert orpo.component("reference") is None


def test_pairs_go_through_the_model_together():
    sft = estimate_training(LLAMA, TrainingOptions(method="lora", batch=2, seq_len=1024))
    dpo = estimate_method(LLAMA, MethodOptions(method="lora", objective="dpo", batch=1, seq_len=1024))
    assert dpo.bytes_of("activations") == pytest.approx(sft.bytes_of("activations"))
    assert dpo.bytes_of("logits") == pytest.approx(sft.bytes_of("logits"))
    kto = estimate_method(LLAMA, MethodOptions(method="lora", objective="kto", batch=2, seq_len=1024))
    assert kto.bytes_of("activations") == pytest.approx(sft.bytes_of("activations"))
    assert estimate_method(LLAMA, MethodOptions(method="lora")).total_bytes == pytest.approx(
        estimate_training(LLAMA, TrainingOptions(method="lora")).total_bytes)


def test_grpo_peaks_in_generation_when_the_kv_cache_outgrows_the_step():
    short = MethodOptions(method="lora", objective="grpo", batch=8, grad_accum=1, seq_len=128, max_completion_len=128,
                          grad_checkpointing=True)
    est = estimate_method(LLAMA, short)
    assert est.component("kv_cache") is not None and not est.component("kv_cache").at_peak
    long = MethodOptions(method="lora", objective="grpo", batch=8, grad_accum=16, seq_len=512,
                         max_completion_len=8192, grad_checkpointing=True)
    gen = estimate_method(LLAMA, long)
    kv = gen.component("kv_cache")
    assert kv.at_peak and gen.peak_phase.startswith("generation")
    assert kv.bytes == pytest.approx(2 * 32 * (512 + 8192) * 8 * 128 * 128 * 2)  # 128 sequences, bf16
    assert not gen.component("activations").at_peak
    assert gen.total_bytes == pytest.approx(sum(gen.bytes_of(k) for k in ("weights", "optimizer", "cuda_context",
                                                                          "kv_cache", "sampling")))
    with_kl = estimate_method(LLAMA, MethodOptions(method="full", objective="grpo", beta=0.04))
    assert with_kl.component("reference") is not None
    assert estimate_method(LLAMA, MethodOptions(method="full", objective="grpo")).component("reference") is None


def test_verdicts_and_the_cli_count_the_reference():
    sft = estimate(LLAMA, "full", cards=[72], local=False, batch=1, seq_len=1024, grad_checkpointing=True)
    dpo = estimate(LLAMA, "full", cards=[72], local=False, batch=1, seq_len=1024, grad_checkpointing=True,
                   objective="dpo")
    assert sft.verdicts[0].status == "fits" and dpo.verdicts[0].status == "does not fit"
    assert dpo.estimate.total_bytes - sft.estimate.total_bytes > LLAMA.params * 2 * 0.99
    assert dpo.verdicts[0].change and dpo.verdicts[0].change_need_gib < 72 * 0.95
    args = ["estimate", "llama-3-8b", "--method", "dpo", "--mode", "full", "--card", "80", "--no-local"]
    assert run_command(args) == 0
    assert run_command(["estimate", "llama-3-8b", "--method", "dpo", "--mode", "infer"]) == 2


def test_cli_output_names_the_method_and_its_parts(capsys):
    assert run_command(["estimate", "llama-3-8b", "--method", "grpo", "--num-generations", "8", "--batch", "8",
                        "--max-completion-len", "1024", "--card", "80", "--no-local"]) == 0
    out = capsys.readouterr().out
    assert "GRPO with LoRA" in out and "generation KV cache" in out and "1 prompts x 8 completions" in out


def test_options_follow_a_train_spec():
    opt = options_for_spec(TrainSpec(method="dpo", adapter="full", batch_size=2, max_seq_len=512, precision="bf16"))
    assert (opt.objective, opt.method, opt.batch, opt.seq_len, opt.precision) == ("dpo", "full", 2, 512, "mixed")
    est = estimate_method(LLAMA, opt)
    assert est.component("reference").bytes / GIB == pytest.approx(LLAMA.params * 4 / GIB)
