"""Train mode with Pilot: a recorded run replayed, compare overlay, the form, and a live run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from textual.widgets import TabbedContent

from engine import paths
from engine.events import Finished, Log, Metric, Progress
from engine.runs import RunStore
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.widgets.train_curve import TrainCurve, views_for


def recorded_run(store: RunStore, name: str, steps: int = 40, slope: float = 0.04) -> str:
    """A finished training run written straight into a run folder, as a worker would."""
    info = store.create("train", {"model": "/models/m", "dataset": "/data/d.jsonl", "max_steps": steps, "name": name},
                        name=name)
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
        await wait_until(pilot, lambda: screen.selected == run_id and screen.states.get(run_id)
                         and screen.states[run_id].step == 40)
        curve = screen.query_one("#train-curve", TrainCurve)
        await wait_until(pilot, lambda: curve.points_drawn == 40)
        stats = str(screen.query_one("#train-stats").render())
        for needle in ("step 40/40", "loss 1.4000", "eval 1.8000", "lr 1.00e-03", "tok/s 900", "gpu0 3.1/4.0 GiB",
                       "RAM 1.25 GiB"):
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
        await pilot.press("up")  # the cursor starts on the newest complete one, checkpoint-40
        await pilot.press("d")
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


def run_with_checkpoints(store: RunStore, name: str = "lora") -> tuple[str, Path]:
    """A finished LoRA run with checkpoints 20 and 40 complete and 60 unsealed."""
    from engine.train.checkpoints import mark_complete

    run_id = recorded_run(store, name)
    root = store.get(run_id).out_dir / "checkpoints"
    for step, loss in ((20, 2.2), (40, 1.4)):
        folder = root / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"w" * 3 * 1024 * 1024)
        (folder / "adapter_config.json").write_text("{}")
        (folder / "trainer_state.json").write_text("{}")
        mark_complete(folder, step=step, loss=loss)
    (root / "checkpoint-60").mkdir()
    return run_id, root


async def test_merge_and_export_default_to_the_newest_complete_checkpoint_and_ask_first():
    from tui.screens.confirm import ConfirmModal

    store = RunStore()
    run_id, root = run_with_checkpoints(store)
    app = LLMDeckApp(start_mode="train", store=store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.query_one("#train-ckpts").row_count == 3)
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        body = str(app.screen.query_one("#confirm-body").render())
        assert "checkpoint-40 · step 40 · 3.0 MiB" in body
        assert str(root / "checkpoint-40-merged") in body.replace("\n", "")
        await pilot.press("n")  # declined: nothing starts
        await pilot.pause(0.2)
        assert [r.kind for r in store.list()] == ["train"]
        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "checkpoint-40-f16.gguf" in str(app.screen.query_one("#confirm-body").render()).replace("\n", "")
        await pilot.press("y")
        await wait_until(pilot, lambda: any(r.kind == "train.gguf" for r in store.list()))
        job = next(r for r in store.list() if r.kind == "train.gguf")
        assert job.spec["model"] == str(root / "checkpoint-40")
        await wait_until(pilot, lambda: not store.get(job.id).active, 120)


async def test_chat_opens_the_newest_complete_checkpoint():
    from tui.messages import OpenInChat

    store = RunStore()
    run_id, root = run_with_checkpoints(store)
    asked: list[str] = []
    app = LLMDeckApp(start_mode="train", store=store)

    def hook(message) -> None:
        if isinstance(message, OpenInChat):
            asked.append(message.path)

    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        await wait_until(pilot, lambda: app.screen.query_one("#train-ckpts").row_count == 3)
        await pilot.press("c")
        await wait_until(pilot, lambda: asked)
        assert set(asked) == {str(root / "checkpoint-40")}  # (seen on the screen, then on the app)


@pytest.mark.parametrize("width", [80, 120, 160])
async def test_the_run_list_shows_the_whole_loss_column(width: int):
    store = RunStore()
    recorded_run(store, "a-run-with-a-rather-long-name")
    app = LLMDeckApp(start_mode="train", store=store)
    async with app.run_test(size=(width, 30)) as pilot:
        table = app.screen.query_one("#train-runs")
        await wait_until(pilot, lambda: table.row_count == 1 and "1.400" in str(table.get_row_at(0)))
        await pilot.pause(0.1)
        right = 0
        for column in table.ordered_columns:
            right += column.get_render_width(table)
            if column.key.value == "loss":
                break
        assert right <= table.scrollable_content_region.width, (right, table.scrollable_content_region.width)


def recorded_method_run(store: RunStore, name: str, method: str, steps: int = 20, level: float = 1.0) -> str:
    """A finished DPO or GRPO run, with the keys TRL 1.16 logs (seen in real runs) and, for
    GRPO, the Samples events the run writes at each log."""
    from engine.events import Samples

    info = store.create("train", {"model": "/models/m", "dataset": "/data/d.jsonl", "method": method,
                                  "max_steps": steps, "name": name}, name=name)
    events = []
    for s in range(1, steps + 1):
        values = {"loss": 0.7 - 0.02 * s, "lr": 1e-3, "total_steps": float(steps)}
        if method == "dpo":
            values |= {"rewards/chosen": 0.05 * s * level, "rewards/rejected": -0.04 * s * level,
                       "rewards/margins": 0.09 * s * level, "rewards/accuracies": min(1.0, 0.1 * s),
                       "logps/chosen": -60.0, "logps/rejected": -70.0}
        else:
            values |= {"reward": 0.04 * s * level, "reward_std": 0.3, "rewards/exact_answer/mean": 0.04 * s,
                       "rewards/exact_answer/std": 0.3, "kl": 0.001 * s, "completions/mean_length": 12.0,
                       "completions/min_length": 4.0, "completions/max_length": 20.0,
                       "clip_ratio/region_mean": 0.0, "clip_ratio/low_mean": 0.0, "clip_ratio/high_mean": 0.0}
            rows = [{"prompt": "What is 3 plus 4?", "completion": answer, "rewards": {"exact_answer": reward},
                     "advantage": adv} for answer, reward, adv in (("8", 0.0, -0.9), ("7", 1.0, 0.9))]
            events.append(Samples(step=s, rows=rows))
        events.append(Metric(step=s, values=values))
    events.append(Finished(summary={"output": "/nowhere"}))
    info.events_path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    store.update(info.id, status="succeeded", started=time.time() - 60, ended=time.time())
    return info.id


async def test_the_dashboard_shows_what_dpo_and_grpo_log():
    store = RunStore()
    grpo = recorded_method_run(store, "grpo-run", "grpo")
    dpo = recorded_method_run(store, "dpo-run", "dpo")  # newest: selected first
    app = LLMDeckApp(start_mode="train", store=store)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        curve = screen.query_one("#train-curve", TrainCurve)
        await wait_until(pilot, lambda: screen.selected == dpo and screen.states.get(dpo)
                         and screen.states[dpo].step == 20)
        stats = str(screen.query_one("#train-stats").render())
        assert "margin 1.800" in stats and "acc 1.00" in stats and "chosen 1.000" in stats
        # t: the DPO views in turn -- chosen/rejected together, then the margin, then the accuracy
        await pilot.press("t")
        await wait_until(pilot, lambda: curve.view.title == "rewards: chosen / rejected")
        assert [d.split(" (")[0] for d in curve.drawn] == ["rewards/chosen", "rewards/rejected"]
        assert "rewards: chosen / rejected" in str(screen.query_one("#train-status").render())
        await pilot.press("t")
        await wait_until(pilot, lambda: curve.view.title == "reward margin" and curve.points_drawn == 20)
        # the GRPO run: its reward with the spread and each function, KL, length, clip ratio
        table = screen.query_one("#train-runs")
        table.focus()
        await pilot.press("down")
        await wait_until(pilot, lambda: screen.selected == grpo and screen.states.get(grpo)
                         and screen.states[grpo].step == 20)
        titles = [v.title for v in views_for(screen.states[grpo].curves)]
        assert titles[:5] == ["loss", "reward (mean +- std, per function)", "KL to the reference",
                              "completion length (mean, min, max)", "clip ratio"]
        await pilot.press("t")
        await wait_until(pilot, lambda: curve.view.title.startswith("reward (mean"))
        labels = [d.split(" (")[0] for d in curve.drawn]
        assert labels == ["reward", "rewards/exact_answer/mean"]
        stats = str(screen.query_one("#train-stats").render())
        assert "reward 0.800" in stats and "± 0.300" in stats and "KL 0.0200" in stats and "len 12.0" in stats
        # the completions of the latest step, best first, with their rewards
        await pilot.press("a")
        assert screen.query_one(TabbedContent).active == "samples"
        text = str(screen.query_one("#samples-text").render())
        assert "step 20: 2 completions, mean reward 0.500" in text
        assert text.index("#1  reward 1.000  (exact_answer 1.00)  advantage +0.90") < text.index("#2  reward 0.000")
        assert "prompt: What is 3 plus 4?" in text


async def test_compare_groups_seeds_into_experiments_with_bands():
    store = RunStore()
    ids = [recorded_method_run(store, f"{exp}-s{seed}", "dpo", level=level * (1 + 0.1 * seed))
           for exp, level in (("dpo-b0.5", 2.0), ("dpo-b0.1", 1.0)) for seed in (1, 2, 3)]
    app = LLMDeckApp(start_mode="train", store=store)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: len(screen.runs) == 6)
        table = screen.query_one("#train-runs")
        table.focus()
        for i in range(6):
            await pilot.press("space")
            if i < 5:
                await pilot.press("down")
        await wait_until(pilot, lambda: set(screen.compare) == set(ids))
        await pilot.press("o")
        compare = screen.query_one("#compare-curve", TrainCurve)
        await wait_until(pilot, lambda: compare.points_drawn == 40)  # two experiments' means, not six runs
        assert compare.drawn == ["dpo-b0.1 (3 seeds)", "dpo-b0.5 (3 seeds)"]  # by name, not by start time
        legend = str(screen.query_one("#compare-legend").render())
        assert legend.index("dpo-b0.1") < legend.index("dpo-b0.5") and "band minmax" in legend
        # t: the next metric, b: the band, w: the line width
        await pilot.press("t")
        await wait_until(pilot, lambda: compare.metric == "rewards/margins")
        await pilot.press("b")
        assert screen.band == "std" and compare.band == "std"
        await pilot.press("w")
        assert screen.width_step == 1 and compare.width_step == 1
        await pilot.press("e")
        plots = paths.data_dir() / "plots"
        await wait_until(pilot, lambda: plots.is_dir() and any(p.suffix == ".png" for p in plots.iterdir()))


async def test_the_form_takes_a_method_its_adapter_and_grpo_rewards(tmp_path):
    from textual.widgets import Select

    from tests.helpers.tiny_model import cached_tiny_llama

    data = tmp_path / "prompts.jsonl"
    data.write_text('{"prompt": "What is 3 plus 4?", "answer": "7"}\n')
    app = LLMDeckApp(start_mode="train", store=RunStore())
    async with app.run_test(size=(100, 40)) as pilot:
        screen = app.screen
        await pilot.press("n")
        form = screen.query_one("#train-form")
        assert not screen.query_one("#row-rewards").display  # SFT: no reward fields
        screen.query_one("#f-model").value = str(cached_tiny_llama())
        screen.query_one("#f-dataset").value = str(data)
        screen.query_one("#f-method", Select).value = "grpo"
        await wait_until(pilot, lambda: screen.query_one("#row-rewards").display)
        await wait_until(pilot, lambda: any(p.startswith("rewards: GRPO needs") for p in form.problems))
        screen.query_one("#f-rewards").value = "exact:answer; length:1:8"
        screen.query_one("#f-adapter", Select).value = "full"
        await wait_until(pilot, lambda: form.problems == [])
        cli = str(screen.query_one("#form-cli").render())
        assert "--method grpo" in cli and "--adapter full" in cli
        assert "--reward exact:answer --reward length:1:8" in cli
        assert form.spec.rewards == ["exact:answer", "length:1:8"]
        assert not screen.query_one("#row-sft_weight").display


# A 1.1B Llama's shape, no weights: the estimator reads config.json alone, and at this size the
# reference copy (4.2 GiB in fp32) and GRPO's KV cache move the one-decimal GiB figure the form shows.
ESTIMATE_CONFIG = {"model_type": "llama", "hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 8,
                   "num_hidden_layers": 16, "intermediate_size": 8192, "vocab_size": 32000}


async def choose(pilot, select_id: str, value: str, order: tuple[str, ...]) -> None:
    """Pick `value` in a Select as a user does: focus it, Enter opens the menu on the current
    choice, arrows move to the wanted one, Enter takes it."""
    from textual.widgets import Select

    select = pilot.app.screen.query_one(select_id, Select)
    select.focus()
    await pilot.pause()
    steps = order.index(value) - order.index(str(select.value))
    await pilot.press("enter", *(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
    await wait_until(pilot, lambda: select.value == value, what=f"{select_id} = {value}")


async def type_into(pilot, input_id: str, text: str) -> None:
    """Replace an Input's text by keys: End, Backspace over what is there, then the new text."""
    from textual.widgets import Input

    field = pilot.app.screen.query_one(input_id, Input)
    field.focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * len(field.value), *text)
    await wait_until(pilot, lambda: field.value == text, what=f"{input_id} = {text!r}")


