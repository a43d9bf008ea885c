"""The multi-device path: a 2-process data-parallel run on CPU (gloo) under accelerate launch,
and the export-plot command on its curves."""

from __future__ import annotations

from engine.cli import run_command
from engine.events import Finished, Metric
from engine.runs import RunStore
from engine.train import launch
from tests.engine.test_train_runs import ended, losses, tiny_spec, wait_for


def test_two_process_cpu_run_under_accelerate_launch(tmp_path, capsys):
    store = RunStore()
    # 16 rows of <= 32 tokens survive, batch 2 per process: 2 processes finish an epoch in 4
    # steps, where one process would need 8; the epoch counter proves the data was split.
    info = launch.start(tiny_spec(max_steps=6, max_seq_len=32, save_steps=3, devices="cpu:2"), store)
    wait_for(lambda: ended(store, info.id), timeout=240)
    final = store.get(info.id)
    assert final.status == "succeeded", store.log_tail(info.id, 40)
    events, _ = store.read_events(info.id)
    summary = [e for e in events if isinstance(e, Finished)][0].summary
    assert summary["processes"] == 2
    by_step = {e.step: e.values for e in events if isinstance(e, Metric) and "loss" in e.values}
    assert sorted(by_step) == [1, 2, 3, 4, 5, 6]
    assert abs(by_step[4]["epoch"] - 1.0) < 1e-6
    assert [c.step for c in launch.checkpoints_of(final) if c.complete] == [3, 6]
    assert "launching 2 training processes" in "\n".join(store.log_tail(info.id, 200))
    # export its curves
    png, csv_path = tmp_path / "loss.png", tmp_path / "loss.csv"
    assert run_command(["train", "export-plot", info.id, "--out", str(png), "--smooth", "0.5"]) == 0
    assert run_command(["train", "export-plot", info.id, "--out", str(csv_path)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert len(csv_path.read_text().splitlines()) == 1 + len(losses(store, info.id))
    assert run_command(["train", "checkpoints", info.id]) == 0
    assert "checkpoint-6" in capsys.readouterr().out
