"""Opening a GGUF with llama-cpp-python safely on this kind of machine.

Why this exists: on CPUs that advertise AMX (Sapphire Rapids and later, common in cloud VMs),
llama.cpp's AMX weight-repacking buffer (`ggml_backend_amx_mul_mat`) segfaults on the first
decode of a quantized model (Q8_0, Q4_K...) in llama-cpp-python 0.3.36 here, killing the whole
process. Turning off the "extra buffer types" (llama.cpp's `--no-repack`) avoids that path and
costs a little speed. `LLMDECK_LLAMA_REPACK=1` forces repacking on, `=0` forces it off.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


def repack_allowed() -> bool:
    value = os.environ.get("LLMDECK_LLAMA_REPACK")
    if value is not None:
        return value not in ("0", "false", "no", "")
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return "amx_int8" not in line.split()
    except OSError:
        pass
    return True


@contextlib.contextmanager
def _default_params_without_repack() -> Iterator[None]:
    import llama_cpp.llama_cpp as capi

    original = capi.llama_model_default_params

    def patched() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    capi.llama_model_default_params = patched
    try:
        yield
    finally:
        capi.llama_model_default_params = original


def load(path: Path, **kwargs: Any) -> Any:
    """`llama_cpp.Llama(model_path=path, **kwargs)`, without AMX repacking where it crashes."""
    from llama_cpp import Llama

    kwargs.setdefault("verbose", False)
    if repack_allowed():
        return Llama(model_path=str(path), **kwargs)
    with _LOCK, _default_params_without_repack():
        return Llama(model_path=str(path), **kwargs)
