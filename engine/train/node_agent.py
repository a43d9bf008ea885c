"""The process an SSH node runs: `python -m engine.train.node_agent WORK_DIR NODE -- CMD...`.

It starts CMD (the node's `accelerate launch`) in a process group of its own and ties that
group's life to the ssh session that started it. Without a terminal (`ssh -T`), sshd does not
signal a command whose client went away, so a launcher that dies or is cancelled would leave
the node training on its own. The agent stops the group (SIGTERM, then SIGKILL) when its stdin
closes (the ssh session ended) or when it is signalled, records the group id in the node's
record so the launcher can also stop it over a new ssh connection, and exits with CMD's status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from engine.train.rank_status import record_node

GRACE_S = 15.0


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") != 2:
        print("usage: python -m engine.train.node_agent WORK_DIR NODE -- CMD...", file=sys.stderr)
        return 2
    work_dir, node, cmd = Path(argv[0]), argv[1], argv[3:]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    record_node(work_dir, node, by="agent", agent_pid=os.getpid(), pgid=proc.pid, host=socket.gethostname())
    stopping = threading.Event()

    def stop(*_: object) -> None:  # a signal handler, and the stdin thread's callback
        if stopping.is_set():
            return
        stopping.set()
        threading.Thread(target=_stop_group, args=(proc,), daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    code = proc.wait()
    return code if code >= 0 else 128 - code


def _watch_stdin(stop: Callable[[], None]) -> None:
    """Block until the launcher closes our stdin (or its ssh session ends), then stop. Reads the
    file descriptor itself: a thread blocked in sys.stdin's buffered reader makes the interpreter
    abort at exit ("could not acquire lock for <stdin>")."""
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    stop()


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # not sys.exit: the stdin thread is still blocked in read()
