"""The public API the training area uses: validated, templated, tokenized examples.

    from engine.data.dataset import DataSpec, prepare
    data = prepare(DataSpec("chat.jsonl", max_seq_len=2048, policy="pack"), tokenizer)
    for row in data.examples(ctx):      # TrainExample: input_ids, labels (-100 = masked),
        ...                             # position_ids (restart per example), seq_lengths
    data.stats.to_dict()                # what was read, skipped, dropped, cut, packed
    collate = make_collator(padding_free=True)   # from engine.data.pack

Every call to `examples()` streams the file again (one pass per epoch; nothing is held but the
packing window and one 8-byte digest per record for duplicate detection) and refills `stats`
and `problems` for that pass. `prepare` fails early, with one line naming the file, if the file
cannot be used at all (missing, empty, not UTF-8, unreadable, format not detected).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.data.formats import FormatSpec, parse_mapping
from engine.data.loaders import Source, open_source
from engine.data.pack import TrainExample, count_packs, pack_examples, single
from engine.data.problems import DataError, Location, Problem, RecordProblem
from engine.data.render import LOSS_ON, Rendered, Renderer
from engine.data.stats import POLICIES, DataStats
from engine.data.validate import Validator, choose_format


@dataclass(frozen=True)
class DataSpec:
    """What to read and how to turn it into training rows (JSON-able: it goes in run specs)."""

    path: str
    format: str | None = None  # None: detect
    mapping: Mapping[str, str] = field(default_factory=dict)  # canonical field -> file's field
    strict: bool = False  # stop at the first bad record
    dedupe: bool = True  # skip exact duplicates (reported as problems)
    loss_on: str = "assistant"  # or "all"
    max_seq_len: int | None = None
    policy: str = "truncate"  # truncate | drop | pack (at max_seq_len)
    # the chat template: None/'auto' (the tokenizer's own, else the built-in one for the model's
    # architecture, as chat does), 'model', a built-in name (gemma, chatml...), a Jinja file or text
    chat_template: str | None = None
    pack_window: int = 1000  # examples packed together at a time (bounds memory)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise DataError(f"unknown length policy {self.policy!r}; use one of {', '.join(POLICIES)}")
        if self.loss_on not in LOSS_ON:
            raise DataError(f"unknown loss mode {self.loss_on!r}; use one of {', '.join(LOSS_ON)}")
        if self.max_seq_len is not None and self.max_seq_len < 2:
            raise DataError(f"max_seq_len must be at least 2 (got {self.max_seq_len})")
        if self.policy == "pack" and not self.max_seq_len:
            raise DataError("packing needs max_seq_len (the length of each packed sequence)")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataSpec:
        """From a run spec / job spec. Accepts `map` as ["f=name", ...] or a dict, and
        `chat_template_file` as another name for `chat_template`."""
        template = d.get("chat_template") or d.get("chat_template_file")
        max_len = d.get("max_seq_len")
        return cls(
            path=str(d["path"]),
            format=d.get("format") or None,
            mapping=parse_mapping(d.get("mapping") or d.get("map")),
            strict=bool(d.get("strict", False)),
            dedupe=bool(d.get("dedupe", True)),
            loss_on=d.get("loss_on") or "assistant",
            max_seq_len=int(max_len) if max_len else None,
            policy=d.get("policy") or "truncate",
            chat_template=template or None,
            pack_window=int(d.get("pack_window") or 1000),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mapping"] = dict(self.mapping)
        return d


class PreparedData:
    """One dataset file read against one tokenizer. Build it with `prepare`."""

    def __init__(self, spec: DataSpec, tokenizer: Any, model: str | os.PathLike[str] | None = None) -> None:
        from engine.chat.templates import TemplateError, describe, template_for_tokenizer

        self.spec = spec
        self.tokenizer = tokenizer
        try:
            self.template = template_for_tokenizer(tokenizer, _template_choice(spec.chat_template), model)
        except TemplateError as exc:
            raise DataError(f"chat template: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"chat template {spec.chat_template}: cannot be read ({exc})") from None
        self.template_text = describe(self.template)
        self.source: Source = open_source(spec.path)
        self.format: FormatSpec = choose_format(self.source, spec.format, spec.mapping)
        self.validator = Validator(self.source, self.format, strict=spec.strict, dedupe=spec.dedupe)
        self.stats = DataStats()

    @property
    def problems(self) -> list[Problem]:
        """The problems of the last pass (the first 1000; `stats.problems` has every count)."""
        return self.validator.problems

    # -- the passes --------------------------------------------------------------------------
    def rendered(self, ctx: Any = None, *, keep_text: bool = False) -> Iterator[tuple[Location, Rendered]]:
        """Every valid record rendered and masked, before any length policy. Starts a new
        `stats` now (not lazily) so the stages chained on this pass all count into it."""
        spec = self.spec
        renderer = Renderer(
            self.tokenizer,
            loss_on=spec.loss_on,
            chat_template=self.template.text,
            keep_text=keep_text,
            chat_only=bool(self.template.chosen_for),
        )
        self.stats = DataStats(
            template=self.template_text,
            file=self.source.name,
            format=self.format.describe(),
            max_seq_len=spec.max_seq_len,
            policy=spec.policy,
            loss_on=spec.loss_on,
        )
        return self._render_pass(renderer, self.stats, ctx)

    def _render_pass(self, renderer: Renderer, stats: DataStats, ctx: Any) -> Iterator[tuple[Location, Rendered]]:
        validator = self.validator
        try:
            for n, (where, example) in enumerate(validator):
                if ctx is not None:
                    if n % 64 == 0:
                        ctx.raise_if_cancelled()
                    ctx.progress(self.source.done, self.source.total, "scan", unit=self.source.unit)
                try:
                    rendered = renderer.render(example)
                except RecordProblem as exc:
                    validator.report(where, exc.kind, exc.reason)
                    continue
                stats.examples += 1
                stats.tokens += rendered.n_tokens
                trained = rendered.n_trained
                stats.trained_tokens += trained
                if trained == 0:
                    stats.no_target += 1
                    continue
                stats.lengths.append(rendered.n_tokens)  # only examples that can train
                yield where, rendered
        finally:
            stats.records = validator.records
            stats.valid = validator.valid
            stats.problems = dict(validator.counts)
            if ctx is not None:
                ctx.progress(self.source.total or self.source.done, self.source.total, "scan", unit=self.source.unit, force=True)

    def _cut(self, items: Iterator[tuple[Location, Rendered]]) -> Iterator[tuple[Location, Rendered]]:
        """Apply the length policy's per-example part (truncate or drop) and count it."""
        return self._cut_pass(items, self.stats, self.spec.max_seq_len)

    def _cut_pass(self, items: Iterator[tuple[Location, Rendered]], stats: DataStats, limit: int | None):
        for where, rendered in items:
            n = rendered.n_tokens
            if limit and n > limit:
                stats.over += 1
                if self.spec.policy == "drop":
                    stats.dropped_too_long += 1
                    stats.tokens_cut += n
                    continue
                rendered = rendered.truncate(limit)
                stats.truncated += 1
                stats.tokens_cut += n - limit
                if rendered.n_trained == 0:
                    stats.dropped_after_cut += 1
                    stats.tokens_cut += limit
                    continue
            stats.kept += 1
            stats.kept_tokens += rendered.n_tokens
            stats.kept_trained_tokens += rendered.n_trained
            yield where, rendered

    def examples(self, ctx: Any = None) -> Iterator[TrainExample]:
        """Training rows with the policy applied: single examples, or packs (policy pack)."""
        kept = ((r, where.record) for where, r in self._cut(self.rendered(ctx)))
        stats = self.stats
        if self.spec.policy == "pack":
            assert self.spec.max_seq_len
            for row in pack_examples(kept, self.spec.max_seq_len, window=self.spec.pack_window):
                stats.packs += 1
                yield row
        else:
            for rendered, record in kept:
                yield single(rendered, record)

    def to_iterable_dataset(self) -> Any:
        """A `datasets.IterableDataset` of `TrainExample.as_dict()` rows for a Trainer/SFTTrainer;
        every epoch streams the file again (and refills `stats`)."""
        from datasets import IterableDataset

        return IterableDataset.from_generator(_rows_of, gen_kwargs={"data": [self]})

    def scan(self, ctx: Any = None, *, previews: int = 0) -> ScanResult:
        """One full pass for the report: statistics, problems, and the first `previews`
        rendered records (text + trained spans) for browsing."""
        shown: list[dict[str, Any]] = []
        kept_lengths: list[int] = []
        limit = self.spec.max_seq_len
        for where, rendered in self._cut(self._with_previews(self.rendered(ctx, keep_text=previews > 0), shown, previews)):
            if self.spec.policy == "pack":
                kept_lengths.append(rendered.n_tokens)
        if self.spec.policy == "pack" and limit:
            self.stats.packs = count_packs(kept_lengths, limit, window=self.spec.pack_window)
        return ScanResult(self.stats, list(self.problems), shown)

    def _with_previews(self, items, shown: list[dict[str, Any]], limit: int):
        for where, rendered in items:
            if len(shown) < limit:
                shown.append(preview(where, rendered, self.spec.max_seq_len))
            yield where, rendered


