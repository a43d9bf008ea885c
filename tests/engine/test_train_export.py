"""In-process training job (no worker): outputs, merge, GGUF export, OOM message."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.events import Failed, Finished
from engine.jobs import JobContext, execute
from engine.train.job import run
from tests.engine.test_train_runs import tiny_spec


def run_job(spec) -> tuple[object, list]:
    events: list = []
    result = execute(run, spec.to_dict(), JobContext(events.append))
    return result, events


@pytest.fixture(scope="module")
def trained_adapter(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("adapter")
    spec = tiny_spec(max_steps=4, output=str(tmp / "adapter"), debug={"work_dir": str(tmp / "work")})
    result, _ = run_job(spec)
    assert isinstance(result, Finished), result
    return Path(result.summary["output"])


def test_merge_matches_the_adapter_and_gguf_export_writes_a_file(trained_adapter, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.train.export import base_of, merge, to_gguf

    ctx = JobContext(lambda e: None)
    merged = Path(merge({"adapter": str(trained_adapter), "output": str(tmp_path / "merged")}, ctx)["output"])
    assert (merged / "config.json").exists() and (merged / "tokenizer.json").exists()
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    base = AutoModelForCausalLM.from_pretrained(str(base_of(trained_adapter)))
    with torch.no_grad():
        want = PeftModel.from_pretrained(base, str(trained_adapter)).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(str(merged)).eval()(ids).logits
    assert torch.allclose(want, got, atol=1e-4)
    with pytest.raises(Exception, match="already exists"):
        merge({"adapter": str(trained_adapter), "output": str(merged)}, ctx)
    gguf = Path(to_gguf({"model": str(trained_adapter), "output": str(tmp_path / "a.gguf"), "outtype": "f32"},
                        ctx)["output"])
    assert gguf.read_bytes()[:4] == b"GGUF"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cuda_out_of_memory_fails_with_numbers_and_what_to_change(tmp_path):
    spec = tiny_spec(max_steps=6, output=str(tmp_path / "o"), debug={"work_dir": str(tmp_path / "w"), "oom_at_step": 2})
    result, _ = run_job(spec)
    assert isinstance(result, Failed)
    assert result.message.startswith("CUDA out of memory at step 2 (batch 2 x 48 tokens, lora")
    assert "gradient checkpointing" in result.message and "LoRA or QLoRA" in result.message
    assert not (tmp_path / "o").exists()  # no final output from a failed run


def test_fp16_on_cpu_is_refused_before_training(tmp_path):
    spec = tiny_spec(precision="fp16", output=str(tmp_path / "o"), debug={"work_dir": str(tmp_path / "w")})
    result, _ = run_job(spec)
    assert isinstance(result, Failed) and "fp16 mixed precision needs a CUDA GPU" in result.message
