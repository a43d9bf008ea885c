"""Whether Monitor may signal a GPU process, and sending the signal safely.

Two dangers, both worse as root (who may signal anyone): the row the user confirmed may name a
process that has since exited and whose pid now belongs to something else, and the process may
be another user's job. So a signal goes only to the process that was sampled (same pid *and*
start time, like engine.runs' `_pid_identity`), and another user's process needs a second,
explicit confirmation that names its owner. Root's permission to do it is not taken as intent.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

SIGNALS: dict[str, signal.Signals] = {"TERM": signal.SIGTERM, "KILL": signal.SIGKILL}
# psutil's create_time has a resolution of a clock tick (1/100 s) and is rounded differently
# between calls on some kernels; a reused pid starts at a new time, far more than this apart.
_SAME_START_S = 0.05


class SignalRefused(Exception):
    """The signal was not sent; the text says why and what the user can do."""


@dataclass(frozen=True)
class SignalTarget:
    """What is known, right now, about the process a row names."""

    pid: int
    started: float
    owner: str
    uid: int

    @property
    def foreign(self) -> bool:
        """Owned by another user than the one running llmdeck (root's jobs are foreign to a
        user; everyone's are foreign to root except root's own)."""
        return self.uid != os.geteuid()


def inspect_target(pid: int, sampled_start: float | None) -> SignalTarget:
    """The live process `pid`, checked to be the one sampled at `sampled_start` (its start time
    when the row was sampled). Raises SignalRefused when it has exited or the pid was reused,
    or when the sample has no start time to check against."""
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            started = proc.create_time()
            uid = proc.uids().real
            try:
                owner = proc.username()
            except (KeyError, psutil.AccessDenied):  # a uid with no passwd entry
                owner = str(uid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                raise SignalRefused(f"pid {pid} has already exited")
    except (psutil.NoSuchProcess, ProcessLookupError):
        raise SignalRefused(f"pid {pid} has already exited") from None
    except psutil.AccessDenied:
        raise SignalRefused(f"pid {pid} cannot be inspected (access denied); no signal sent") from None
    if sampled_start is None:
        raise SignalRefused(f"the start time of pid {pid} was not known when it was listed; wait for the next sample")
    if abs(started - sampled_start) > _SAME_START_S:
        raise SignalRefused(f"pid {pid} is now a different process (the one listed has exited); no signal sent")
    return SignalTarget(pid=pid, started=started, owner=owner, uid=uid)


def send(pid: int, name: str, sampled_start: float | None, *, other_user_confirmed: bool = False) -> SignalTarget:
    """Send SIG`name` to `pid` if it is still the sampled process, and (for another user's
    process) only with `other_user_confirmed`. The identity is checked again right before the
    signal, so a confirmation dialog left open while the process exits cannot hit a successor.
    Raises SignalRefused with the reason; returns the target on success."""
    if name not in SIGNALS:
        raise SignalRefused(f"unknown signal {name!r}; one of {', '.join(SIGNALS)}")
    try:
        # A pidfd pins the process found now: checked below, it is the one signalled, even if
        # the pid is reused in between (Linux 5.3+; elsewhere the check is a moment earlier).
        pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    except ProcessLookupError:
        raise SignalRefused(f"pid {pid} has already exited") from None
    except OSError:
        pidfd = None
    try:
        target = inspect_target(pid, sampled_start)
        if target.foreign and not other_user_confirmed:
            raise SignalRefused(
                f"pid {pid} belongs to another user ({target.owner}); confirm that you mean to signal it"
            )
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, SIGNALS[name])
            else:
                os.kill(pid, SIGNALS[name])
        except ProcessLookupError:
            raise SignalRefused(f"pid {pid} has already exited") from None
        except PermissionError:
            raise SignalRefused(
                f"not allowed to signal pid {pid} (owned by {target.owner}); run `sudo kill -{name} {pid}` if you must"
            ) from None
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return target
