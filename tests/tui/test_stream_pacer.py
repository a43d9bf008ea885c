"""The draw pacing for streamed answers, on a scripted CPU clock."""

from __future__ import annotations

import time

import pytest

from tui.stream_pacer import MAX_INTERVAL, StreamPacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_model_not_sharing_the_cpu_always_gets_the_configured_interval():
    clock = Clock()
    pacer = StreamPacer(0.05, None, cpu_clock=clock)
    for spent in (0.0, 0.02, 0.2):
        clock.now += spent
        assert pacer.drew() == 0.05


def test_draws_are_spaced_to_keep_the_ui_thread_within_its_share():
    clock = Clock()
    pacer = StreamPacer(0.05, 4.0, cpu_clock=clock)
    clock.now = 5.0  # mounting the answer before the first draw is not counted
    assert pacer.drew() == 0.05
    clock.now += 0.006  # 6 ms of UI work per cycle at 4% of a core -> 150 ms apart
    assert pacer.drew() == pytest.approx(0.15)
    for _ in range(30):  # steady state stays there
        clock.now += 0.006
        interval = pacer.drew()
    assert interval == pytest.approx(0.15)


def test_interval_follows_the_cost_smoothly_within_bounds():
    clock = Clock()
    pacer = StreamPacer(0.05, 4.0, cpu_clock=clock)
    pacer.drew()
    clock.now += 0.001  # cheap draws: never closer than the configured interval
    assert pacer.drew() == 0.05
    clock.now += 0.1  # one very expensive cycle moves the interval, smoothed, and capped
    first = pacer.drew()
    assert 0.05 < first <= MAX_INTERVAL
    for _ in range(20):
        clock.now += 0.1
        last = pacer.drew()
    assert last == MAX_INTERVAL
    for _ in range(40):  # and it comes back down when drawing gets cheap again
        clock.now += 0.002
        last = pacer.drew()
    assert last == pytest.approx(0.05, abs=1e-3)


def test_default_clock_is_this_threads_cpu_time():
    pacer = StreamPacer(0.01, 50.0)
    pacer.drew()
    end = time.thread_time() + 0.03
    while time.thread_time() < end:  # burn 30 ms of this thread's CPU
        pass
    assert pacer.drew() == pytest.approx(0.06, rel=0.5)
