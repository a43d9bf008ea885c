"""The Data-mode scan of a preference, KTO or prompt dataset: both answers of each pair rendered
through the chat template, their token counts, and where max_seq_len cuts them.

The report has the keys of the SFT scan (`DataStats.to_dict()`: records, problems, lengths, the
histogram and the cut), counted per record: a record's length is its longest rendered sequence
(prompt + the longer answer), "trained" tokens are the answers' tokens, and a record is "over"
when either side is longer than max_seq_len (TRL then cuts that side's end, as `keep_start`).
Each preview adds `sides`: one entry per answer (chosen, rejected; or the completion of a KTO
record; or none for a GRPO prompt) with its text, where the answer starts, tokens and cut.
"""

from __future__ import annotations

from typing import Any

from engine.data.dataset import PREVIEW_CHARS, PreparedData, ScanResult
from engine.data.preference import PreferenceExample, RenderedSide, render_side
from engine.data.problems import DataError, RecordProblem
from engine.data.stats import DataStats


def scan_preferences(data: PreparedData, ctx: Any = None, *, previews: int = 0) -> ScanResult:
    """One pass: validate, render both sides, count; the first `previews` records kept for display."""
    spec, tokenizer = data.spec, data.tokenizer
    template = spec.chat_template or getattr(tokenizer, "chat_template", None) or None
    limit = spec.max_seq_len
    stats = DataStats(file=data.source.name, format=data.format.describe(), max_seq_len=limit,
                      policy="truncate", loss_on="answers")
    shown: list[dict[str, Any]] = []
    validator = data.validator
    try:
        for n, (where, example) in enumerate(validator):
            if ctx is not None:
                if n % 64 == 0:
                    ctx.raise_if_cancelled()
                ctx.progress(data.source.done, data.source.total, "scan", unit=data.source.unit)
            if not isinstance(example, PreferenceExample):  # pragma: no cover - format chosen by the caller
                raise DataError(f"{data.source.name}: not a preference dataset")
            if example.conversational or template:
                if not template:
                    raise DataError(
                        f"{data.source.name}: the records are conversations but the tokenizer has no chat template; "
                        "give one with --chat-template FILE"
                    )
                example = example.as_conversation()
            try:
                sides = _render(tokenizer, example, limit, template)
            except RecordProblem as exc:
                validator.report(where, exc.kind, exc.reason)
                continue
            prompt_side = sides[0][1] if sides else _prompt_only(tokenizer, example, template)
            longest = max((s.n_tokens for _, s in sides), default=prompt_side.n_tokens)
            answers = sum(s.n_tokens - s.n_prompt for _, s in sides)
            total = sum(s.n_tokens for _, s in sides) or longest
            stats.examples += 1
            stats.tokens += total
            stats.trained_tokens += answers
            stats.lengths.append(longest)
            if limit and longest > limit:
                stats.over += 1
                stats.truncated += 1
                if sides and prompt_side.n_prompt >= limit:  # TRL drops a record whose prompt fills max_length
                    stats.dropped_after_cut += 1
                    stats.tokens_cut += total
                    if len(shown) < previews:
                        shown.append(_preview(where, example, prompt_side, sides, longest, answers))
                    continue
                stats.tokens_cut += sum(max(0, s.n_tokens - limit) for _, s in sides)
            stats.kept += 1
            stats.kept_tokens += sum(min(s.n_tokens, limit or s.n_tokens) for _, s in sides) or longest
            stats.kept_trained_tokens += answers
            if len(shown) < previews:
                shown.append(_preview(where, example, prompt_side, sides, longest, answers))
    finally:
        stats.records = validator.records
        stats.valid = validator.valid
        stats.problems = dict(validator.counts)
        if ctx is not None:
            source = data.source
            ctx.progress(source.total or source.done, source.total, "scan", unit=source.unit, force=True)
    data.stats = stats
    return ScanResult(stats, list(validator.problems), shown)


def _render(tokenizer: Any, example: PreferenceExample, limit: int | None, template: str | None
            ) -> list[tuple[str, RenderedSide]]:
    if example.kind == "pair":
        return [(label, render_side(tokenizer, example.prompt, answer, limit, template))
                for label, answer in (("chosen", example.chosen), ("rejected", example.rejected))]
    if example.kind == "unpaired":
        label = "good" if example.label else "bad"
        return [(label, render_side(tokenizer, example.prompt, example.chosen, limit, template))]
    return []


def _prompt_only(tokenizer: Any, example: PreferenceExample, template: str | None) -> RenderedSide:
    return render_side(tokenizer, example.prompt, "" if isinstance(example.prompt, str) else (), None, template)


def _preview(where: Any, example: PreferenceExample, prompt_side: RenderedSide, sides: list[tuple[str, RenderedSide]],
             longest: int, answers: int) -> dict[str, Any]:
    """The SFT preview keys (first side, its answer as the trained span) plus every side."""
    first = sides[0][1] if sides else None
    prompt_text = prompt_side.text[: prompt_side.answer_start] if first else prompt_side.text
    out: dict[str, Any] = {
        "where": str(where),
        "line": where.line,
        "record": where.record,
        "kind": example.kind,
        "text": (first.text if first else prompt_text)[:PREVIEW_CHARS],
        "clipped": len(first.text if first else prompt_text) > PREVIEW_CHARS,
        "spans": [[first.answer_start, min(len(first.text), PREVIEW_CHARS)]] if first else [],
        "n_tokens": longest,
        "n_trained": answers,
        "cut_char": first.cut_char if first else None,
        "prompt": prompt_text[:PREVIEW_CHARS],
        "sides": [
            {
                "label": label,
                "answer": side.text[side.answer_start:][:PREVIEW_CHARS],
                "n_tokens": side.n_tokens,
                "n_prompt": side.n_prompt,
                "n_answer": side.n_tokens - side.n_prompt,
                "prompt_over": bool(side.cut_char is not None and side.cut_char <= side.answer_start),
                # the cut measured in the answer's own characters (None: the side fits)
                "cut_char": None if side.cut_char is None else max(0, side.cut_char - side.answer_start),
            }
            for label, side in sides
        ],
    }
    if example.extra:
        out["columns"] = dict(example.extra)
    return out
