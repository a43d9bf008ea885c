"""`llmdeck monitor` headless: --once --json, --watch, --record/--replay, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.cli import OpenTUI, run_command
from engine.monitor.record import load_samples
from tests.helpers.fixtures import NVML_H200


def llmdeck(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ}, stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[2])


def test_once_json_host_only_here() -> None:
    out = llmdeck("monitor", "--once", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["format"] == "llmdeck-monitor/1"
    assert set(data) >= {"time", "gpus", "processes", "host", "gpu_status", "driver", "warnings"}
    assert data["host"]["ram_total"] > 0
    if not data["gpus"]:
        assert data["gpu_status"].startswith("No GPU panel:")


def test_once_json_from_the_h200_fixture() -> None:
    out = llmdeck("monitor", "--once", "--json", "--replay", str(NVML_H200))
    data = json.loads(out.stdout)
    gpu = data["gpus"][0]
    assert gpu["name"] == "NVIDIA H200" and gpu["fan_percent"] == "n/a" and gpu["throttle"] == ["idle"]


def test_watch_lines_and_record_then_replay(tmp_path: Path) -> None:
    rec = tmp_path / "m.jsonl"
    out = llmdeck("monitor", "--watch", "--count", "3", "--interval", "0.01", "--replay", str(NVML_H200), "--record", str(rec))
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if "[0]" in line]
    assert len(lines) == 3 and "NVIDIA H200" in lines[1] and "48%" in lines[1] and "49.1 / 140 GiB" in lines[1]
    assert "301 / 700 W" in lines[1] and "pid/421(49.1 GiB)" in lines[1]
    recorded = load_samples(rec)
    assert len(recorded) == 3
    again = llmdeck("monitor", "--watch", "--count", "3", "--interval", "0.01", "--replay", str(rec))
    assert [line for line in again.stdout.splitlines() if "[0]" in line] == lines


def test_watch_host_only_prints_reason_on_stderr() -> None:
    out = llmdeck("monitor", "--watch", "--count", "2", "--interval", "0.05")
    assert out.returncode == 0
    assert out.stdout.count("host | cpu") == 2
    assert "No GPU panel" in out.stderr or "[0]" in out.stdout


def test_errors_are_one_line(tmp_path: Path) -> None:
    for args, words in (
        (("monitor", "--replay", str(tmp_path / "nope.jsonl")), "does not exist"),
        (("monitor", "--once", "--record", str(tmp_path / "no" / "x.jsonl")), "does not exist"),
        (("monitor", "--json"), "--json goes with --once or --watch"),
        (("monitor", "--watch", "--interval", "0"), "> 0"),
    ):
        out = llmdeck(*args)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text("garbage\n{}\n")
    out = llmdeck("monitor", "--once", "--replay", str(bad))
    assert out.returncode == 2 and "bad.jsonl:1" in out.stderr and "Traceback" not in out.stderr


def test_plain_monitor_opens_the_tui(tmp_path: Path) -> None:
    result = run_command(["monitor", "--record", str(tmp_path / "r.jsonl")])
    assert isinstance(result, OpenTUI) and result.mode == "monitor"
    assert result.options == {"replay": None, "record": str(tmp_path / "r.jsonl")}
