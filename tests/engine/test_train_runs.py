"""Training runs for real: a tiny random Llama, the Trainer, detached workers, signals."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.events import Failed, Finished, Metric, is_terminal
from engine.runs import RunStore, worker_alive
from engine.train import launch
from engine.train.checkpoints import MARKER, inspect, latest_complete, list_checkpoints
from engine.train.spec import TrainSpec
from tests.helpers.tiny_model import cached_tiny_llama
from tests.helpers.waiting import wait_for

DATA = Path(__file__).resolve().parents[2] / "engine" / "train" / "demo_data.jsonl"


def tiny_spec(**changes) -> TrainSpec:
    base = dict(
        model=str(cached_tiny_llama()),
        dataset=str(DATA),
        method="lora",
        max_steps=12,
        batch_size=2,
        max_seq_len=48,
        learning_rate=5e-3,
        warmup=0,
        lora_r=8,
        lora_alpha=16,
        seed=7,
    )
    base.update(changes)
    return TrainSpec(**base)


def losses(store: RunStore, run_id: str) -> dict[int, float]:
    """Loss per step; a step logged again after a resume replaces the lost worker's value."""
    events, _ = store.read_events(run_id)
    out: dict[int, float] = {}
    for event in events:
        if isinstance(event, Metric) and "loss" in event.values:
            out[event.step] = event.values["loss"]
    return out


def ended(store: RunStore, run_id: str) -> bool:
    """The run is over and its record complete: the worker writes the final status just before
    the terminal event, so a reader waits for that line too (unless no worker is left to write it:
    a lost run, or a SLURM run that ended while its worker was gone)."""
    info = store.get(run_id)
    if info.active:
        return False
    if info.status == "lost" or not worker_alive(info):
        return True
    events, _ = store.read_events(run_id)
    return any(is_terminal(e) for e in events)


def falling(curve: dict[int, float]) -> bool:
    values = [curve[k] for k in sorted(curve)]
    head, tail = values[:3], values[-3:]
    return sum(tail) / len(tail) < sum(head) / len(head)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_run_succeeds_with_falling_loss_and_metrics(method):
    store = RunStore()
    info = launch.start(tiny_spec(method=method, learning_rate=5e-3 if method == "lora" else 1e-3, eval_split=0.1, eval_steps=6), store)
    wait_for(lambda: ended(store, info.id))
    final = store.get(info.id)
    events, _ = store.read_events(info.id)
    assert final.status == "succeeded", store.log_tail(info.id, 30)
    curve = losses(store, info.id)
    assert sorted(curve) == list(range(1, 13))
    assert falling(curve)
    metrics = [e for e in events if isinstance(e, Metric) and "loss" in e.values]
    for key in ("lr", "grad_norm", "tokens_per_s", "samples_per_s", "epoch", "eta_s", "total_steps", "host_rss_gib"):
        assert key in metrics[-1].values, key
    assert metrics[-1].values["tokens_per_s"] > 0
    evals = [e for e in events if isinstance(e, Metric) and "eval_loss" in e.values]
    assert evals and math.isclose(evals[-1].values["eval_ppl"], math.exp(evals[-1].values["eval_loss"]), rel_tol=1e-6)
    summary = [e for e in events if isinstance(e, Finished)][0].summary
    out = Path(summary["output"])
    assert out.is_dir() and (out / ("adapter_config.json" if method == "lora" else "config.json")).exists()
    assert not any(p.name.startswith(".") for p in out.parent.iterdir() if p.name.endswith(".tmp"))
    # the library's own printing is gone: no log dicts or progress bars in the run's stdout log
    log = (final.dir / "log.txt").read_text()
    assert "{'loss'" not in log and "it/s]" not in log


def test_stop_saves_a_checkpoint_and_ends_cancelled():
    store = RunStore()
    info = launch.start(tiny_spec(max_steps=400), store)
    wait_for(lambda: len(losses(store, info.id)) >= 3)
    store.cancel(info.id)
    wait_for(lambda: ended(store, info.id))
    final = store.get(info.id)
    assert final.status == "cancelled"
    ckpt = latest_complete(final.out_dir / "checkpoints")
    assert ckpt is not None and ckpt.step == max(losses(store, info.id))
    assert ckpt.step < 400


