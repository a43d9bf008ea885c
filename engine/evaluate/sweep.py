"""Quantization sweep: one table of size, bits per weight, perplexity and speed per quant type.

The baseline is always a float GGUF, so every quant is made once from full precision and the
perplexity change is measured against it:

- an HF model folder is converted to an f16 GGUF first (`engine.convert.hf_to_gguf`);
- an f16/bf16/f32 GGUF is used as it is;
- an already quantized GGUF (the bundled Gemma is Q4_K_M) is refused unless `allow_requantize`:
  then llama.cpp's quantizer writes an F16 copy of it (exactly the information the file holds)
  and the sweep runs from that copy. The table then shows what requantizing costs, not what the
  original full-precision model would lose.

Each quant is written by llama.cpp's own quantizer (`engine.convert.quantize`, a child process
that a cancel kills at once) into a hidden file renamed into place when complete, then
evaluated: perplexity on the given text file (llama.cpp, sliding window) and prompt/generation
speed (`engine.evaluate.throughput`).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.evaluate.models import EvalError
from engine.jobs import JobContext

FLOAT_TYPES = ("F32", "F16", "BF16")
_TYPE_SUFFIX = re.compile(r"[-_.](f32|f16|bf16|q\d(_[a-z0-9]+)*|iq\d(_[a-z0-9]+)*)$", re.IGNORECASE)


@dataclass
class SweepRow:
    qtype: str
    path: str
    bytes: int
    n_params: int = 0
    bpw: float = 0.0
    ppl: float | None = None
    ppl_delta: float | None = None  # ppl - baseline ppl
    ppl_delta_pct: float | None = None
    tokens_evaluated: int = 0
    prompt_tps: float | None = None
    gen_tps: float | None = None
    ttft_ms: float | None = None
    prompt_tps_stdev: float | None = None
    gen_tps_stdev: float | None = None
    baseline: bool = False
    quantize_s: float = 0.0


@dataclass
class SweepResult:
    source: str
    baseline: str
    baseline_from: str  # "hf", "gguf", "requantized"
    ppl_file: str
    ctx: int
    stride: int | None
    prompt_len: int
    gen_len: int
    reps: int
    rows: list[SweepRow] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_types(types: str | list[str] | tuple[str, ...]) -> list[str]:
    """'Q4_K_M,q8_0' -> ['Q4_K_M', 'Q8_0'], checked against llama.cpp's types, duplicates dropped."""
    from engine.convert.quantize import normalize_type

    items = types.split(",") if isinstance(types, str) else list(types)
    out: list[str] = []
    for item in items:
        if not item.strip():
            continue
        try:
            name = normalize_type(item)
        except Exception as exc:  # noqa: BLE001 - ConvertError: unknown type
            raise EvalError(str(exc)) from None
        if name not in out:
            out.append(name)
    if not out:
        raise EvalError("no quant types given; e.g. --types Q4_K_M,Q5_K_M,Q8_0")
    return out


def model_stem(path: Path) -> str:
    name = path.name[:-5] if path.name.lower().endswith(".gguf") else path.name
    return _TYPE_SUFFIX.sub("", name) or name


def _gguf_type(path: Path) -> tuple[str, bool]:
    from engine.convert.common import ConvertError
    from engine.convert.gguf_source import file_type_name, is_float_file, read_gguf_header

    try:
        head = read_gguf_header(path)  # the header is enough, and a fraction of a second
    except ConvertError as exc:  # not a GGUF, truncated
        raise EvalError(str(exc)) from None
    return (file_type_name(head) or "?").upper(), is_float_file(head)


def _quantize(source: Path, final: Path, qtype: str, job: JobContext, *, allow_requantize: bool = False) -> float:
    from engine.convert.common import commit, staged
    from engine.convert.quantize import quantize

    started = time.perf_counter()
    with staged(final, directory=False) as tmp:  # a failed or cancelled quantize leaves nothing at `final`
        quantize(source, tmp, qtype, job, allow_requantize=allow_requantize)
        commit(tmp, final)
    return time.perf_counter() - started


def _baseline(source: Path, out_dir: Path, job: JobContext, *, allow_requantize: bool) -> tuple[Path, str, str, float]:
    """The float GGUF every quant is made from: (path, its type, where it came from, seconds)."""
    started = time.perf_counter()
    if source.is_dir():
        from engine.convert.common import commit, staged
        from engine.convert.hf_to_gguf import convert

        final = out_dir / f"{model_stem(source)}-F16.gguf"
        job.log(f"converting {source} to an f16 GGUF")
        with staged(final, directory=False) as tmp:
            convert(source, tmp, job, outtype="f16", name=source.name)
            commit(tmp, final)
        return final, "F16", "hf", time.perf_counter() - started
    qtype, is_float = _gguf_type(source)
    if is_float:
        return source, qtype if qtype in FLOAT_TYPES else "F32", "gguf", 0.0
    if not allow_requantize:
        raise EvalError(
            f"{source.name} is already quantized ({qtype}); give an HF folder or an f16 GGUF, or pass "
            "--allow-requantize to sweep from an F16 copy of it (the table then shows requantization losses)"
        )
    final = out_dir / f"{model_stem(source)}-F16.gguf"
    job.log(f"{source.name} is {qtype}: writing an F16 copy to sweep from")
    seconds = _quantize(source, final, "F16", job, allow_requantize=True)
    return final, "F16", "requantized", seconds


