"""Checking model weights on disk before a library reads them, so a bad file is named.

The libraries that load weights report a damaged file in their own words and without its name
("SafetensorError: Error while deserializing header: incomplete metadata", "cannot reshape array
of size ..."), sometimes only after tens of seconds. Everything that opens a model given by the
user (chat, eval, bench, estimate, data, train, convert) calls `check_model_files` first: a GGUF
goes through `engine.gguf_header.read_header`; a safetensors file's header (8-byte length + JSON,
per the safetensors format) must parse and every tensor's bytes must lie inside the file.
Reads headers only: milliseconds, whatever the model's size.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

_MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit on the JSON header


class ModelFileError(ValueError):
    """A weights file that cannot be used; the text names the file and says what is wrong."""


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of one .safetensors file (tensor name -> dtype, shape, data_offsets), with
    `__data_start__` added; raises ModelFileError for a truncated or foreign file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise ModelFileError(f"{path} is not a safetensors file (only {size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n <= 0 or n > min(size - 8, _MAX_HEADER):
                raise ModelFileError(
                    f"{path} is not a safetensors file or is truncated (header length {n}, file {size} bytes)"
                )
            raw = handle.read(n)
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise ModelFileError(f"{path} has a corrupted safetensors header") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path} has a corrupted safetensors header")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{path} has a corrupted safetensors header (tensor {name!r})") from None
        if not 0 <= begin <= stop:
            raise ModelFileError(f"{path} has a corrupted safetensors header (tensor {name!r})")
        end = max(end, stop)
    if 8 + n + end > size:
        raise ModelFileError(
            f"{path} is truncated: its header needs {8 + n + end} bytes but the file has {size}; "
            "copy or download it again"
        )
    header["__data_start__"] = 8 + n
    return header


def safetensors_files(folder: Path) -> list[Path]:
    """The safetensors files of an HF model folder (from its index when it has one)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_bytes()).get("weight_map") or {}
        except (OSError, ValueError, AttributeError):
            raise ModelFileError(f"{index} is not a readable safetensors index") from None
        files = sorted({folder / str(name) for name in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ModelFileError(f"{index} lists {', '.join(missing[:3])} but they are missing from {folder}")
        return files
    return sorted(folder.glob("*.safetensors"))


def check_model_files(path: str | Path) -> None:
    """Refuse, naming the file, a GGUF or an HF folder whose weights are truncated or corrupt.
    A path that is neither (a preset name, a server model) passes: its own loader reports it."""
    from engine.gguf_header import GGUFHeaderError, read_header

    path = Path(path).expanduser()
    if path.is_dir():
        for file in safetensors_files(path):
            read_safetensors_header(file)
        return
    if not path.is_file():
        return
    if path.suffix.lower() == ".safetensors":
        read_safetensors_header(path)
        return
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic == b"GGUF" or path.suffix.lower() == ".gguf":
        try:
            read_header(path)
        except GGUFHeaderError as exc:  # one error type for callers of this module
            raise ModelFileError(str(exc)) from None
