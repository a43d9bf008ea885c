"""The files that make up a model's tokenizer, and carrying them from a base model to what is
made from it (a training run's adapter or model, a merged model).

Why: transformers' `save_pretrained` on a tokenizer loaded from `tokenizer.json` writes no
`tokenizer.model`. A SentencePiece model (Gemma, Llama 2, Mistral) then reaches llama.cpp's
converter without the file it needs to tell its tokenizer apart, and a GGUF made from it splits
every space off ("ThecapitalofFrance"). So every output made from a base model carries every
tokenizer file the base had; files the output already wrote (the trained chat template in
tokenizer_config.json, say) are kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "spiece.model",
)


def tokenizer_files(folder: Path) -> list[str]:
    """The tokenizer files present in `folder`, in TOKENIZER_FILES order."""
    folder = Path(folder)
    return [name for name in TOKENIZER_FILES if (folder / name).is_file()]


def copy_tokenizer_files(source: Path, target: Path, *, replace: bool = False) -> list[str]:
    """Copy `source`'s tokenizer files into `target`: those `target` lacks, or all with
    `replace`. Returns the names copied."""
    source, target = Path(source), Path(target)
    copied = []
    for name in tokenizer_files(source):
        if replace or not (target / name).exists():
            shutil.copyfile(source / name, target / name)
            copied.append(name)
    return copied
