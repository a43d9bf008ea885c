"""The training runner's parts, without training: fault injection stays out of the production
callback, every method has a Trainer, the placement refuses what cannot run here."""

from __future__ import annotations

import inspect as pyinspect
from types import SimpleNamespace

import pytest

from engine.jobs import JobError
from engine.train import runner
from engine.train.callbacks import RunCallback
from engine.train.faults import FaultInjection, fault_callbacks
from engine.train.spec import METHODS, TrainSpec


def test_faults_are_a_callback_of_their_own_added_only_when_asked():
    import torch

    assert fault_callbacks({}) == [] and fault_callbacks({"work_dir": "/somewhere"}) == []
    [fault] = fault_callbacks({"oom_at_step": 2, "work_dir": "/somewhere"})
    assert isinstance(fault, FaultInjection)
    control = SimpleNamespace()
    assert fault.on_step_end(None, SimpleNamespace(global_step=1), control) is control
    with pytest.raises(torch.OutOfMemoryError):
        fault.on_step_end(None, SimpleNamespace(global_step=2), control)


def test_nan_fault_poisons_one_trainable_weight_at_its_step():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model[0].weight.requires_grad_(False)
    [fault] = fault_callbacks({"nan_at_step": 3})
    fault.on_step_end(None, SimpleNamespace(global_step=2), SimpleNamespace(), model=model)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    fault.on_step_end(None, SimpleNamespace(global_step=3), SimpleNamespace(), model=model)
    assert torch.isfinite(model[0].weight).all() and torch.isnan(model[0].bias).all()


def test_the_production_callback_takes_no_test_hooks():
    assert "debug" not in pyinspect.signature(RunCallback).parameters
    source = pyinspect.getsource(RunCallback)
    for hook in ("nan_at_step", "oom_at_step", "kill_at_step", "SIGKILL"):
        assert hook not in source


def test_every_method_has_a_trainer_and_an_unknown_one_is_refused():
    assert set(runner.TRAINER_FACTORIES) == set(METHODS)
    with pytest.raises(JobError, match="no trainer for 'ppo'"):
        runner.trainer_factory("ppo")


def test_placement_on_cpu_resolves_precision_and_refuses_fp16():
    where = runner.placement(TrainSpec(cpu=True), distributed=False)
    assert (where.cuda, where.precision, where.main_rank, where.distributed) == (False, "fp32", True, False)
    with pytest.raises(JobError, match="fp16"):
        runner.placement(TrainSpec(cpu=True, precision="fp16"), distributed=False)
    with pytest.raises(JobError, match="QLoRA needs a CUDA GPU"):
        runner.placement(TrainSpec(cpu=True, method="qlora"), distributed=True)


def test_rank0_relay_passes_on_all_but_the_end_and_keeps_a_torn_line(tmp_path):
    """The multi-process relay reads rank 0's file with `events.read_events`: complete lines
    only (a line being written is read next time), and never rank 0's terminal event (the
    worker writes the run's end itself)."""
    import json

    from engine.events import Finished, Log, Metric
    from engine.jobs import JobContext
    from engine.train.multi_gpu import relay

    path = tmp_path / "events.jsonl"
    lines = [Log(text="hello"), Metric(step=1, values={"loss": 2.0}), Finished(summary={})]
    body = "".join(json.dumps(e.to_dict()) + "\n" for e in lines)
    path.write_text(body + '{"type": "log", "te')
    got: list = []
    offset = relay(path, 0, JobContext(got.append))
    assert got == lines[:2] and offset == len(body.encode())
    with open(path, "a") as handle:
        handle.write('xt": "late"}\n')
    assert relay(path, offset, JobContext(got.append)) == path.stat().st_size
    assert [e.text for e in got if isinstance(e, Log)] == ["hello", "late"]
    assert relay(tmp_path / "missing.jsonl", 7, JobContext(got.append)) == 7