def test_nan_loss_stops_the_run_naming_the_step():
    store = RunStore()
    info = launch.start(tiny_spec(debug={"nan_at_step": 4}), store)
    wait_for(lambda: ended(store, info.id))
    final = store.get(info.id)
    events, _ = store.read_events(info.id)
    assert final.status == "failed"
    failed = [e for e in events if isinstance(e, Failed)][0]
    assert "NaN/inf at step 5" in failed.message and "learning rate" in failed.message
    assert max(losses(store, info.id)) == 5  # it stopped right there


def test_resume_after_sigkill_continues_the_same_curve():
    """Killed with SIGKILL right after the step-20 checkpoint, resumed to 40: steps 21-40 log
    the same losses as an uninterrupted run with the same seed."""
    store = RunStore()
    spec = tiny_spec(max_steps=40, save_steps=10, batch_size=2, max_seq_len=32)
    reference = launch.start(spec, store)
    killed = launch.start(TrainSpec(**{**spec.to_dict(), "debug": {"kill_at_step": 20}}), store)
    wait_for(lambda: ended(store, killed.id), timeout=180)
    assert store.get(killed.id).status == "lost"
    assert max(losses(store, killed.id)) == 20
    resumed = launch.resume(killed.id, store)
    assert resumed.id == killed.id
    wait_for(lambda: ended(store, reference.id) and ended(store, killed.id), timeout=180)
    assert store.get(killed.id).status == "succeeded", store.log_tail(killed.id, 30)
    ref, got = losses(store, reference.id), losses(store, killed.id)
    assert sorted(got) == list(range(1, 41))
    for step in range(21, 41):
        assert abs(ref[step] - got[step]) < 1e-4, (step, ref[step], got[step])
    # the finish line reports the run's first loss (step 1), not the loss at the resume point
    final = next(e for e in store.read_events(killed.id)[0] if isinstance(e, Finished))
    assert final.summary["first_loss"] == pytest.approx(got[1], abs=1e-6) and final.summary["resumed_from"]


def test_corrupt_checkpoint_is_skipped_on_resume(tmp_path):
    store = RunStore()
    info = launch.start(tiny_spec(max_steps=12, save_steps=4, save_total_limit=0), store)
    wait_for(lambda: ended(store, info.id))
    assert store.get(info.id).status == "succeeded"
    folder = store.get(info.id).out_dir / "checkpoints"
    assert [c.step for c in list_checkpoints(folder) if c.complete] == [4, 8, 12]
    # damage the newest one: a truncated weights file
    newest = folder / "checkpoint-12"
    weights = next(p for p in newest.iterdir() if p.suffix == ".safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    # and leave an unsealed one (killed while saving)
    (folder / "checkpoint-16").mkdir()
    assert not inspect(newest).complete and "bytes" in inspect(newest).problem
    assert latest_complete(folder).step == 8
    launch.resume(info.id, store, max_steps=14)
    wait_for(lambda: ended(store, info.id))
    assert store.get(info.id).status == "succeeded"
    log = "\n".join(store.log_tail(info.id, 200))
    assert "resuming from checkpoint-8" in log and "skipping checkpoint-12" in log
    events, _ = store.read_events(info.id)
    resumed_steps = [e.step for e in events if isinstance(e, Metric) and "loss" in e.values][12:]
    assert resumed_steps == [9, 10, 11, 12, 13, 14]
    assert (store.get(info.id).out_dir / "checkpoints" / "checkpoint-8" / MARKER).exists()


def test_training_survives_its_parent_being_killed(tmp_path):
    spec = tiny_spec(max_steps=30)
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from engine.train import launch\nfrom engine.train.spec import TrainSpec\n"
        f"info = launch.start(TrainSpec.from_json({spec.to_json()!r}))\n"
        "print(info.id, flush=True)\ntime.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    run_id = parent.stdout.readline().strip()
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    store = RunStore()
    wait_for(lambda: ended(store, run_id))
    assert store.get(run_id).status == "succeeded"
    assert sorted(losses(store, run_id)) == list(range(1, 31))


def test_qlora_refuses_on_cpu_with_a_clear_message():
    store = RunStore()
    info = launch.start(tiny_spec(method="qlora"), store)
    wait_for(lambda: ended(store, info.id))
    events, _ = store.read_events(info.id)
    failed = [e for e in events if isinstance(e, Failed)][0]
    assert failed.message.startswith("QLoRA needs a CUDA GPU")
    assert "Traceback" not in failed.message
