"""Opening a GGUF for reading: a one-line reason for a file that is not GGUF, truncated, or
lying about its sizes (engine.gguf_header), before any conversion starts.

Two ways in. `read_gguf_header` walks the header only (a fraction of a second for any size):
what a pre-flight, a tensor count or a file type needs. `open_gguf` builds gguf-py's
GGUFReader, which turns every metadata item into numpy views: for a vocabulary of 262,144
tokens that is 10-15 s on an idle 2-core box and over a minute on a loaded one, so only the
work that reads tensor data or the whole vocabulary opens it. The helpers below take either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError
from engine.gguf_header import GGUFHeader


def read_gguf_header(path: Path) -> GGUFHeader:
    """The checked header of a GGUF (engine.gguf_header), or ConvertError naming the file."""
    from engine.gguf_header import GGUFHeaderError, read_header

    path = Path(path)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        hint = f" (it holds {ggufs[0].name})" if ggufs else ""
        raise ConvertError(f"{path} is a folder; give the .gguf file itself{hint}")
    try:
        return read_header(path)
    except GGUFHeaderError as exc:
        raise ConvertError(str(exc)) from None


def open_gguf(path: Path) -> Any:
    """A `gguf.GGUFReader` (memory-mapped; reads no tensor data yet), opened only after
    engine.gguf_header has checked every count, length and tensor extent against the file:
    gguf-py believes the header and would loop for ever on a crafted array count."""
    import gguf

    path = Path(path)
    read_gguf_header(path)
    try:
        return gguf.GGUFReader(path)
    except Exception as exc:  # noqa: BLE001 - gguf raises ValueError/IndexError/struct errors
        raise ConvertError(f"{path} is truncated or corrupted ({type(exc).__name__}: {str(exc)[:120]})") from None


def field(source: Any, key: str, default: Any = None) -> Any:
    """A metadata value from a GGUFHeader (scalars, strings, arrays of up to 64 items) or a
    GGUFReader (anything)."""
    if isinstance(source, GGUFHeader):
        return source.kv.get(key, default)
    item = source.fields.get(key)
    if item is None:
        return default
    try:
        return item.contents()
    except Exception:  # noqa: BLE001 - an unreadable field is treated as absent
        return default


def architecture(source: Any) -> str:
    return str(field(source, "general.architecture", ""))


def file_type_name(source: Any) -> str:
    import gguf

    value = field(source, "general.file_type")
    if value is None:
        return ""
    try:
        return gguf.LlamaFileType(int(value)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return str(value)


def is_float_file(source: Any) -> bool:
    import gguf

    T = gguf.GGMLQuantizationType
    floats = (T.F32, T.F16, T.BF16)
    if isinstance(source, GGUFHeader):
        return all(t.ggml_type in floats for t in source.tensors)
    return all(t.tensor_type in floats for t in source.tensors)
