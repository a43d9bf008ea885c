"""Shared fixtures for the evaluate tests: a tiny random Llama (HF folder) and its f32 GGUF,
built once per test process, plus the short English text in tests/fixtures_eval/."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

PROSE = Path(__file__).resolve().parent.parent / "fixtures_eval" / "prose.txt"


@lru_cache(maxsize=1)
def tiny_hf() -> Path:
    from tests.helpers.tiny_model import build_tiny_llama

    folder = Path(tempfile.mkdtemp(prefix="llmdeck-eval-tiny-"))
    atexit.register(shutil.rmtree, folder, True)
    # llama3 style: the tokenizer adds BOS, like most real models (and llama.cpp's GGUF of it)
    return build_tiny_llama(folder / "tiny", style="llama3")


@lru_cache(maxsize=1)
def tiny_gguf() -> Path:
    from engine.convert.hf_to_gguf import convert
    from engine.jobs import JobContext

    source = tiny_hf()
    out = source.parent / "tiny-f32.gguf"
    convert(source, out, JobContext(lambda _e: None), outtype="f32")
    return out
