"""The dataset scan as a job: what Data mode runs in a thread worker and `data inspect` prints.

`scan_job(spec, ctx)` loads the tokenizer, streams the file once and returns a JSON-able
summary: detection, counts, problems (the first `problems_limit`), token-length statistics,
the histogram with the cut at max_seq_len, what the policy does, and the first `previews`
records rendered through the template with their trained character spans.
"""

from __future__ import annotations

from typing import Any

from engine.jobs import JobContext


def scan_job(spec: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """spec: path, model, and optionally format, map, strict, dedupe, loss_on, max_seq_len,
    policy, chat_template (auto, a built-in name, a Jinja file; chat_template_file too), previews
    (default 200), problems_limit (default 500), bins."""
    from engine.data.dataset import DataSpec, prepare
    from engine.data.preference import RL_FORMATS
    from engine.data.problems import DataError
    from engine.data.tokenizer import load_tokenizer, tokenizer_name

    if not spec.get("path"):
        raise DataError("no dataset file given")
    if not spec.get("model"):
        raise DataError("no model or tokenizer folder given (its chat template and tokenizer are needed)")
    data_spec = DataSpec.from_dict(spec)
    ctx.progress(0, None, "tokenizer", force=True)
    tokenizer = load_tokenizer(spec["model"])
    ctx.raise_if_cancelled()
    data = prepare(data_spec, tokenizer, spec["model"])
    if data.format.name in RL_FORMATS:  # pairs, KTO labels, prompts: both answers rendered
        from engine.data.preference_scan import scan_preferences

        result = scan_preferences(data, ctx, previews=int(spec.get("previews", 200)))
    else:
        result = data.scan(ctx, previews=int(spec.get("previews", 200)))
    stats = result.stats
    summary = stats.to_dict()
    if spec.get("bins"):
        summary["histogram"] = stats.histogram(int(spec["bins"])).to_dict()
    limit = int(spec.get("problems_limit", 500))
    summary.update(
        path=str(data.source.path),
        model=str(spec["model"]),
        tokenizer=tokenizer_name(tokenizer),
        has_template=True,
        template=data.template_text,
        template_name=data.template.name,
        format_name=data.format.name,
        detected=data.format.detected,
        columns=data.source.columns,
        problem_list=[p.to_dict() | {"where": str(p.where)} for p in result.problems[:limit]],
        previews=result.previews,
    )
    return summary
