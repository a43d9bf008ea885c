"""Load a tokenizer from a local model or tokenizer folder (never the hub).

`--model M` in `llmdeck data` takes the folder of an HF model (config + weights + tokenizer) or
of a tokenizer alone, or a `.gguf` file (transformers rebuilds the tokenizer from its metadata).
A path that is not there, or holds no tokenizer, is a one-line `DataError`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from engine.data.problems import DataError

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")
_cache: dict[tuple[str, float], Any] = {}
_lock = threading.Lock()


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """A transformers tokenizer for a local folder or .gguf file; cached per path and mtime."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such model or tokenizer folder (llmdeck reads local paths only, never the hub)")
    if p.is_file() and p.suffix.lower() != ".gguf":
        raise DataError(f"{p.name}: give the folder that holds the tokenizer, not a file inside it")
    if p.is_dir() and not any((p / name).exists() for name in _TOKENIZER_FILES):
        raise DataError(f"{p}: no tokenizer here (expected tokenizer.json or tokenizer_config.json)")
    if p.is_file():
        from engine.model_files import ModelFileError, check_model_files

        try:
            check_model_files(p)  # a crafted GGUF header would make transformers' reader loop
        except ModelFileError as exc:
            raise DataError(str(exc)) from None
    key = (str(p.resolve()), p.stat().st_mtime)
    with _lock:
        if key in _cache:
            return _cache[key]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from engine.transformers_compat import gguf_add_bos, match_gguf_bos

        hf_logging.set_verbosity_error()
        if p.is_file():
            tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name, local_files_only=True)
            match_gguf_bos(tok, gguf_add_bos(p))
        else:
            tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means "this is not a usable tokenizer"
        text = str(exc).strip().splitlines()
        culprit = _unreadable_json(p) if p.is_dir() else None
        if culprit:
            raise DataError(culprit) from None
        reason = text[0] if text else type(exc).__name__
        raise DataError(f"{p.absolute()}: cannot load the tokenizer: {reason}") from None
    with _lock:
        if len(_cache) >= 4:
            _cache.pop(next(iter(_cache)))
        _cache[key] = tok
    return tok


def _unreadable_json(folder: Path) -> str | None:
    """Which JSON file of a tokenizer folder is damaged, in words; None when they all parse.
    transformers reports a JSON error without the file's name."""
    import json

    for name in _TOKENIZER_FILES:
        file = folder / name
        if file.suffix != ".json" or not file.is_file():
            continue
        try:
            json.loads(file.read_bytes())
        except (OSError, ValueError) as exc:
            return f"{file.absolute()}: not valid JSON ({exc}); copy or download it again"
    return None


def tokenizer_name(tokenizer: Any) -> str:
    return Path(str(getattr(tokenizer, "name_or_path", "") or "tokenizer")).name
