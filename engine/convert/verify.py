"""Verification: load the output with the program that will use it and compare next-token logits.

HF output is loaded with transformers, GGUF output with llama-cpp-python (llama.cpp itself), and
the source with whatever reads it (transformers, llama.cpp, a peft model, or the Meta reference
forward in `meta_reference`). Both sides get the same token ids, so a tokenizer difference cannot
hide a weight difference; tokenizer agreement is reported separately.

A run fails when the top-1 agreement or the maximum logit difference (relative to the largest
source logit) is outside the tolerance for the output type: a wrong permutation, a swapped norm
or a transposed shard gives garbage logits, never a small difference.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError

PROMPTS: tuple[str, ...] = (
    "The quick brown fox jumps over",
    "def hello(name):\n    return",
    "Llamas live in the mountains of",
)

# (max relative abs diff, min top-1 agreement, min mean logit correlation) per output type.
# Quantized outputs are judged on correlation only: 4-bit noise on a small model moves the
# top-1 token often, while a broken tensor drops the correlation to about zero.
TOLERANCES: dict[str, tuple[float, float, float]] = {
    "exact": (1e-4, 1.0, 0.999),
    "f32": (2e-3, 0.98, 0.999),
    "f16": (2e-2, 0.95, 0.99),
    "bf16": (6e-2, 0.85, 0.99),
    "q8_0": (0.15, 0.75, 0.98),
    "dequantized": (float("inf"), 0.8, 0.98),
    "quantized": (float("inf"), 0.0, 0.5),
}


@dataclass
class Comparison:
    max_abs_diff: float
    rel_diff: float
    top1_agreement: float
    positions: int
    prompts: int
    tolerance: float
    min_top1: float
    correlation: float = 1.0
    min_correlation: float = 0.0
    tokenizer_match: str = ""

    @property
    def ok(self) -> bool:
        import math

        return (
            math.isfinite(self.max_abs_diff)
            and self.rel_diff <= self.tolerance
            and self.top1_agreement >= self.min_top1
            and self.correlation >= self.min_correlation
        )

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in data.items()}

    def text(self) -> str:
        limit = f", limit {100 * self.tolerance:.1f}%" if self.tolerance != float("inf") else ""
        return (
            f"max |Δlogit| {self.max_abs_diff:.4g} ({100 * self.rel_diff:.2f}% of the largest logit{limit}), "
            f"top-1 agreement {100 * self.top1_agreement:.1f}% (need {100 * self.min_top1:.0f}%), "
            f"logit correlation {self.correlation:.4f} (need {self.min_correlation:.2f}) over {self.positions} positions"
        )


def compare(reference: list[Any], candidate: list[Any], kind: str) -> Comparison:
    """Compare per-prompt [positions, vocab] logit arrays."""
    import numpy as np

    tol, min_top1, min_corr = TOLERANCES.get(kind, TOLERANCES["quantized"])
    max_diff = 0.0
    scale = 1e-9
    agree = 0
    total = 0
    corrs: list[float] = []
    for ref, cand in zip(reference, candidate, strict=True):
        ref = np.asarray(ref, dtype=np.float64)
        cand = np.asarray(cand, dtype=np.float64)
        n = min(ref.shape[-1], cand.shape[-1])  # padded vocabularies: compare the real part
        ref, cand = ref[:, :n], cand[:, :n]
        if not np.isfinite(cand).all():
            return Comparison(float("inf"), float("inf"), 0.0, ref.shape[0], len(reference), tol, min_top1, 0.0, min_corr)
        max_diff = max(max_diff, float(np.abs(ref - cand).max()))
        a = ref - ref.mean(-1, keepdims=True)
        b = cand - cand.mean(-1, keepdims=True)
        denom = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
        corrs.extend(np.where(denom > 0, (a * b).sum(-1) / np.maximum(denom, 1e-30), 1.0).tolist())
        scale = max(scale, float(np.abs(ref).max()))
        agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
        total += ref.shape[0]
    corr = float(np.mean(corrs)) if corrs else 0.0
    return Comparison(max_diff, max_diff / scale, agree / max(1, total), total, len(reference), tol, min_top1, corr, min_corr)


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def hf_tokenize(model_dir: Path, prompts: tuple[str, ...] = PROMPTS) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids = [list(tok(p).input_ids) for p in prompts]
    if any(len(i) < 2 for i in ids):
        raise ConvertError(f"{model_dir}: the tokenizer turns the test prompts into almost nothing; is tokenizer.model/json complete?")
    return ids


def hf_logits(model_or_dir: Any, ids: list[list[int]]) -> list[Any]:
    """Logits for every position of each prompt, float32, with transformers."""
    import torch

    model = model_or_dir
    if isinstance(model_or_dir, (str, Path)):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(model_or_dir), dtype=torch.float32)
    model.eval()
    out = []
    with torch.no_grad():
        for seq in ids:
            logits = model(torch.tensor([seq])).logits[0].float().numpy()
            out.append(logits)
    return out


def open_llama(path: Path, n_ctx: int = 256) -> Any:
    from engine import llama_runtime

    try:
        return llama_runtime.load(path, n_ctx=n_ctx, logits_all=True, n_threads=_threads(), n_gpu_layers=0)
    except Exception as exc:  # llama.cpp reports load failures as ValueError/RuntimeError
        raise ConvertError(f"llama.cpp cannot load {path} ({exc})") from None


def gguf_logits(path: Path, ids: list[list[int]], llm: Any = None) -> list[Any]:
    import numpy as np

    llm = llm or open_llama(path, n_ctx=max(64, max(len(s) for s in ids) + 8))
    out = []
    for seq in ids:
        llm.reset()
        llm.eval(seq)
        out.append(np.array(llm.scores[: len(seq)], dtype=np.float32, copy=True))
    return out


def tokenizer_agreement(llm: Any, model_dir: Path, prompts: tuple[str, ...] = PROMPTS) -> str:
    """How many prompts llama.cpp's tokenizer splits exactly like the HF tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    same = 0
    for prompt in prompts:
        hf_ids = list(tok(prompt).input_ids)
        add_bos = bool(hf_ids) and hf_ids[0] == tok.bos_token_id
        ll_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=False)
        same += int(list(ll_ids) == hf_ids)
    return f"{same}/{len(prompts)}"


