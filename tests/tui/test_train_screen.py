"""Train mode with Pilot: a recorded run replayed, compare overlay, the form, and a live run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine import paths
from engine.events import Finished, Log, Metric, Progress
from engine.runs import RunStore
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.widgets.train_curve import TrainCurve


def recorded_run(store: RunStore, name: str, steps: int = 40, slope: float = 0.04) -> str:
    """A finished training run written straight into a run folder, as a worker would."""
    info = store.create("train", {"model": "/models/m", "dataset": "/data/d.jsonl", "max_steps": steps, "name": name}, name=name)
    lines = []
    for s in range(1, steps + 1):
        values = {"loss": 3 - s * slope, "lr": 1e-3, "grad_norm": 0.5, "tokens_per_s": 900.0, "samples_per_s": 3.0,
                  "epoch": s / steps, "eta_s": float(steps - s), "total_steps": float(steps), "host_rss_gib": 1.25,
                  "gpu0_alloc_gib": 3.1, "gpu0_reserved_gib": 4.0}
        lines.append(Metric(step=s, values=values))
        lines.append(Progress(phase="train", done=s, total=steps, unit="step"))
        if s % 10 == 0:
            lines.append(Metric(step=s, values={"eval_loss": 3 - s * 0.03, "eval_ppl": 2.0}))
    lines.append(Log(text="checkpoint saved: checkpoint-40"))
    lines.append(Finished(summary={"output": "/nowhere"}))
    info.events_path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in lines))
    store.update(info.id, status="succeeded", started=time.time() - 90, ended=time.time())
    return info.id


async def test_recorded_run_replays_whole_history_and_exports():
    store = RunStore()
    run_id = recorded_run(store, "replayed")
    app = LLMDeckApp(start_mode="train", store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.selected == run_id and screen.states.get(run_id) and screen.states[run_id].step == 40)
        curve = screen.query_one("#train-curve", TrainCurve)
        await wait_until(pilot, lambda: curve.points_drawn == 40)
        stats = str(screen.query_one("#train-stats").render())
        for needle in ("step 40/40", "loss 1.4000", "eval 1.8000", "lr 1.00e-03", "tok/s 900", "gpu0 3.1/4.0 GiB", "RAM 1.25 GiB"):
            assert needle in stats, needle
        log = screen.query_one("#train-log")
        assert any("checkpoint saved" in line for line in log.lines)
        # smoothing control
        await pilot.press("right_square_bracket")
        assert screen.smoothing == 0.8 and curve.smoothing == 0.8
        # PNG export of the selected run
        await pilot.press("e")
        plots = paths.data_dir() / "plots"
        await wait_until(pilot, lambda: plots.is_dir() and any(p.suffix == ".png" for p in plots.iterdir()))
        png = next(p for p in plots.iterdir() if p.suffix == ".png")
        assert png.read_bytes()[:4] == b"\x89PNG"


async def test_compare_overlays_marked_runs():
    store = RunStore()
    a = recorded_run(store, "run-a", slope=0.04)
    b = recorded_run(store, "run-b", steps=30, slope=0.02)
    app = LLMDeckApp(start_mode="train", store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: len(screen.runs) == 2)
        table = screen.query_one("#train-runs")
        table.focus()
        await pilot.press("space")
        await pilot.press("down")
        await pilot.press("space")
        await wait_until(pilot, lambda: set(screen.compare) == {a, b})
        compare = screen.query_one("#compare-curve", TrainCurve)
        await wait_until(pilot, lambda: compare.points_drawn == 70)
        await pilot.press("o")
        legend = str(screen.query_one("#compare-legend").render())
        assert "run-a" in legend and "run-b" in legend


async def test_form_validates_as_you_type_and_starts_a_live_run(tmp_path):
    from tests.helpers.tiny_model import cached_tiny_llama

    store = RunStore()
    app = LLMDeckApp(start_mode="train", store=store)
    data = Path(__file__).resolve().parents[2] / "engine" / "train" / "demo_data.jsonl"
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await pilot.press("n")
        form = screen.query_one("#train-form")
        model = screen.query_one("#f-model")
        model.value = str(tmp_path / "missing")
        await wait_until(pilot, lambda: any("does not exist" in p for p in form.problems))
        assert screen.query_one("#form-start").disabled
        model.value = str(cached_tiny_llama())
        screen.query_one("#f-dataset").value = str(data)
        screen.query_one("#f-max_steps").value = "8"
        screen.query_one("#f-batch_size").value = "2"
        screen.query_one("#f-max_seq_len").value = "48"
        screen.query_one("#f-learning_rate").value = "abc"
        await wait_until(pilot, lambda: any("learning_rate" in p for p in form.problems))
        screen.query_one("#f-learning_rate").value = "0.005"
        await wait_until(pilot, lambda: form.problems == [])
        assert "--max-steps 8" in str(screen.query_one("#form-cli").render())
        screen.query_one("#f-max_steps").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.selected is not None and screen.selected in screen.runs)
        run_id = screen.selected
        assert store.get(run_id).kind == "train"
        # live: the curve fills while it trains, then the run ends succeeded
        await wait_until(pilot, lambda: screen.states.get(run_id) and screen.states[run_id].step >= 1, timeout=90)
        await wait_until(pilot, lambda: screen.runs[run_id].status == "succeeded", timeout=90)
        await wait_until(pilot, lambda: screen.states[run_id].step == 8)
        assert screen.query_one("#train-curve", TrainCurve).points_drawn == 8
        assert "succeeded" in str(screen.query_one("#train-status").render())


async def test_checkpoints_are_listed_and_deleted_after_confirming():
    from engine.train.checkpoints import mark_complete

    store = RunStore()
    run_id = recorded_run(store, "with-ckpts")
    root = store.get(run_id).out_dir / "checkpoints"
    for step, loss in ((20, 2.2), (40, 1.4)):
        folder = root / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"w" * 2048)
        (folder / "trainer_state.json").write_text("{}")
        mark_complete(folder, step=step, loss=loss)
    (root / "checkpoint-60").mkdir()  # unsealed: shown as not complete
    app = LLMDeckApp(start_mode="train", store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        table = screen.query_one("#train-ckpts")
        await wait_until(pilot, lambda: table.row_count == 3)
        assert [c.complete for c in screen.checkpoints] == [True, True, False]
        table.focus()
        await pilot.press("delete")
        await pilot.pause(0.2)
        await pilot.press("y")
        await wait_until(pilot, lambda: table.row_count == 2)
        assert not (root / "checkpoint-20").exists() and (root / "checkpoint-40").exists()


async def test_export_file_name_from_a_hostile_run_name_stays_in_plots():
    store = RunStore()
    run_id = recorded_run(store, "../../escaped/run name", steps=5)
    app = LLMDeckApp(start_mode="train", store=store)
    plots = paths.data_dir() / "plots"
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: run_id in screen.states and screen.states[run_id].step == 5)
        await pilot.press("x")
        await wait_until(pilot, lambda: plots.is_dir() and any(p.suffix == ".csv" for p in plots.iterdir()))
    out = next(p for p in plots.iterdir() if p.suffix == ".csv")
    assert out.parent == plots and out.suffix == ".csv" and out.name.startswith("escaped-run-name-")
    assert not (paths.data_dir().parent / "escaped").exists() and not (paths.data_dir() / "escaped").exists()
    assert "run name" in out.read_text()  # the run's own name is still inside the file
