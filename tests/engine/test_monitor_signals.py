"""Monitor's signal decision, on real processes with real signals (issue 14, item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from engine.monitor.signals import SignalRefused, inspect_target, send

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def start_time(pid: int) -> float:
    return psutil.Process(pid).create_time()


@pytest.fixture
def mine() -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(SLEEP)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def foreign() -> Iterator[tuple[int, subprocess.Popen | None]]:
    """A process of another user: as root a child run as `nobody`; otherwise pid 1 (root's),
    which such a test only inspects and never confirms a signal to."""
    if os.geteuid() == 0:
        proc = subprocess.Popen(["sleep", "60"], user=65534, group=65534)  # nobody may not run our python
        yield proc.pid, proc
        proc.kill()
        proc.wait()
    else:
        yield 1, None


def test_own_process_is_signalled_when_it_is_still_the_sampled_one(mine: subprocess.Popen) -> None:
    target = send(mine.pid, "TERM", start_time(mine.pid))
    assert not target.foreign
    assert mine.wait(10) == -15


def test_pid_now_naming_another_process_is_refused(mine: subprocess.Popen) -> None:
    sampled = start_time(mine.pid) - 30.0  # the row was sampled from an earlier process with this pid
    with pytest.raises(SignalRefused, match="different process"):
        send(mine.pid, "KILL", sampled)
    with pytest.raises(SignalRefused, match="start time .* was not known"):
        send(mine.pid, "KILL", None)
    assert mine.poll() is None


def test_exited_process_is_refused() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(proc.pid)
    proc.wait()
    with pytest.raises(SignalRefused, match="already exited"):
        send(proc.pid, "TERM", started)


def test_another_users_process_needs_the_second_confirmation(foreign: tuple[int, subprocess.Popen | None]) -> None:
    pid, proc = foreign
    target = inspect_target(pid, start_time(pid))
    assert target.foreign and target.owner != psutil.Process().username()
    with pytest.raises(SignalRefused, match=f"belongs to another user \\({target.owner}\\)"):
        send(pid, "KILL", start_time(pid))
    assert psutil.pid_exists(pid) and (proc is None or proc.poll() is None)
    if proc is not None:  # root: confirmed twice, it goes
        send(pid, "KILL", start_time(pid), other_user_confirmed=True)
        assert proc.wait(10) == -9