def check(result: Comparison, what: str) -> dict[str, Any]:
    if not result.ok:
        raise ConvertError(f"verification failed for {what}: {result.text()}")
    return result.summary()


def verify_gguf_against_hf(hf_dir: Path, gguf_path: Path, kind: str, hf_model: Any = None, label: str = "") -> dict[str, Any]:
    """GGUF output (llama.cpp) vs its HF source (transformers)."""
    ids = hf_tokenize(hf_dir)
    reference = hf_logits(hf_model if hf_model is not None else hf_dir, ids)
    llm = open_llama(gguf_path, n_ctx=max(64, max(len(s) for s in ids) + 8))
    candidate = gguf_logits(gguf_path, ids, llm)
    result = compare(reference, candidate, kind)
    result.tokenizer_match = tokenizer_agreement(llm, hf_dir)
    return check(result, label or f"{gguf_path.name} vs {hf_dir.name}")


def verify_hf_against_gguf(gguf_path: Path, hf_dir: Path, kind: str = "dequantized", label: str = "") -> dict[str, Any]:
    """HF output (transformers) vs its GGUF source (llama.cpp), e.g. after dequantizing."""
    ids = hf_tokenize(hf_dir)
    llm = open_llama(gguf_path, n_ctx=max(64, max(len(s) for s in ids) + 8))
    reference = gguf_logits(gguf_path, ids, llm)
    result = compare(reference, hf_logits(hf_dir, ids), kind)
    result.tokenizer_match = tokenizer_agreement(llm, hf_dir)
    del llm
    return check(result, label or f"{hf_dir.name} vs {gguf_path.name}")


def verify_quantized(source: Path, output: Path, prompts: tuple[str, ...] = PROMPTS, label: str = "") -> dict[str, Any]:
    """A quantized GGUF vs the GGUF it came from, both in llama.cpp, plus a short generation."""
    src = open_llama(source)
    ids = [src.tokenize(p.encode("utf-8"), add_bos=True) for p in prompts]
    reference = gguf_logits(source, ids, src)
    del src
    out = open_llama(output)
    candidate = gguf_logits(output, ids, out)
    out.reset()
    generated = out.create_completion(prompts[0], max_tokens=8, temperature=0.0)["choices"][0]["text"]
    result = compare(reference, candidate, "quantized")
    summary = check(result, label or f"{output.name} vs {source.name}")
    summary["sample"] = prompts[0] + generated
    return summary
