"""Opening a GGUF with llama-cpp-python safely, shared by chat, serve, convert and evaluate.

Why this exists: a llama.cpp built on a CPU that advertises AMX (Sapphire Rapids and later) uses
AMX tiles and weight repacking ("extra buffer types") for quantized matmuls. Inside a VM whose
hypervisor does not really enable the tile state, the first `ldtilecfg` kills the whole process
(seen on Firecracker VMs: a segfault in `ggml_backend_amx_mul_mat` on the first decode of a
Q4_K/Q8_0 model with llama-cpp-python 0.3.36). llama.cpp's `--no-repack` avoids that path at a
small cost in speed; `Llama()` does not expose it, so it is set on the default model params for
the duration of one load. `LLMDECK_LLAMA_REPACK=1` forces the extra buffers on, `=0` off.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def extra_buffers_safe() -> bool:
    """Whether llama.cpp's extra CPU buffer types (AMX tiles, weight repacking) can be used."""
    forced = os.environ.get("LLMDECK_LLAMA_REPACK")
    if forced in ("0", "1"):
        return forced == "1"
    flags = _cpu_flags()
    if "amx_tile" not in flags and "amx_int8" not in flags:
        return True
    if "hypervisor" not in flags:
        return True  # bare metal: the kernel enables the tile state
    try:
        import llama_cpp

        info = llama_cpp.llama_print_system_info().decode(errors="replace")
    except Exception:  # noqa: BLE001 - an unknown build: be safe
        return False
    return "AMX" not in info


@contextlib.contextmanager
def default_params_without_extra_buffers() -> Iterator[None]:
    """Make `llama_model_default_params()` return `use_extra_bufts = False` while active.

    Serialised with a lock: the patch is process-wide, and two loads at once must not restore
    each other's original.
    """
    import llama_cpp
    import llama_cpp.llama as llama_module

    with _LOCK:
        original = llama_cpp.llama_model_default_params

        def patched() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        llama_module.llama_cpp.llama_model_default_params = patched
        try:
            yield
        finally:
            llama_module.llama_cpp.llama_model_default_params = original


_LOG_CALLBACK: Any = None


def quiet_logs() -> None:
    """Route llama.cpp's own log lines to Python logging instead of the terminal's stderr,
    where they would tear through the TUI (e.g. the 'using full-size SWA cache' warning)."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import ctypes
    import logging

    import llama_cpp

    log = logging.getLogger("llmdeck.llama_cpp")

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        log.debug(text.decode("utf-8", errors="replace").rstrip())

    _LOG_CALLBACK = callback  # keep a reference: C holds only the pointer
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def load(path: Path | str, **kwargs: Any) -> Any:
    """`llama_cpp.Llama(model_path=path, **kwargs)`, without the extra buffers where they crash."""
    from llama_cpp import Llama

    kwargs.setdefault("verbose", False)
    if extra_buffers_safe():
        return Llama(model_path=str(path), **kwargs)
    with default_params_without_extra_buffers():
        return Llama(model_path=str(path), **kwargs)
