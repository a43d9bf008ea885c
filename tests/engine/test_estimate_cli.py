"""`llmdeck estimate`: text and JSON output, TUI hand-off, one-line errors, light imports."""

from __future__ import annotations

import json
import subprocess
import sys

from engine.cli import OpenTUI, run_command


def test_text_report(capsys):
    assert run_command(["estimate", "llama-2-7b", "--context", "4096", "--no-local", "--card", "24,80"]) == 0
    out = capsys.readouterr().out
    assert "KV cache (4,096 tokens x 1, fp16)" in out and "2.00" in out
    assert "24 GB card" in out and "80 GB card" in out and "FITS" in out
    assert "decode speed" in out


def test_json_training_with_cheapest_change(capsys):
    code = run_command(["estimate", "llama-3-8b", "--mode", "qlora", "--batch", "4", "--seq-len", "2048",
                        "--card", "24", "--no-local", "--tokens", "1e8", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "qlora" and data["trainable_params"] > 0
    (verdict,) = data["verdicts"]
    assert verdict["status"] == "does not fit" and "checkpointing" in verdict["change"]
    assert data["time"]["seconds"] > 0 and "4*N" in data["time"]["basis"]
    assert sum(c["bytes"] for c in data["components"] if c["at_peak"]) == data["total_bytes"]


def test_explicit_dims_and_gguf_default_backend(capsys):
    assert run_command(["estimate", "dims:layers=2,hidden=64,heads=4,vocab=100", "--no-local", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["source"] == "dims"


def test_no_model_opens_the_tui():
    result = run_command(["estimate", "--mode", "lora", "--batch", "2"])
    assert isinstance(result, OpenTUI) and result.mode == "estimate"
    assert result.options["estimate"] == {"mode": "lora", "batch": 2}


def test_user_errors_are_one_line(capsys):
    assert run_command(["estimate", "not-a-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "presets:" in err[0]
    assert run_command(["estimate", "llama-2-7b", "--mode", "full", "--shard", "fsdp", "--no-local"]) == 2
    assert "--gpus 2" in capsys.readouterr().err
    assert run_command(["estimate", "llama-2-7b", "--card", "big"]) == 2
    assert "--card" in capsys.readouterr().err


def test_presets_listing(capsys):
    assert run_command(["estimate", "--presets"]) == 0
    out = capsys.readouterr().out
    assert "llama-2-70b" in out and "gemma-3-270m" in out


def test_estimate_is_light_at_import():
    code = ("import sys, engine.commands.estimate, engine.estimate; "
            "from engine.estimate import estimate; estimate('llama-2-7b', 'lora', local=False); "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'gguf', 'pynvml', 'textual') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
