"""Writing HF safetensors shards + index while tensors stream in.

Tensors are buffered until the shard reaches `max_shard_bytes`, then that shard is written and
dropped from memory, so peak memory is one shard (default 2 GB), never the model. Shards get
their final `model-0000N-of-0000M` names only at the end, when M is known.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_SHARD_BYTES = 2 * 1024**3


def parse_size(text: str | int) -> int:
    """'5GB', '500MB', '2G' or a number of bytes."""
    if isinstance(text, int):
        return text
    value = str(text).strip().upper().removesuffix("B").removesuffix("I")
    factor = 1
    for suffix, mult in (("K", 1024), ("M", 1024**2), ("G", 1024**3), ("T", 1024**4)):
        if value.endswith(suffix):
            value, factor = value[:-1], mult
            break
    try:
        size = int(float(value) * factor)
    except ValueError:
        raise ValueError(f"{text!r} is not a size (examples: 5GB, 500MB)") from None
    if size <= 0:
        raise ValueError(f"shard size must be positive, not {text!r}")
    return size


class ShardWriter:
    def __init__(self, folder: Path, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
        self.folder = Path(folder)
        self.max_shard_bytes = max_shard_bytes
        self._pending: dict[str, Any] = {}
        self._pending_bytes = 0
        self._written: list[tuple[Path, list[str]]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: Any) -> None:
        nbytes = tensor.numel() * tensor.element_size()
        if self._pending and self._pending_bytes + nbytes > self.max_shard_bytes:
            self.flush()
        self._pending[name] = tensor.contiguous()
        self._pending_bytes += nbytes
        self.total_bytes += nbytes

    def flush(self) -> None:
        if not self._pending:
            return
        from safetensors.torch import save_file

        path = self.folder / f".shard-{len(self._written):05d}.safetensors"
        save_file(self._pending, str(path), metadata={"format": "pt"})
        self._written.append((path, list(self._pending)))
        self._pending = {}
        self._pending_bytes = 0

    def finish(self) -> list[str]:
        """Name the shards and write the index (when there is more than one). Returns file names."""
        self.flush()
        count = len(self._written)
        if count == 1:
            final = self.folder / "model.safetensors"
            os.replace(self._written[0][0], final)
            return [final.name]
        weight_map: dict[str, str] = {}
        names = []
        for i, (path, tensors) in enumerate(self._written, start=1):
            final = self.folder / f"model-{i:05d}-of-{count:05d}.safetensors"
            os.replace(path, final)
            names.append(final.name)
            for tensor in tensors:
                weight_map[tensor] = final.name
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
        (self.folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        return names
