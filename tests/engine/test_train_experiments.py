"""Experiments as the RL plotting script draws them: grouping by name, one colour each, seeds
averaged with a band aligned by step, and the same picture as PNG, SVG and CSV."""

from __future__ import annotations

import csv
import json
import math

import pytest

from engine.cli import run_command
from engine.events import Metric
from engine.runs import RunStore
from engine.train.experiments import PALETTE, aggregate, colours_for, experiment_of
from engine.train.plots import RunCurves, build_figure, present_metrics, write_csv, write_image
from engine.train.spec import TrainSpec


def test_experiment_is_the_run_name_without_its_seed():
    assert experiment_of("dpo-b0.1-s1") == "dpo-b0.1"
    assert experiment_of("dpo-b0.1_seed2") == "dpo-b0.1"
    assert experiment_of("grpo.seed-3") == "grpo"
    assert experiment_of("runs1") == "runs1" and experiment_of("s1") == "s1"
    assert TrainSpec(name="x-lr3-s7").experiment_name == "x-lr3"
    assert TrainSpec(name="x-lr3-s7", experiment="mine").experiment_name == "mine"


def test_colours_are_distinct_deterministic_and_by_sorted_name():
    names = [f"exp-{i:02d}" for i in range(30)]
    colours = colours_for(reversed(names))
    assert len(set(colours.values())) == 30  # more than the palette: still no two alike
    assert colours == colours_for(names)
    assert colours_for(["b", "a"]) == {"a": PALETTE[0], "b": PALETTE[1]}
    # names whose old 10-colour hash collided now differ
    assert len(set(colours_for(["run-a", "run-k", "run-u"]).values())) == 3


def test_seeds_aggregate_by_step_with_minmax_and_std_bands():
    runs = [("s1", {1: 1.0, 2: 2.0, 3: 3.0}), ("s2", {1: 3.0, 2: 4.0}), ("s3", {1: 2.0, 2: float("nan"), 3: 5.0})]
    band = aggregate("e", "#000000", runs, band="minmax")
    assert band.steps == [1, 2, 3] and band.counts == [3, 2, 2]
    assert band.mean == [2.0, 3.0, 4.0] and band.low == [1.0, 2.0, 3.0] and band.high == [3.0, 4.0, 5.0]
    std = aggregate("e", "#000000", runs, band="std")
    assert std.low[0] == pytest.approx(1.0) and std.high[0] == pytest.approx(3.0)  # mean 2, sample std 1
    assert std.high[1] - std.mean[1] == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="band"):
        aggregate("e", "#000000", runs, band="iqr")


def three_seeds_of_two() -> list[RunCurves]:
    runs = []
    for exp, slope in (("beta-0.1", 0.1), ("beta-0.5", 0.3)):
        for seed in (1, 2, 3):
            runs.append(RunCurves(f"{exp}-s{seed}", {
                "loss": {s: 1.0 - slope * s / 10 + 0.01 * seed for s in range(1, 11)},
                "rewards/margins": {s: slope * s + 0.05 * (seed - 2) for s in range(1, 11)},
            }))
    return runs


def test_the_picture_groups_seeds_and_writes_png_svg_and_csv(tmp_path):
    runs = three_seeds_of_two()
    figure = build_figure(runs, ["loss", "rewards/margins", "kl"], smooth=0.0)
    assert list(figure.panels) == ["loss", "rewards/margins"]  # no kl values: no empty panel
    margins = figure.panels["rewards/margins"]
    assert [s.experiment for s in margins] == ["beta-0.1", "beta-0.5"] and [s.seeds for s in margins] == [3, 3]
    assert margins[1].mean[9] == pytest.approx(3.0) and margins[1].low[9] == pytest.approx(2.95)
    assert margins[1].high[9] == pytest.approx(3.05)
    png = write_image(runs, tmp_path / "p.png", ["loss", "rewards/margins"], smooth=0.5, line_width=3)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = write_image(runs, tmp_path / "p.svg", ["loss", "rewards/margins"], band="std")
    assert "<svg" in svg.read_text()[:400]
    out = write_csv(runs, tmp_path / "p.csv", ["rewards/margins"])
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 10 and rows[0]["experiment"] == "beta-0.1" and rows[0]["seeds"] == "3"
    last = [r for r in rows if r["experiment"] == "beta-0.5" and r["step"] == "10"][0]
    assert float(last["mean"]) == pytest.approx(3.0) and float(last["low"]) == pytest.approx(2.95)
    assert last["runs"] == "beta-0.5-s1;beta-0.5-s2;beta-0.5-s3"
    with pytest.raises(ValueError, match="png or .svg"):
        write_image(runs, tmp_path / "p.jpg", ["loss"])
    assert present_metrics(runs) == ["loss", "rewards/margins"]


def test_export_plot_command_groups_saved_runs_into_experiments(tmp_path, capsys):
    store = RunStore()
    ids = []
    for exp, seed, level in (("dpo", 1, 1.0), ("dpo", 2, 2.0), ("grpo", 1, 5.0)):
        info = store.create("train", TrainSpec(name=f"{exp}-s{seed}").to_dict(), name=f"{exp}-s{seed}")
        with open(info.events_path, "a") as handle:
            for step in (1, 2):
                handle.write(json.dumps(Metric(step=step, values={"loss": level * step}).to_dict()) + "\n")
        ids.append(info.id)
    out = tmp_path / "c.csv"
    assert run_command(["train", "export-plot", *ids, "--out", str(out), "--band", "std"]) == 0
    assert "3 runs in 2 experiments: dpo, grpo" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    dpo = [r for r in rows if r["experiment"] == "dpo"]
    assert [float(r["mean"]) for r in dpo] == [1.5, 3.0]
    assert run_command(["train", "export-plot", *ids, "--out", str(tmp_path / "c.png"), "--line-width", "0"]) == 2
