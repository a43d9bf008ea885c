"""What can be wrong with a dataset, and where.

Two levels: a `DataError` means the whole file cannot be used (not UTF-8, empty, unreadable
Parquet, undetectable format) and is a one-line message naming the file; a `Problem` is one bad
record (file + line or record number + reason), which the default mode skips and counts and
`--strict` turns into a `DataError` at the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.jobs import JobError

#: Problem kinds, in the order reports list them.
PROBLEM_KINDS: tuple[str, ...] = (
    "bad_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "empty_turn",
    "unknown_role",
    "duplicate",
    "template",
)


class DataError(JobError):
    """The dataset (or the tokenizer) cannot be used at all; the text names the file and why."""


class RecordProblem(Exception):
    """Raised by normalizing/rendering code for one record; becomes a `Problem` with a location."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Location:
    """Where a record is: `line` for line-based files (JSONL, CSV, JSON arrays), `record` always."""

    file: str
    record: int
    line: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        return f"{self.file} record {self.record}"

    @property
    def short(self) -> str:
        """Without the file name: `line 12` or `record 3`."""
        return f"line {self.line}" if self.line is not None else f"record {self.record}"


@dataclass(frozen=True, slots=True)
class Problem:
    where: Location
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.where.file,
            "line": self.where.line,
            "record": self.where.record,
            "kind": self.kind,
            "reason": self.reason,
        }
