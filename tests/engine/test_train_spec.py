"""TrainSpec, checkpoints listing, plots and the `llmdeck train` command: no training here."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest

from engine.cli import OpenTUI, run_command
from engine.events import Metric
from engine.train.checkpoints import (
    MARKER,
    delete,
    inspect,
    latest_complete,
    list_checkpoints,
    mark_complete,
)
from engine.train.plots import (
    RunCurves,
    curves_from_events,
    ema,
    write_csv,
    write_image,
)
from engine.train.spec import SpecError, TrainSpec, resolve_precision


def test_spec_round_trips_through_json_and_the_cli(tmp_path, capsys):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n')
    spec = TrainSpec(model=str(model), dataset=str(data), method="full", learning_rate=1e-5, packing=True,
                     lora_targets="q_proj,v_proj", max_steps=50)
    assert TrainSpec.from_json(spec.to_json()) == spec
    assert spec.problems() == []
    cli = spec.to_cli()
    assert "--lr 1e-05" in cli and "--packing" in cli and "--adapter full" in cli and "--method" not in cli
    assert (spec.method, spec.adapter) == ("sft", "full")  # the old spelling: --method full
    # the printed command parses back into the same spec
    assert run_command(shlex.split(cli)[1:] + ["--print-cli"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == cli
    assert TrainSpec.from_json("\n".join(printed[1:])) == spec
    assert spec.target_modules() == ["q_proj", "v_proj"]
    assert TrainSpec(lora_targets="all-linear").target_modules() == "all-linear"


def test_validation_names_each_field_with_the_fix(tmp_path):
    spec = TrainSpec(model=str(tmp_path / "missing"), dataset="", method="dora", learning_rate=3, batch_size=0,
                     eval_steps=5)
    problems = "\n".join(spec.problems())
    for needle in ("model:", "does not exist", "dataset:", "method: 'dora'", "learning_rate:", "batch_size:",
                   "eval_steps: set eval_split"):
        assert needle in problems
    with pytest.raises(SpecError):
        spec.validate()
    with pytest.raises(SpecError, match="unknown training option"):
        TrainSpec.from_dict({"lerning_rate": 1})
    with pytest.raises(SpecError, match="max_steps"):
        TrainSpec.from_dict({"max_steps": "many"})
    assert TrainSpec(devices="cpu:2").processes() == 2 and TrainSpec(devices="0,1").processes() == 2
    assert "devices" in "".join(TrainSpec(devices="a,b").problems(check_paths=False))


def test_precision_is_chosen_safely_for_the_device():
    assert resolve_precision("auto", cuda=False, bf16_supported=False) == "fp32"
    assert resolve_precision("auto", cuda=True, bf16_supported=True) == "bf16"
    assert resolve_precision("auto", cuda=True, bf16_supported=False) == "fp16"
    with pytest.raises(SpecError, match="fp16 mixed precision needs a CUDA GPU"):
        resolve_precision("fp16", cuda=False, bf16_supported=False)
    with pytest.raises(SpecError, match="no bf16"):
        resolve_precision("bf16", cuda=True, bf16_supported=False)


def _fake_checkpoint(root: Path, step: int, loss: float, *, seal: bool = True) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"x" * 1000)
    (folder / "trainer_state.json").write_text("{}")
    if seal:
        mark_complete(folder, step=step, loss=loss)
    return folder


def test_checkpoints_are_listed_and_corrupt_ones_skipped(tmp_path):
    _fake_checkpoint(tmp_path, 10, 2.5)
    twenty = _fake_checkpoint(tmp_path, 20, 2.0)
    _fake_checkpoint(tmp_path, 30, 1.5, seal=False)  # killed while saving
    found = list_checkpoints(tmp_path)
    assert [(c.step, c.complete) for c in found] == [(10, True), (20, True), (30, False)]
    assert found[0].loss == 2.5 and found[0].size >= 1000
    assert latest_complete(tmp_path).step == 20
    (twenty / "adapter_model.safetensors").write_bytes(b"short")
    assert "expected 1000" in inspect(twenty).problem
    assert latest_complete(tmp_path).step == 10
    delete(twenty)
    assert not twenty.exists()
    assert json.loads((tmp_path / "checkpoint-10" / MARKER).read_text())["step"] == 10


def test_curves_ema_and_exports(tmp_path):
    events = [Metric(step=s, values={"loss": 3.0 - 0.1 * s, "lr": 1e-3}) for s in range(1, 11)]
    events.append(Metric(step=10, values={"eval_loss": 2.2}))
    events += [Metric(step=s, values={"loss": 1.0}) for s in (6, 7)]  # resumed: replaces 6 and 7
    run = curves_from_events("run-a", events)
    steps, values = run.points("loss")
    assert steps == list(range(1, 11)) and values[5] == 1.0 and values[6] == 1.0
    assert run.latest("eval_loss") == 2.2
    assert ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # debiased: no start-up dip
    smoothed = ema([0.0, 10.0], 0.5)
    assert smoothed[0] == 0.0 and 0 < smoothed[1] < 10
    other = RunCurves("run-b", {"loss": {1: 2.0, 2: 1.5}})
    png = write_image([run, other], tmp_path / "c.png", ["loss", "eval_loss", "lr"], smooth=0.6, line_width=2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = write_csv([run, other], tmp_path / "c.csv", ["loss"])
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["experiment", "metric", "step", "mean", "low", "high", "seeds", "runs"]
    assert len(rows) == 1 + 10 + 2
    with pytest.raises(ValueError, match="none of the runs"):
        write_image([other], tmp_path / "x.png", ["grad_norm"])


def test_train_without_arguments_opens_train_mode_and_bad_input_is_one_line(tmp_path, capsys):
    assert run_command(["train"]) == OpenTUI(mode="train", options={})
    assert run_command(["train", "--model", str(tmp_path / "nope"), "--data", str(tmp_path / "d.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model:" in err and "Traceback" not in err
    assert run_command(["train", "resume", "no-such-run"]) == 2
    assert "no run" in capsys.readouterr().err


def test_method_and_adapter_are_chosen_apart_and_old_spellings_still_work(tmp_path, capsys):
    assert (TrainSpec(method="lora").method, TrainSpec(method="lora").adapter) == ("sft", "lora")
    assert (TrainSpec(method="qlora").method, TrainSpec(method="qlora").adapter) == ("sft", "qlora")
    assert TrainSpec.from_dict({"method": "full"}).adapter == "full"  # a run.json written before the split
    spec = TrainSpec(method="dpo", adapter="full", name="x")
    assert TrainSpec.from_json(spec.to_json()) == spec and spec.label == "x"
    assert TrainSpec(model="/m/tiny", method="grpo").label == "tiny-grpo-lora"
    assert TrainSpec(model="/m/tiny", method="lora").label == "tiny-lora"
    grpo = TrainSpec(method="grpo", rewards=["exact:answer", "length:1:9"], batch_size=3, num_generations=4)
    problems = "\n".join(grpo.problems(check_paths=False))
    assert "num_generations: batch_size x grad_accum (3) must be a multiple of num_generations (4)" in problems
    assert "rewards:" in "".join(TrainSpec(method="grpo").problems(check_paths=False))
    assert "only GRPO uses reward" in "".join(TrainSpec(method="dpo", rewards=["boxed"]).problems(check_paths=False))
    assert "packing" in "".join(TrainSpec(method="kto", packing=True).problems(check_paths=False))
    assert "adapter: 'dora'" in "".join(TrainSpec(adapter="dora").problems(check_paths=False))
    # the CLI: repeatable --reward, and a legacy --method that contradicts --adapter is refused
    cli = grpo.to_cli()
    assert "--reward exact:answer --reward length:1:9" in cli and "--method grpo" in cli
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "a", "answer": "b"}\n')
    args = ["train", "--model", str(model), "--data", str(data), "--method", "grpo", "--reward", "exact:answer",
            "--reward", "boxed", "--num-generations", "2", "--print-cli"]
    assert run_command(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert TrainSpec.from_json("\n".join(printed[1:])).rewards == ["exact:answer", "boxed"]
    contradiction = ["--method", "lora", "--adapter", "full"]
    assert run_command(["train", "--model", str(model), "--data", str(data), *contradiction]) == 2
    assert "--method lora means --method sft --adapter lora" in capsys.readouterr().err
