"""The one check every GGUF input passes before anything else reads it.

A GGUF header is a list of claims: how many key/values and tensors follow, how long each string
and array is, where each tensor's bytes lie. gguf-py's GGUFReader believes them: a metadata array
claiming 2^63 items makes it loop without end, and a file cut in half is found out only when a
tensor fails to reshape, 20-36 s in. This module walks the header itself (GGUF spec v2/v3:
magic, version, u64 tensor count, u64 kv count, the key/values, the tensor infos, then the data
aligned to `general.alignment`) with `struct`, and refuses at once, naming the file, any count or
length larger than what is left of the file, and any tensor whose bytes would end past the end.
Array bodies are skipped, not built, so Gemma's 262,144 token strings take a fraction of a second.

Every reader of GGUF input (convert, quantize, estimate, eval, data, chat) calls `read_header`
first; `engine.convert.gguf_source.open_gguf` does it for everything built on gguf-py.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# GGUF value types (gguf spec): scalar struct formats; 8 = string, 9 = array.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
_MAX_DIMS = 4  # GGML_MAX_DIMS
_SMALL_ARRAY = 64  # arrays up to this length are kept (per-layer head counts...); longer ones only counted
# The smallest a key/value (key length, an empty key, type, a 1-byte value) and a tensor info
# (name length, n_dims, one dim, type, offset) can be, for bounding the counts.
_MIN_KV_BYTES = 8 + 4 + 1
_MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8


class GGUFHeaderError(ValueError):
    """The file is not a GGUF llmdeck can read; the text names the file and what is wrong."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # from the start of the data section
    n_bytes: int


@dataclass
class GGUFHeader:
    path: Path
    version: int
    file_size: int
    alignment: int = 32
    data_start: int = 0
    kv: dict[str, Any] = field(default_factory=dict)  # scalars, strings and small arrays
    array_len: dict[str, int] = field(default_factory=dict)  # every array's length
    tensors: list[TensorInfo] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        return str(self.kv.get("general.architecture", ""))


def _type_sizes() -> dict[int, tuple[int, int]]:
    """ggml type -> (block size in elements, bytes per block), from gguf-py's own table."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(t): sizes for t, sizes in GGML_QUANT_SIZES.items()}


class _Walker:
    def __init__(self, path: Path, buf: Any, size: int) -> None:
        self.path, self.buf, self.size, self.pos = path, buf, size, 0

    def fail(self, what: str) -> GGUFHeaderError:
        return GGUFHeaderError(f"{self.path} {what}")

    def left(self) -> int:
        return self.size - self.pos

    def unpack(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        if n > self.left():
            raise self.fail(f"is truncated: the header ends inside {what} (byte {self.pos} of {self.size})")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def count(self, what: str, min_item: int) -> int:
        """A u64 count of items each at least `min_item` bytes long, checked against the file."""
        n = self.unpack("<Q", what)
        if n * min_item > self.left():
            raise self.fail(
                f"is corrupted: {what} claims {n} items, more than the {self.left()} bytes left in the file can hold"
            )
        return n

    def string(self, what: str) -> str:
        n = self.unpack("<Q", f"the length of {what}")
        if n > self.left():
            raise self.fail(f"is corrupted: {what} claims {n} bytes, more than the {self.left()} left in the file")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int, what: str) -> Any:
        if vtype == _STRING:
            return self.string(what)
        fmt = _SCALARS.get(vtype)
        if fmt is None:
            raise self.fail(f"is corrupted: {what} has an unknown value type {vtype}")
        return self.unpack(fmt, what)

    def skip_array(self, itype: int, count: int, what: str) -> None:
        if itype == _STRING:
            # The hot loop of the walk (262,144 token strings in Gemma): locals, one unpack each.
            buf, size, pos, unpack = self.buf, self.size, self.pos, _U64.unpack_from
            for _ in range(count):
                if pos + 8 > size:
                    self.pos = pos
                    raise self.fail(f"is truncated: the header ends inside {what} (byte {pos} of {size})")
                (n,) = unpack(buf, pos)
                pos += 8 + n
                if pos > size:
                    raise self.fail(f"is corrupted: a string in {what} claims {n} bytes, more than the file holds")
            self.pos = pos
        elif itype in _SCALARS:
            self.pos += struct.calcsize(_SCALARS[itype]) * count  # count was bounded by the file size
        elif itype == _ARRAY:
            for _ in range(count):
                inner = self.unpack("<I", f"an item type in {what}")
                self.skip_array(inner, self.count(f"an array in {what}", 1), what)
        else:
            raise self.fail(f"is corrupted: {what} has an unknown item type {itype}")


def read_header(path: str | Path) -> GGUFHeader:
    """Walk and check the header of `path`; raise GGUFHeaderError (naming the file) for anything
    that is not a whole, consistent GGUF. Reads the header only: milliseconds for any size."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size < 24:
                raise GGUFHeaderError(f"{path} is not a GGUF file (only {size} bytes)")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _walk(path, buf, size)
    except FileNotFoundError:
        raise GGUFHeaderError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise GGUFHeaderError(f"{path} is a folder, not a .gguf file") from None
    except OSError as exc:
        raise GGUFHeaderError(f"{path} cannot be read ({exc.strerror or exc})") from None


def _walk(path: Path, buf: Any, size: int) -> GGUFHeader:
    w = _Walker(path, buf, size)
    if bytes(buf[:4]) != b"GGUF":
        raise GGUFHeaderError(f"{path} is not a GGUF file (it does not start with the GGUF magic)")
    w.pos = 4
    version = w.unpack("<I", "the version")
    if version not in (2, 3):
        raise w.fail(f"has GGUF version {version}; only versions 2 and 3 are supported")
    head = GGUFHeader(path=path, version=version, file_size=size)
    n_tensors = w.unpack("<Q", "the tensor count")
    n_kv = w.count("the metadata key/value count", _MIN_KV_BYTES)
    if n_tensors * _MIN_TENSOR_BYTES > w.left():
        raise w.fail(f"is corrupted: it claims {n_tensors} tensors, more than the file can describe")
    for index in range(n_kv):
        key = w.string(f"metadata key #{index}")
        vtype = w.unpack("<I", f"the type of {key!r}")
        if vtype == _ARRAY:
            itype = w.unpack("<I", f"the item type of {key!r}")
            min_item = 8 if itype == _STRING else struct.calcsize(_SCALARS.get(itype, "<B"))
            n = w.count(f"metadata array {key!r}", min_item)
            head.array_len[key] = n
            if n <= _SMALL_ARRAY and itype in _SCALARS:
                head.kv[key] = [w.value(itype, f"an item of {key!r}") for _ in range(n)]
            else:
                w.skip_array(itype, n, f"metadata array {key!r}")
        else:
            head.kv[key] = w.value(vtype, f"metadata value {key!r}")
    alignment = head.kv.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise w.fail(f"is corrupted: general.alignment is {alignment!r}, not a power of two")
    head.alignment = alignment
    sizes = _type_sizes()
    infos: list[tuple[str, tuple[int, ...], int, int]] = []
    for index in range(n_tensors):
        name = w.string(f"the name of tensor #{index}")
        n_dims = w.unpack("<I", f"the dimension count of tensor {name}")
        if not 1 <= n_dims <= _MAX_DIMS:
            raise w.fail(f"is corrupted: tensor {name} claims {n_dims} dimensions (1 to {_MAX_DIMS} allowed)")
        shape = tuple(w.unpack("<Q", f"the shape of tensor {name}") for _ in range(n_dims))
        ttype = w.unpack("<I", f"the type of tensor {name}")
        offset = w.unpack("<Q", f"the offset of tensor {name}")
        infos.append((name, shape, ttype, offset))
    head.data_start = -(-w.pos // alignment) * alignment
    for name, shape, ttype, offset in infos:
        if ttype not in sizes:
            raise w.fail(f"is corrupted or too new: tensor {name} has an unknown type {ttype}")
        block, type_size = sizes[ttype]
        n = math.prod(shape)
        if shape and shape[0] % block:
            raise w.fail(f"is corrupted: tensor {name} has {shape[0]} columns, not a multiple of its block {block}")
        if offset % alignment:
            raise w.fail(f"is corrupted: tensor {name} starts at offset {offset}, not aligned to {alignment}")
        n_bytes = n // block * type_size
        end = head.data_start + offset + n_bytes
        if end > size:
            raise w.fail(
                f"is truncated: tensor {name} ends at byte {end} but the file has only {size} bytes "
                "(an interrupted download or copy?)"
            )
        head.tensors.append(TensorInfo(name=name, shape=shape, ggml_type=ttype, offset=offset, n_bytes=n_bytes))
    return head