def evaluate_gguf(
    path: Path,
    row: SweepRow,
    ppl_file: Path,
    job: JobContext,
    *,
    ctx: int,
    stride: int | None,
    max_tokens: int | None,
    prompt_len: int,
    gen_len: int,
    reps: int,
    n_gpu_layers: int | None = None,
    n_threads: int | None = None,
) -> None:
    """Fill `row` with perplexity, size and speed of one GGUF."""
    from engine.evaluate.perplexity import perplexity
    from engine.evaluate.throughput import measure

    load = {"n_gpu_layers": n_gpu_layers, "n_threads": n_threads}
    result = perplexity(path, ppl_file, backend="llama.cpp", ctx=ctx, stride=stride, max_tokens=max_tokens, job=job,
                        phase=f"{row.qtype} perplexity", **load)
    row.ppl = result.ppl
    row.tokens_evaluated = result.tokens_evaluated
    job.raise_if_cancelled()
    speed = measure(path, backend="llama.cpp", prompt_len=prompt_len, gen_len=gen_len, reps=reps, job=job,
                    phase=f"{row.qtype} speed", **load)
    row.n_params = int(speed.details.get("n_params") or 0)
    tensor_bytes = int(speed.details.get("tensor_bytes") or 0)
    row.bpw = 8.0 * tensor_bytes / row.n_params if row.n_params else 0.0
    row.prompt_tps = speed.prompt_tps.median
    row.gen_tps = speed.gen_tps.median
    row.ttft_ms = speed.ttft_s.median * 1000.0
    row.prompt_tps_stdev = speed.prompt_tps.stdev
    row.gen_tps_stdev = speed.gen_tps.stdev


def sweep(
    source: str | Path,
    types: str | list[str],
    ppl_file: str | Path,
    out_dir: str | Path,
    *,
    ctx: int = 512,
    stride: int | None = None,
    max_tokens: int | None = None,
    prompt_len: int = 512,
    gen_len: int = 128,
    reps: int = 3,
    allow_requantize: bool = False,
    n_gpu_layers: int | None = None,
    n_threads: int | None = None,
    job: JobContext | None = None,
) -> SweepResult:
    """Quantize `source` to each of `types` in `out_dir` and evaluate every file (see module)."""
    job = job or JobContext(lambda _e: None)
    started = time.perf_counter()
    source = Path(source).expanduser()
    if not source.exists():
        raise EvalError(f"model not found: {source} (give an HF model folder or an f16 GGUF)")
    ppl_file = Path(ppl_file).expanduser()
    if not ppl_file.is_file():
        raise EvalError(f"text file for perplexity not found: {ppl_file}")
    wanted = parse_types(types)
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)

    steps = 1 + 2 * len(wanted) + 1  # baseline, quantize + evaluate each, evaluate baseline
    step = 0

    def advance(what: str) -> None:
        nonlocal step
        step += 1
        job.progress(step, steps, "sweep", unit="steps", force=True)
        job.log(what)

    job.progress(0, steps, "sweep", unit="steps", force=True)
    base_path, base_type, base_from, base_s = _baseline(source, out_dir, job, allow_requantize=allow_requantize)
    advance(f"baseline {base_type}: {base_path}")
    opts = dict(ctx=ctx, stride=stride, max_tokens=max_tokens, prompt_len=prompt_len, gen_len=gen_len, reps=reps,
                n_gpu_layers=n_gpu_layers, n_threads=n_threads)
    base_row = SweepRow(base_type, str(base_path), base_path.stat().st_size, baseline=True, quantize_s=base_s)
    evaluate_gguf(base_path, base_row, ppl_file, job, **opts)
    advance(f"{base_type}: PPL {base_row.ppl:.3f}")
    rows = [base_row]
    stem = model_stem(source)
    for qtype in wanted:
        job.raise_if_cancelled()
        if qtype == base_type:
            advance(f"{qtype} is the baseline")
            advance(f"{qtype} is the baseline")
            continue
        final = out_dir / f"{stem}-{qtype}.gguf"
        seconds = _quantize(base_path, final, qtype, job)
        advance(f"{qtype}: {final.stat().st_size / 2**20:.0f} MiB in {seconds:.0f} s")
        row = SweepRow(qtype, str(final), final.stat().st_size, quantize_s=seconds)
        evaluate_gguf(final, row, ppl_file, job, **opts)
        if row.ppl is not None and base_row.ppl:
            row.ppl_delta = row.ppl - base_row.ppl
            row.ppl_delta_pct = 100.0 * row.ppl_delta / base_row.ppl
        rows.append(row)
        job.metric(len(rows), ppl=row.ppl or math.nan, bpw=row.bpw, gen_tps=row.gen_tps or 0.0)
        advance(f"{qtype}: PPL {row.ppl:.3f} ({row.ppl_delta_pct:+.2f}%), {row.gen_tps or 0:.1f} tok/s")
    base_row.ppl_delta, base_row.ppl_delta_pct = 0.0, 0.0
    return SweepResult(
        source=str(source), baseline=base_type, baseline_from=base_from, ppl_file=str(ppl_file), ctx=ctx, stride=stride,
        prompt_len=prompt_len, gen_len=gen_len, reps=reps, rows=rows, seconds=time.perf_counter() - started,
    )
