"""The terminal driver llmdeck runs on (Linux, macOS): Textual's own, with a quicker close.

Textual's `LinuxDriver.disable_input` joins its input thread, which polls stdin with a 0.1 s
`select` and, once told to stop, `select`s 0.1 s more on nothing: 0.1-0.2 s of every quit spent
waiting (cProfile of the quit in bench/latency.py: `join` under `stop_application_mode`, 0.2 s
of 0.45 s). When the app is closing (`LLMDeckApp.closing`) nothing reads keys after this, so
the thread is told to stop and left to end by itself; everything else the driver does on close
(mouse off, SIGWINCH back, pending input flushed, the terminal restored) happens as before. A
suspend (the app resumes later) still joins: the next input thread must be the only reader.
"""

from __future__ import annotations

import contextlib
import signal
import termios
import threading

from textual.drivers.linux_driver import LinuxDriver


class ClosingLinuxDriver(LinuxDriver):
    def disable_input(self) -> None:
        if not getattr(self._app, "closing", False):
            super().disable_input()
            return
        if self.exit_event.is_set():
            return  # already told (Textual calls this twice on the way out)
        # Textual's disable_input less the join, and the event stays set, which ends the thread.
        if threading.current_thread() is threading.main_thread():  # where Python takes signal handlers
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
        self._disable_mouse_support()
        self.exit_event.set()
        with contextlib.suppress(termios.error):  # not a terminal
            termios.tcflush(self.fileno, termios.TCIFLUSH)