async def test_the_forms_memory_estimate_follows_the_method_and_adapter(tmp_path):
    """The estimate line for each method, chosen with keys, is the estimator's figure for that
    form: DPO and KTO on a full fine-tune add a frozen reference copy (DPO shows ORPO's figure plus
    the copy, KTO SFT's plus the copy), ORPO has none, LoRA disables the adapter instead of copying
    (DPO = ORPO), and GRPO's generation batch with its KV cache grows with --grad-accum."""
    from engine.estimate.methods import estimate_method, options_for_spec
    from engine.estimate.sources import spec_from_hf_dir
    from engine.train.spec import ADAPTERS, METHODS

    model = tmp_path / "llama-1b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(ESTIMATE_CONFIG))
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "What is 3 plus 4?", "chosen": "7", "rejected": "3 plus 4", "answer": "7"}\n')
    shape = spec_from_hf_dir(model)
    app = LLMDeckApp(start_mode="train", store=RunStore())
    async with app.run_test(size=(100, 40)) as pilot:
        screen = app.screen
        await pilot.press("n")
        form = screen.query_one("#train-form")
        screen.query_one("#f-model").value = str(model)
        screen.query_one("#f-dataset").value = str(data)
        await type_into(pilot, "#f-batch_size", "4")
        await type_into(pilot, "#f-max_seq_len", "512")
        await choose(pilot, "#f-adapter", "full", ADAPTERS)

        async def shown(method: str) -> tuple[float, object]:
            """Choose `method`; wait for the line to show the estimator's figure for the form; return it."""
            await choose(pilot, "#f-method", method, METHODS)
            if method == "grpo":
                await wait_until(pilot, lambda: screen.query_one("#row-rewards").display, what="the rewards field")
                await type_into(pilot, "#f-rewards", "exact:answer")
            await wait_until(pilot, lambda: form.spec is not None and form.spec.method == method, what="a valid form")
            expected = estimate_method(shape, options_for_spec(form.spec))
            figure = f"estimated peak memory per GPU: {expected.total_gib:.1f} GiB"
            line = screen.query_one("#form-estimate")
            await wait_until(pilot, lambda: str(line.render()).startswith(figure), what=f"{method}: {figure}")
            return float(f"{expected.total_gib:.1f}"), expected

        def component(estimate, key: str) -> float:
            return sum(c.bytes for c in estimate.components if c.key == key) / 2**30

        sft, _ = await shown("sft")
        dpo, dpo_estimate = await shown("dpo")
        orpo, orpo_estimate = await shown("orpo")
        kto, kto_estimate = await shown("kto")
        copy = component(dpo_estimate, "reference")
        assert copy > 4 and component(kto_estimate, "reference") == copy  # fp32 copy of 1.1B parameters
        assert component(orpo_estimate, "reference") == 0
        assert abs(dpo - orpo - copy) < 0.11 and abs(kto - sft - copy) < 0.11  # one-decimal rounding
        # LoRA: the reference is the base with the adapter disabled; DPO costs what ORPO does
        await choose(pilot, "#f-adapter", "lora", ADAPTERS)
        lora_orpo, _ = await shown("orpo")
        lora_dpo, lora_dpo_estimate = await shown("dpo")
        assert component(lora_dpo_estimate, "reference") == 0 and lora_dpo == lora_orpo < orpo
        # GRPO: a generation phase whose batch (batch x grad accumulation) holds a KV cache
        grpo, grpo_estimate = await shown("grpo")
        assert component(grpo_estimate, "kv_cache") > 0
        await type_into(pilot, "#f-grad_accum", "64")  # 256 sequences of 640 tokens
        expected = estimate_method(shape, options_for_spec(form.spec))
        assert expected.peak_phase.startswith("generation") and component(expected, "kv_cache") > 8
        figure = f"estimated peak memory per GPU: {expected.total_gib:.1f} GiB (generation"
        await wait_until(pilot, lambda: str(screen.query_one("#form-estimate").render()).startswith(figure),
                         what=figure)
        assert expected.total_gib > grpo + 2
