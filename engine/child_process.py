"""Child processes that die with the worker that started them.

A run's worker may start helpers (llama.cpp's quantizer, vLLM, `accelerate launch`). If the
worker is killed with SIGKILL (the OOM killer, `kill -9`), nothing runs in it to stop them, and a
quantizer would go on filling a temporary file nobody will ever rename or remove.

Why PR_SET_PDEATHSIG rather than the worker's process group: `runs cancel --force` already kills
the whole group (the worker is a session leader and its children share its group), but the OOM
killer and `kill -9 PID` kill one process; only the kernel's parent-death signal reaches the
children then. Linux delivers it when the *thread* that started the child ends, so start these
children from the job's own thread (the worker runs its job in its main thread). On systems
without prctl (macOS) the preexec function is None and only the process group applies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen that makes the child get SIGKILL when this process
    (more exactly, the calling thread) dies; None where the platform has no such signal."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    parent = os.getpid()

    def preexec() -> None:
        # Runs in the child between fork and exec: a C call and two syscalls, nothing that
        # takes a lock another thread of the parent might have held at the fork.
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec
