"""Read dataset files record by record: JSONL, JSON, CSV/TSV, Parquet.

Every loader streams: JSONL and CSV are read a line at a time, Parquet a row batch at a time,
so a 1 GB JSONL never has to fit in RAM (let alone twice). A JSON document (an array or an
object holding one) is the exception: JSON has no record boundaries, so it is read whole, once;
use JSONL for big files.

Per-record trouble (a line that is not JSON) comes back as a `RawRecord` with `error` set so the
validator can report it with its line number; trouble with the whole file (missing, empty, not
UTF-8, unreadable Parquet, not JSON at all) raises `DataError` with a one-line reason.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data.problems import DataError

#: File types `open_source` understands.
FILE_TYPES: tuple[str, ...] = ("jsonl", "json", "csv", "tsv", "parquet")

_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",  # sniffed: many `.json` files are really JSONL
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_SNIFF_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read: `value` is the parsed object, or `error` says why it could not be."""

    record: int  # 1-based number of the record in the file
    line: int | None  # 1-based line the record starts on, when the file has lines
    value: Any = None
    error: str | None = None


class Source:
    """An opened dataset file. `records()` streams it again on every call (one pass per epoch)."""

    def __init__(self, path: Path, kind: str, size: int) -> None:
        self.path = path
        self.kind = kind
        self.size = size
        self.columns: list[str] | None = None  # CSV header / Parquet schema, once known
        self.done = 0  # progress of the current pass, in `unit`
        self.total: int | None = size
        self.unit = "bytes"

    @property
    def name(self) -> str:
        return self.path.name

    def records(self) -> Iterator[RawRecord]:
        self.done = 0
        reader = {
            "jsonl": self._jsonl,
            "json": self._json,
            "csv": self._csv,
            "tsv": self._csv,
            "parquet": self._parquet,
        }[self.kind]
        yield from reader()

    # -- JSONL ------------------------------------------------------------------------------
    def _jsonl(self) -> Iterator[RawRecord]:
        record = 0
        with open(self.path, "rb") as f:
            lineno = 0
            while True:
                raw = f.readline()
                if not raw:
                    break
                lineno += 1
                self.done = f.tell()
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{self.name}: not UTF-8 text (line {lineno}, byte {exc.start + 1}); "
                                    "convert it first, e.g. `iconv -f latin1 -t utf-8`") from None
                text = text.strip()
                if not text:
                    continue
                record += 1
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield RawRecord(record, lineno, error=f"bad JSON: {exc.msg} (column {exc.colno})")
                    continue
                yield RawRecord(record, lineno, value)

    # -- JSON document ----------------------------------------------------------------------
    def _json(self) -> Iterator[RawRecord]:
        text = _read_text(self.path)
        decoder = json.JSONDecoder()
        pos = _skip_ws(text, 0)
        if pos < len(text) and text[pos] == "{":
            # One object: a dataset wrapped in a key ({"data": [...]}) or a single record.
            try:
                doc, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise DataError(f"{self.name}: not valid JSON at line {exc.lineno} column {exc.colno}: "
                                f"{exc.msg}") from None
            if _skip_ws(text, end) != len(text):
                line = text.count("\n", 0, end) + 1
                raise DataError(f"{self.name}: not valid JSON: extra data after line {line} "
                                "(is it JSONL? rename it .jsonl)")
            items = _wrapped_list(doc) or [doc]
            self.total, self.unit = len(items), "records"
            for i, item in enumerate(items, 1):
                self.done = i
                yield RawRecord(i, None, item)
            return
        if pos >= len(text) or text[pos] != "[":
            line = text.count("\n", 0, pos) + 1
            raise DataError(f"{self.name}: not a JSON array or object (line {line}); expected [{{...}}, ...] or JSONL")
        # Walk the array element by element so each record keeps the line it starts on.
        self.total, self.unit = len(text), "chars"
        pos = _skip_ws(text, pos + 1)
        line, counted = 1, 0
        record = 0
        if pos < len(text) and text[pos] == "]":
            return
        while True:
            line += text.count("\n", counted, pos)
            counted = pos
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise DataError(f"{self.name}: not valid JSON at line {exc.lineno} column {exc.colno}: "
                                f"{exc.msg}") from None
            record += 1
            self.done = end
            yield RawRecord(record, line, value)
            pos = _skip_ws(text, end)
            if pos < len(text) and text[pos] == ",":
                pos = _skip_ws(text, pos + 1)
                continue
            if pos < len(text) and text[pos] == "]":
                if _skip_ws(text, pos + 1) != len(text):
                    raise DataError(f"{self.name}: not valid JSON: extra data after the array")
                return
            bad_line = text.count("\n", 0, pos) + 1
            raise DataError(f"{self.name}: not valid JSON at line {bad_line}: "
                            f"expected ',' or ']' after record {record}")

    # -- CSV / TSV --------------------------------------------------------------------------
    def _csv(self) -> Iterator[RawRecord]:
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        delimiter = "\t" if self.kind == "tsv" else ","
        with open(self.path, "rb") as raw:
            # Text layer over the buffered file: `raw.tell()` (read-ahead position) is progress.
            f = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(f, delimiter=delimiter)
            try:
                header = next(reader, None)
                if header is None:
                    return
                self.columns = [h.strip() for h in header]
                if not any(self.columns):
                    raise DataError(f"{self.name}: CSV has no usable columns (the header row is empty)")
                record = 0
                start = reader.line_num + 1
                for row in reader:
                    self.done = raw.tell()
                    if not any(cell.strip() for cell in row):
                        start = reader.line_num + 1
                        continue
                    record += 1
                    if len(row) > len(self.columns):
                        yield RawRecord(record, start,
                                        error=f"row has {len(row)} cells but the header has {len(self.columns)}")
                    else:
                        yield RawRecord(record, start, {k: v for k, v in zip(self.columns, row, strict=False) if k})
                    start = reader.line_num + 1
            except UnicodeDecodeError:
                raise DataError(f"{self.name}: not UTF-8 text (near line {reader.line_num + 1}); "
                                "convert it first, e.g. `iconv -f latin1 -t utf-8`") from None
            except csv.Error as exc:
                raise DataError(f"{self.name}: not readable as CSV at line {reader.line_num}: {exc}") from None

    # -- Parquet ----------------------------------------------------------------------------
    def _parquet(self) -> Iterator[RawRecord]:
        pf = _open_parquet(self.path)
        self.total, self.unit = pf.metadata.num_rows, "records"
        self.columns = list(pf.schema_arrow.names)
        record = 0
        try:
            for batch in pf.iter_batches(batch_size=512):
                for row in batch.to_pylist():
                    record += 1
                    self.done = record
                    yield RawRecord(record, None, row)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for corrupt pages
            raise DataError(f"{self.name}: cannot read Parquet at row {record + 1}: {_one_line(exc)}") from None


def open_source(path: str | os.PathLike[str], kind: str | None = None) -> Source:
    """Check the file is there, non-empty and of a kind we read; sniff JSON vs JSONL."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a directory; give a .jsonl, .json, .csv or .parquet file")
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError as exc:
        raise DataError(f"{p.name}: cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise DataError(f"{p.name}: the file is empty")
    if kind is not None and kind not in FILE_TYPES:
        raise DataError(f"{p.name}: unknown file type {kind!r}; use one of {', '.join(FILE_TYPES)}")
    if kind is None:
        kind = _EXTENSIONS.get(p.suffix.lower())
    if kind == "parquet" or (kind is None and head.startswith(b"PAR1")):
        source = Source(p, "parquet", size)
        _open_parquet(p)  # fail now, with the file's name, if pyarrow cannot read it
        return source
    text = _check_text_head(p.name, head, complete=len(head) == size)
    if not text.strip() and len(head) == size:
        raise DataError(f"{p.name}: the file is empty (only whitespace)")
    if kind in (None, "json", "jsonl"):
        kind = _sniff_json(p.name, text, kind)
    return Source(p, kind, size)


def _sniff_json(name: str, text: str, kind: str | None) -> str:
    stripped = text.lstrip()
    first = stripped[:1]
    if first == "[":
        return "json"
    if first == "{":
        first_line, _, rest = stripped.partition("\n")
        try:
            first = json.loads(first_line)
        except json.JSONDecodeError:
            return "json" if kind != "jsonl" else "jsonl"
        if kind != "jsonl" and not rest.strip() and _is_wrapper(first):
            return "json"  # {"data": [...]} on one line: a document, not one record
        return "jsonl"
    if kind == "jsonl":
        return "jsonl"  # lines that are not objects are reported one by one
    if kind == "json":
        raise DataError(f"{name}: not JSON (it starts with {stripped[:20]!r})")
    raise DataError(f"{name}: cannot tell the file type; expected .jsonl, .json, .csv, .tsv or .parquet")


def _wrapped_list(doc: Any) -> list[Any] | None:
    """The record list of a wrapper object like {"version": 1, "data": [{...}, ...]}."""
    if not isinstance(doc, dict) or len(doc) > 3:
        return None
    lists = [v for v in doc.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if len(lists) != 1:
        return None
    if any(("role" in x or "from" in x) for x in lists[0]):
        return None  # a conversation's turns ({"messages": [...]}) are one record, not a wrapper
    return lists[0]


def _is_wrapper(doc: Any) -> bool:
    return _wrapped_list(doc) is not None


def _check_text_head(name: str, head: bytes, *, complete: bool) -> str:
    """Decode the first bytes strictly so a non-UTF-8 file fails before any work starts."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{name}: the file is UTF-16, not UTF-8; convert it, e.g. `iconv -f utf-16 -t utf-8`")
    if b"\x00" in head:
        raise DataError(f"{name}: binary data, not UTF-8 text (a NUL byte in the first {len(head)} bytes)")
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        return decoder.decode(head, final=complete)
    except UnicodeDecodeError as exc:
        line = head.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{name}: not UTF-8 text (line {line}, byte {exc.start + 1}); "
                        "convert it first, e.g. `iconv -f latin1 -t utf-8`") from None


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path.name}: not UTF-8 text (line {line}); "
                        "convert it first, e.g. `iconv -f latin1 -t utf-8`") from None


def _open_parquet(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path.name}: reading Parquet needs pyarrow (`pip install pyarrow`)") from None
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - ArrowInvalid, OSError, ... all mean "unreadable"
        raise DataError(f"{path.name}: cannot read Parquet: {_one_line(exc)}") from None


def _skip_ws(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
