"""Opening a GGUF for reading: a one-line reason for a file that is not GGUF, truncated, or
lying about its sizes (engine.gguf_header), before any conversion starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError


def open_gguf(path: Path) -> Any:
    """A `gguf.GGUFReader` (memory-mapped; reads no tensor data yet), opened only after
    engine.gguf_header has checked every count, length and tensor extent against the file:
    gguf-py believes the header and would loop for ever on a crafted array count."""
    import gguf

    from engine.gguf_header import GGUFHeaderError, read_header

    path = Path(path)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        hint = f" (it holds {ggufs[0].name})" if ggufs else ""
        raise ConvertError(f"{path} is a folder; give the .gguf file itself{hint}")
    try:
        read_header(path)
    except GGUFHeaderError as exc:
        raise ConvertError(str(exc)) from None
    try:
        return gguf.GGUFReader(path)
    except Exception as exc:  # noqa: BLE001 - gguf raises ValueError/IndexError/struct errors
        raise ConvertError(f"{path} is truncated or corrupted ({type(exc).__name__}: {str(exc)[:120]})") from None


def field(reader: Any, key: str, default: Any = None) -> Any:
    item = reader.fields.get(key)
    if item is None:
        return default
    try:
        return item.contents()
    except Exception:  # noqa: BLE001 - an unreadable field is treated as absent
        return default


def architecture(reader: Any) -> str:
    return str(field(reader, "general.architecture", ""))


def file_type_name(reader: Any) -> str:
    import gguf

    value = field(reader, "general.file_type")
    if value is None:
        return ""
    try:
        return gguf.LlamaFileType(int(value)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return str(value)


def is_float_file(reader: Any) -> bool:
    import gguf

    T = gguf.GGMLQuantizationType
    return all(t.tensor_type in (T.F32, T.F16, T.BF16) for t in reader.tensors)