def _rows_of(data: list[PreparedData]) -> Iterator[dict[str, Any]]:
    for prepared in data:
        for row in prepared.examples():
            yield row.as_dict()


@dataclass
class ScanResult:
    stats: DataStats
    problems: list[Problem]
    previews: list[dict[str, Any]]


PREVIEW_CHARS = 20_000


def preview(where: Location, rendered: Rendered, max_seq_len: int | None) -> dict[str, Any]:
    """A JSON-able view of one rendered record: its text, trained character spans, and where
    `max_seq_len` would cut it."""
    text = rendered.text
    cut_char = None
    if max_seq_len and rendered.offsets and rendered.n_tokens > max_seq_len:
        cut_char = rendered.offsets[max_seq_len - 1][1]
    spans = [(s, e) for s, e in rendered.trained_spans() if s < PREVIEW_CHARS]
    return {
        "where": str(where),
        "line": where.line,
        "record": where.record,
        "text": text[:PREVIEW_CHARS],
        "clipped": len(text) > PREVIEW_CHARS,
        "spans": [[s, min(e, PREVIEW_CHARS)] for s, e in spans],
        "n_tokens": rendered.n_tokens,
        "n_trained": rendered.n_trained,
        "cut_char": cut_char,
    }


def prepare(
    spec: DataSpec | Mapping[str, Any], tokenizer: Any, model: str | os.PathLike[str] | None = None
) -> PreparedData:
    """Open, sniff and detect now (fail fast, one line); stream later. `tokenizer` is a loaded
    transformers tokenizer or a local folder path; `model` (the model folder or .gguf, default
    the tokenizer's folder) tells the architecture when the tokenizer has no chat template."""
    if not isinstance(spec, DataSpec):
        spec = DataSpec.from_dict(spec)
    if isinstance(tokenizer, (str, os.PathLike)):
        from engine.data.tokenizer import load_tokenizer

        model = model or tokenizer
        tokenizer = load_tokenizer(tokenizer)
    return PreparedData(spec, tokenizer, model)


def _template_choice(choice: str | None) -> str | None:
    """A choice that names a file must be a readable one: say so, instead of 'unknown template'."""
    from engine.chat.templates import BUILTIN_TEMPLATES

    if not choice or choice in BUILTIN_TEMPLATES or choice in ("auto", "model") or "{{" in choice or "{%" in choice:
        return choice
    path = Path(choice).expanduser()
    if not path.exists() and (path.suffix or "/" in choice):
        names = ", ".join(BUILTIN_TEMPLATES)
        raise DataError(f"chat template file {path} does not exist (give a file, or one of auto, {names})")
    return choice
