"""bench/gpu_check.py without a GPU: arguments, the per-part subprocesses and their limits, and
both reports, through its --dry-run mode (the GPU work itself needs a GPU machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_check.py"
ALL_PARTS = ["prep", "monitor", "train-lora", "train-lora-gc", "train-full", "train-qlora", "chat", "llama", "serve",
             "train-bench", "estimate"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=False, capture_output=True, text=True,
                          cwd=str(ROOT), timeout=timeout)


def report(out: Path) -> dict:
    return json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))


def test_dry_run_reports_every_part_as_skipped_with_what_it_needs(tmp_path):
    out = tmp_path / "reports"
    proc = run(str(out), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    data = report(out)
    assert data["format"] == "llmdeck-gpu-check/1" and data["dry_run"] is True
    assert [p["name"] for p in data["parts"]] == ALL_PARTS
    for part in data["parts"]:
        assert part["status"] == "skipped", part
        assert part["reason"].startswith("dry run; needs a GPU"), part
        assert part["seconds"] < part["timeout_s"]
    qlora = next(p for p in data["parts"] if p["name"] == "train-qlora")
    assert "bitsandbytes" in qlora["reason"]
    md = (out / "gpu_check.md").read_text(encoding="utf-8")
    assert md.startswith("# llmdeck GPU check (dry run)")
    for name in ALL_PARTS:
        assert f"| {name} | skipped |" in md
    assert "| part | status | s | result |" in proc.stdout  # the table is printed too


def test_a_crash_and_a_hang_are_reported_and_the_other_parts_still_run(tmp_path):
    out = tmp_path / "r"
    proc = run(str(out), "--dry-run", "--parts", "monitor,chat,serve", "--fault", "monitor=crash",
               "--fault", "chat=hang", "--timeout", "chat=3")
    assert proc.returncode == 0, proc.stderr
    parts = {p["name"]: p for p in report(out)["parts"]}
    assert list(parts) == ["prep", "monitor", "chat", "serve"]  # chat and serve need prep: added first
    assert parts["monitor"]["status"] == "crashed" and "exit code 3" in parts["monitor"]["reason"]
    assert parts["chat"]["status"] == "timeout" and 2.5 < parts["chat"]["seconds"] < 30
    assert parts["serve"]["status"] == "skipped" and parts["prep"]["status"] == "skipped"
    md = (out / "gpu_check.md").read_text(encoding="utf-8")
    assert "| monitor | crashed |" in md and "| chat | timeout |" in md


def test_parts_that_do_not_fit_the_budget_are_skipped_as_out_of_time(tmp_path):
    out = tmp_path / "r"
    proc = run(str(out), "--dry-run", "--parts", "monitor,llama", "--budget", "1")
    assert proc.returncode == 0, proc.stderr
    parts = report(out)["parts"]
    assert [p["status"] for p in parts] == ["skipped", "skipped"]
    assert all("out of time" in p["reason"] for p in parts)


@pytest.mark.parametrize("args,message", [
    ([], "give the output folder"),
    (["OUT", "--parts", "monitor,warp"], "unknown part(s) warp"),
    (["OUT", "--timeout", "chat"], "--timeout wants PART=VALUE"),
    (["OUT", "--timeout", "chat=soon"], "'soon' is not valid"),
    (["OUT", "--budget", "0"], "--budget must be"),
])
def test_bad_arguments_get_one_clear_line(args, message, tmp_path):
    proc = run(*[str(tmp_path / a) if a == "OUT" else a for a in args])
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "OUT").exists()


def _module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name,tflops", [
    ("NVIDIA H200", 989), ("NVIDIA GH200 480GB", 989), ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA H100 PCIe", 756),
    ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA L40S", 362), ("NVIDIA L40", 181), ("NVIDIA L4", 121),
    ("NVIDIA GeForce RTX 4090", 165), ("NVIDIA RTX A6000", 155), ("NVIDIA A10", 125), ("Tesla T4", None),
])
def test_peak_bf16_by_gpu_name(name, tflops):
    peak = _module().peak_bf16_flops(name)
    assert peak == (tflops * 1e12 if tflops else None)


def test_monitor_fields_are_compared_exactly_or_within_a_live_tolerance():
    compare = _module().compare_field
    assert compare("name", "NVIDIA H200", "NVIDIA H200")[0]
    assert not compare("uuid", "GPU-1", "GPU-2")[0]
    assert compare("power_limit_w", 700.0, 700.0)[0]
    assert compare("memory_used", 10 * 2**30, 10 * 2**30 + 100 * 2**20)[0]  # another process allocated meanwhile
    assert not compare("memory_used", 10 * 2**30, 12 * 2**30)[0]
    assert compare("fan_percent", "n/a", "n/a")[0]  # NVML NotSupported: llmdeck must say n/a too
    ok, detail = compare("temperature", "n/a", 41)
    assert not ok and "NVML 41" in detail
    assert not compare("util_gpu", 140, 100)[0]


def test_the_direct_nvml_read_matches_llmdeck_field_by_field():
    """The monitor part's two sides on the same (fake) NVML: every field, unit and NotSupported
    agrees, and a wrong value is caught; on a GPU machine the same code reads the real NVML."""
    import pynvml

    from engine.monitor.nvml import NvmlSampler
    from engine.monitor.sample import MonitorSample
    from tests.engine.test_monitor_fakes import FakeNvml

    gc = _module()
    unsupported = {"nvmlDeviceGetFanSpeed": pynvml.NVMLError_NotSupported,
                   "nvmlDeviceGetEccMode": pynvml.NVMLError_NotSupported}
    for fail in ({}, unsupported):
        sampler = NvmlSampler(FakeNvml(fail=fail), slow_interval=0)
        assert sampler.open()
        gpus, _procs = sampler.sample()
        ours = MonitorSample(time=0.0, gpus=gpus).to_dict()["gpus"]
        direct = gc.nvml_direct(FakeNvml(fail=fail))
        rows = gc.compare_sample(ours, direct)
        assert len(rows) == 2 * 19
        assert all(ok for _i, _n, ok, _d in rows), [r for r in rows if not r[2]]
    assert direct[0]["fan_percent"] == "n/a" and direct[0]["power_w"] == pytest.approx(301.498)
    ours[1]["memory_total"] -= 2**20
    wrong = [(i, name) for i, name, ok, _d in gc.compare_sample(ours, direct) if not ok]
    assert wrong == [(1, "memory_total")]
