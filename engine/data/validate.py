"""Check every record and say exactly what is wrong where.

`Validator` streams a `Source`, normalizes each record with a `FormatSpec`, and yields
`(Location, Example)` for the good ones. Bad ones become `Problem`s (file + line/record +
reason): counted by kind, the first `keep` kept for display. Strict mode raises a `DataError`
at the first problem instead, so a pipeline can refuse a dataset with any defect.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping

from engine.data.formats import Example, FormatSpec, detect_format, resolve_format, undetected_message
from engine.data.loaders import Source
from engine.data.problems import DataError, Location, Problem

#: How many records `choose_format` looks at before giving up.
DETECT_SAMPLES = 50


def choose_format(source: Source, name: str | None = None, mapping: Mapping[str, str] | None = None) -> FormatSpec:
    """The user's format, or the one detected from the first records (DataError if none fits)."""
    mapping = dict(mapping or {})
    chosen = resolve_format(name)
    if chosen is not None:
        return FormatSpec(chosen, mapping, detected=False)
    samples: list[object] = []
    first_fields: list[str] | None = None
    bad = 0
    records = source.records()
    try:
        for raw in records:
            if raw.error is None:
                samples.append(raw.value)
                if first_fields is None and isinstance(raw.value, dict):
                    first_fields = list(raw.value)
            else:
                bad += 1
            if len(samples) >= DETECT_SAMPLES or raw.record >= DETECT_SAMPLES * 2:
                break
    finally:
        records.close()
    tabular = source.columns is not None  # CSV header / Parquet schema: the columns define the format
    if not samples and tabular:
        samples = [dict.fromkeys(source.columns or [])]
    if not samples:
        if bad:
            raise DataError(f"{source.name}: no readable records (the first {bad} are not valid JSON)")
        raise DataError(f"{source.name}: the file has no records")
    detected = detect_format(samples, mapping)
    if detected is None:
        raise DataError(undetected_message(source.name, source.kind, source.columns if tabular else first_fields))
    return FormatSpec(detected, mapping, detected=True)


class Validator:
    """Iterate a source's valid examples; collect (or, strict, raise on) the problems."""

    def __init__(
        self,
        source: Source,
        fmt: FormatSpec,
        *,
        strict: bool = False,
        dedupe: bool = True,
        keep: int = 1000,
    ) -> None:
        self.source = source
        self.format = fmt
        self.strict = strict
        self.dedupe = dedupe
        self.keep = keep
        self.reset()

    def reset(self) -> None:
        self.problems: list[Problem] = []
        self.counts: Counter[str] = Counter()
        self.records = 0
        self.valid = 0
        # 8-byte digest -> where first seen (line, or -record when the file has no lines):
        # about 100 bytes a record, so a million records cost ~100 MB, never the text itself.
        self._seen: dict[bytes, int] = {}

    @property
    def problem_total(self) -> int:
        return sum(self.counts.values())

    def report(self, where: Location, kind: str, reason: str) -> None:
        """Record a problem; in strict mode stop the whole pass with it."""
        problem = Problem(where, kind, reason)
        self.counts[kind] += 1
        if self.strict:
            raise DataError(f"{problem} (--strict stops at the first problem)")
        if len(self.problems) < self.keep:
            self.problems.append(problem)

    def __iter__(self) -> Iterator[tuple[Location, Example]]:
        from engine.data.problems import RecordProblem

        self.reset()
        name = self.source.name
        for raw in self.source.records():
            self.records += 1
            where = Location(name, raw.record, raw.line)
            if raw.error is not None:
                self.report(where, "bad_json", raw.error)
                continue
            try:
                example = self.format.normalize(raw.value)
            except RecordProblem as exc:
                self.report(where, exc.kind, exc.reason)
                continue
            if self.dedupe:
                digest = hashlib.blake2b(example.key(), digest_size=8).digest()
                first = self._seen.get(digest)
                if first is not None:
                    seen = f"line {first}" if first > 0 else f"record {-first}"
                    self.report(where, "duplicate", f"duplicate of {seen}")
                    continue
                self._seen[digest] = raw.line if raw.line is not None else -raw.record
            self.valid += 1
            yield where, example
        if self.records == 0:
            raise DataError(f"{name}: the file has no records")
