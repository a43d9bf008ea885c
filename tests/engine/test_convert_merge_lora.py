"""Merge LoRA: the merged folder computes what base + adapter computed."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.convert import jobs, preflight
from engine.events import Failed, Finished
from engine.jobs import JobContext, execute
from tests.engine.test_convert_tiny import make_llama


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("lora")
    base = make_llama(root / "base", tokenizer="spm", n_kv_heads=2)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(3)
    with torch.no_grad():  # a trained-looking adapter: B is zero at init, which would merge to nothing
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    model.save_pretrained(root / "adapter")
    return {"base": root / "base", "adapter": root / "adapter"}


def test_merge_matches_peft(adapter: dict[str, Path], tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    result = execute(jobs.merge_lora,
                     {"input": str(adapter["adapter"]), "base": str(adapter["base"]), "output": str(out)},
                     JobContext(lambda e: None))
    assert isinstance(result, Finished), getattr(result, "message", result)
    assert result.summary["verify"]["ok"] and result.summary["verify"]["max_abs_diff"] < 1e-4
    assert (out / "tokenizer.json").is_file() and not (out / "adapter_config.json").exists()
    # independent check: the merged weights differ from the base, and logits equal peft's
    ids = torch.tensor([[0, 5, 17, 42, 99]])
    base = AutoModelForCausalLM.from_pretrained(str(adapter["base"]))
    peft_logits = PeftModel.from_pretrained(base, str(adapter["adapter"])).eval()(ids).logits
    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert torch.allclose(merged(ids).logits, peft_logits, atol=1e-4)
    plain = AutoModelForCausalLM.from_pretrained(str(adapter["base"])).eval()
    assert not torch.allclose(plain(ids).logits, peft_logits, atol=1e-3)


def test_base_must_be_local(adapter: dict[str, Path], tmp_path: Path) -> None:
    import json
    import shutil

    copy = tmp_path / "adapter"
    shutil.copytree(adapter["adapter"], copy)
    cfg = json.loads((copy / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "meta-llama/Llama-2-7b-hf"
    (copy / "adapter_config.json").write_text(json.dumps(cfg))
    verdict = preflight.check({"action": "merge-lora", "input": str(copy)})
    assert "not a local folder" in verdict.problems[0].text and "--base" in verdict.problems[0].text
    result = execute(jobs.merge_lora, {"input": str(copy), "output": str(tmp_path / "m")}, JobContext(lambda e: None))
    assert isinstance(result, Failed) and not (tmp_path / "m").exists()


def test_merged_folder_carries_every_tokenizer_file_of_the_base(adapter: dict[str, Path], tmp_path: Path) -> None:
    """A trained adapter holds the tokenizer.json and tokenizer_config.json the trainer saved, but
    no tokenizer.model: the merge must still carry it (and the GGUF made from it then works)."""
    import shutil

    trained = tmp_path / "trained-adapter"
    shutil.copytree(adapter["adapter"], trained)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(adapter["base"] / name, trained / name)
    out = tmp_path / "merged"
    result = execute(jobs.merge_lora, {"input": str(trained), "base": str(adapter["base"]), "output": str(out)},
                     JobContext(lambda e: None))
    assert isinstance(result, Finished), getattr(result, "message", result)
    assert (out / "tokenizer.model").read_bytes() == (adapter["base"] / "tokenizer.model").read_bytes()
    gguf = tmp_path / "merged.gguf"
    result = execute(jobs.hf_to_gguf, {"input": str(out), "output": str(gguf), "outtype": "f32"},
                     JobContext(lambda e: None))
    assert isinstance(result, Finished), getattr(result, "message", result)
    assert result.summary["tokenizer_source"] == "tokenizer.model (SentencePiece)"


def test_merge_progress_counts_steps_not_bytes(adapter: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import run_command

    out = tmp_path / "merged"
    assert run_command(["convert", "merge-lora", str(adapter["adapter"]), "--base", str(adapter["base"]), "-o",
                        str(out)]) == 0
    text = capsys.readouterr().out
    assert "merge 4/4 (100%)" in text and " B/s" not in text and "4 B" not in text  # steps, said once by progress_text
