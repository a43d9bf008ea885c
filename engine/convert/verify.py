"""Verification: load the output with the program that will use it and compare it with its source.

HF output is loaded with transformers, GGUF output with llama-cpp-python (llama.cpp itself), and
the source with whatever reads it (transformers, llama.cpp, a peft model, or the Meta reference
forward in `meta_reference`). Three checks, each of which fails the run:

- tokenizer: llama.cpp must split sample texts (spaces, tabs, newlines, digits, accents, emoji)
  into exactly the ids transformers gives. A tokenizer that differs makes every prompt a
  different prompt, whatever the weights; it is never a tolerance question.
- logits on the same token ids (so a tokenizer difference cannot hide a weight difference):
  largest difference relative to the largest source logit, top-1 agreement, mean correlation
  and mean KL divergence, each against a limit for the output type (LIMITS, measured).
- a short greedy generation (GREEDY_TOKENS tokens after the first prompts) on both sides: how
  many tokens agree before the first difference (reported), and how many of the source's greedy
  tokens the output, fed the same continuation, ranks among its GREEDY_TOP most likely (judged:
  a near-tie can flip one greedy token of a good conversion and send the rest elsewhere, but a
  broken model does not rank the source's words highly).

Every phase checks for a cancel (between prompts, between generated tokens, and between
transformer layers through forward pre-hooks), so cancelling a verification stops it within
about a second.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.convert.common import ConvertError

Check = Callable[[], None]


def _no_check() -> None:
    return None


PROMPTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times, it was",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "Llamas live in the mountains of South America, where farmers keep them for their wool and",
    "Question: What is the capital of France?\nAnswer:",
)
# Texts that trip tokenizers up: repeated spaces, tabs, newlines, digits, accents, emoji, CJK.
# A SentencePiece model exported as byte-level BPE (or the other way round) splits these
# differently even when plain prose happens to agree. Not spaces at the very start of a text:
# transformers' own SentencePiece-style tokenizers (Metaspace, prepend "first") drop one of
# them where sentencepiece and llama.cpp keep it, whatever the conversion does.
TOKENIZER_SAMPLES: tuple[str, ...] = PROMPTS + (
    "Two  spaces,\ta tab, and   three spaces here",
    "Numbers 12345 and 3.14159; emoji \U0001f999; accents café naïve; CJK 東京",
    "\n\nnewlines first\n\n\nand a trailing space ",
)
GREEDY_PROMPTS = 2  # the first prompts of PROMPTS
GREEDY_TOKENS = 8
GREEDY_TOP = 5


@dataclass(frozen=True)
class Limits:
    """What a good conversion of one output type reaches (see LIMITS for how they were set)."""

    max_rel_diff: float  # max |Δlogit| / max |source logit|
    min_top1: float  # share of positions whose most likely next token agrees
    min_correlation: float  # mean Pearson correlation of the logit vectors
    max_kld: float  # mean KL(source || output) of the next-token distributions, nats
    min_greedy: float  # share of the source's greedy tokens in the output's top GREEDY_TOP


# Limits per output type, set from MEASURED distributions of good conversions.
#
# Measured with `bench/verify_limits.py` (2-core CPU, llama-cpp-python 0.3.36, transformers 5.24):
# every type made from 4 random tiny models (Llama with a SentencePiece tokenizer, hidden 256;
# Llama with byte-level BPE, hidden 64; ChatML Llama, hidden 64; Gemma 3, hidden 64) and from the
# bundled Gemma 3 270M (its GGUF -> HF f32 -> GGUF f32/f16/bf16/q8_0, and that f16 quantized;
# dequantized: a Q4_K_M GGUF vs its GGUF -> HF), over the PROMPTS above (82 positions on Gemma,
# 175-293 on the tiny models). Each row's comment: the worst value of the 5 models, then Gemma's.
# The rule (`suggest_limits` in the bench) is twice the worst distance from perfect: agreements
# 1 - 2 * (1 - worst), at most 0.97 top-1, 0.9999 correlation, 0.9 greedy (a near-tie flips
# the top-1 of a position now and then: the f16 GGUF of the fine-tuned Gemma in
# tests/engine/test_journey_gemma.py had 1 of 82, correlation 1.0000, KLD 1.7e-05); differences
# 2 * worst. The worst are the random tiny models,
# whose weights have no structure for a quantizer to keep: Gemma's Q4_0 keeps top-1 0.67 where
# a tiny model keeps 0.25 (Gemma's Q4_K_M is flattered: its f16 came from a Q4_K_M). So 4-bit
# limits catch only a broken file, the job they are for here: a wrong tokenizer fails the
# tokenizer check (0/7 on every broken GGUF measured, Gemma's included, while its logits on
# shared ids were perfect), and swapped or untransposed tensors give correlations near 0.
LIMITS: dict[str, Limits] = {
    # HF -> GGUF and GGUF -> HF, float types; merge-LoRA and Meta -> HF in that dtype
    # worst: rel 0.0032, top-1 0.997, corr 1.0000, KLD 5.3e-06, in top 5 1.00; Gemma rel 0.0014, top-1 1.000
    "f32": Limits(0.0064, 0.97, 0.9999, 1.1e-05, 0.9),
    # worst: rel 0.0060, top-1 0.997, corr 1.0000, KLD 2.3e-05, in top 5 1.00; Gemma rel 0.0024, top-1 1.000
    "f16": Limits(0.013, 0.97, 0.9999, 4.7e-05, 0.9),
    # worst: rel 0.044, top-1 0.959, corr 0.9998, KLD 0.0013, in top 5 1.00; Gemma rel 0.020, top-1 1.000
    "bf16": Limits(0.088, 0.91, 0.9995, 0.0026, 0.9),
    # worst: rel 0.12, top-1 0.884, corr 0.9977, KLD 0.012, in top 5 1.00; Gemma rel 0.065, top-1 0.988
    "q8_0": Limits(0.25, 0.76, 0.9953, 0.025, 0.9),
    # GGUF (quantized) -> HF: transformers on the dequantized weights vs llama.cpp on the quants
    # worst: rel 0.14, top-1 0.949, corr 0.9981, KLD 0.0095, in top 5 1.00; Gemma rel 0.098, top-1 0.963
    "dequantized": Limits(0.28, 0.89, 0.9962, 0.019, 0.9),
    # llama.cpp's quantizer, output vs its float source (both in llama.cpp)
    # worst: rel 0.125, top-1 0.904, corr 0.9976, KLD 0.012, in top 5 1.00; Gemma rel 0.056, top-1 0.976
    "Q8_0": Limits(0.25, 0.8, 0.9952, 0.025, 0.9),
    # worst: rel 0.31, top-1 0.717, corr 0.9808, KLD 0.10, in top 5 1.00; Gemma rel 0.133, top-1 0.939
    "Q6_K": Limits(0.63, 0.43, 0.9615, 0.21, 0.9),
    # worst: rel 0.52, top-1 0.529, corr 0.9482, KLD 0.27, in top 5 0.94; Gemma rel 0.195, top-1 0.902
    "Q5_K_M": Limits(1.1, 0.05, 0.8964, 0.55, 0.87),
    # worst: rel 0.77, top-1 0.345, corr 0.8536, KLD 0.75, in top 5 0.62; Gemma rel 0.098, top-1 0.963
    "Q4_K_M": Limits(1.6, 0.0, 0.7071, 1.6, 0.25),
    # worst: rel 0.88 (Gemma), top-1 0.249, corr 0.7911, KLD 1.08, in top 5 0.44; Gemma top-1 0.671, corr 0.934
    "Q4_0": Limits(1.8, 0.0, 0.5821, 2.2, 0.0),
}
# Not measured: the nearest measured type with as many or fewer bits per weight.
for _name, _like in (
    ("Q5_K_S", "Q5_K_M"),
    ("Q5_0", "Q5_K_M"),
    ("Q5_1", "Q5_K_M"),
    ("Q4_K_S", "Q4_0"),
    ("Q4_1", "Q4_0"),
):
    LIMITS[_name] = LIMITS[_like]
# Below 4 bits a 270M model loses much; only a broken file (correlation near 0) is refused.
for _name in ("Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K"):
    LIMITS[_name] = Limits(float("inf"), 0.0, 0.3, float("inf"), 0.0)
LIMITS["F16"] = LIMITS["f16"]
LIMITS["BF16"] = LIMITS["bf16"]


def limits_for(kind: str) -> Limits:
    if kind in LIMITS:
        return LIMITS[kind]
    if kind.upper() in LIMITS:
        return LIMITS[kind.upper()]
    raise ConvertError(f"no verification limits for output type {kind!r}")


@dataclass
class Comparison:
    kind: str
    max_abs_diff: float
    rel_diff: float
    top1_agreement: float
    positions: int
    prompts: int
    correlation: float = 1.0
    kld: float = 0.0
    greedy_agreement: float | None = None  # share of greedy tokens equal before the first difference
    greedy_in_top: float | None = None  # share of the source's greedy tokens in the output's top GREEDY_TOP
    tokenizer_match: str = ""  # "7/7" sample texts split identically
    tokenizer_example: str = ""  # the first sample that differs, with both splits
    logits_compared: bool = True  # False: the tokenizer differed, so nothing else was worth comparing
    limits: Limits = field(default_factory=lambda: LIMITS["f32"])

    def failures(self) -> list[str]:
        """Each check that failed, with its figure and the limit for this output type."""
        import math

        lim, kind, out = self.limits, self.kind, []
        if self.tokenizer_match:
            same, total = (int(x) for x in self.tokenizer_match.split("/"))
            if same != total:
                out.append(
                    f"tokenizer: llama.cpp splits {total - same} of {total} sample texts differently from transformers"
                    + (f" ({self.tokenizer_example})" if self.tokenizer_example else "")
                )
        if not self.logits_compared:
            return out
        if not math.isfinite(self.max_abs_diff):
            out.append("logits: the output computes NaN or infinite logits")
            return out
        if self.rel_diff > lim.max_rel_diff:
            out.append(
                f"max |Δlogit| {self.max_abs_diff:.4g} is {100 * self.rel_diff:.2f}% of the largest logit "
                f"(a good {kind} stays under {100 * lim.max_rel_diff:.2g}%)"
            )
        if self.top1_agreement < lim.min_top1:
            out.append(
                f"top-1 agreement {100 * self.top1_agreement:.1f}% (a good {kind} reaches {100 * lim.min_top1:.0f}%)"
            )
        if self.correlation < lim.min_correlation:
            out.append(f"logit correlation {self.correlation:.4f} (a good {kind} reaches {lim.min_correlation:g})")
        if self.kld > lim.max_kld:
            out.append(f"KL divergence {self.kld:.4g} nats (a good {kind} stays under {lim.max_kld:g})")
        if self.greedy_in_top is not None and self.greedy_in_top < lim.min_greedy:
            out.append(
                f"greedy generation: the output ranks {100 * self.greedy_in_top:.0f}% of the source's "
                f"{GREEDY_TOKENS}-token greedy continuations in its top {GREEDY_TOP} "
                f"(a good {kind} reaches {100 * lim.min_greedy:.0f}%)"
            )
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("limits")
        data["limits"] = {k: round(v, 6) for k, v in asdict(self.limits).items()}
        data["ok"] = self.ok
        data["failures"] = self.failures()
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in data.items()}

    def text(self) -> str:
        if not self.logits_compared:
            return f"tokenizer {self.tokenizer_match}; logits not compared: with another tokenizer every prompt differs"
        greedy = ""
        if self.greedy_agreement is not None:
            greedy = f", greedy: {100 * self.greedy_agreement:.0f}% equal"
        if self.greedy_in_top is not None:
            greedy += f", {100 * self.greedy_in_top:.0f}% in top {GREEDY_TOP}"
        tok = f", tokenizer {self.tokenizer_match}" if self.tokenizer_match else ""
        return (
            f"max |Δlogit| {self.max_abs_diff:.4g} ({100 * self.rel_diff:.2f}% of the largest logit), "
            f"top-1 {100 * self.top1_agreement:.1f}%, correlation {self.correlation:.4f}, KLD {self.kld:.3g}"
            f"{greedy}{tok} over {self.positions} positions"
        )


def compare(reference: list[Any], candidate: list[Any], kind: str) -> Comparison:
    """Compare per-prompt [positions, vocab] logit arrays."""
    import numpy as np

    limits = limits_for(kind)
    max_diff = 0.0
    scale = 1e-9
    agree = 0
    total = 0
    corrs: list[float] = []
    klds: list[float] = []
    for ref, cand in zip(reference, candidate, strict=True):
        ref = np.asarray(ref, dtype=np.float64)
        cand = np.asarray(cand, dtype=np.float64)
        n = min(ref.shape[-1], cand.shape[-1])  # padded vocabularies: compare the real part
        ref, cand = ref[:, :n], cand[:, :n]
        if not np.isfinite(cand).all():
            return Comparison(
                kind, float("inf"), float("inf"), 0.0, ref.shape[0], len(reference), 0.0, float("inf"), limits=limits
            )
        max_diff = max(max_diff, float(np.abs(ref - cand).max()))
        a = ref - ref.mean(-1, keepdims=True)
        b = cand - cand.mean(-1, keepdims=True)
        denom = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
        corrs.extend(np.where(denom > 0, (a * b).sum(-1) / np.maximum(denom, 1e-30), 1.0).tolist())
        log_p = ref - ref.max(-1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
        log_q = cand - cand.max(-1, keepdims=True)
        log_q -= np.log(np.exp(log_q).sum(-1, keepdims=True))
        klds.extend(np.maximum(0.0, (np.exp(log_p) * (log_p - log_q)).sum(-1)).tolist())
        scale = max(scale, float(np.abs(ref).max()))
        agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
        total += ref.shape[0]
    corr = float(np.mean(corrs)) if corrs else 0.0
    kld = float(np.mean(klds)) if klds else 0.0
    return Comparison(
        kind, max_diff, max_diff / scale, agree / max(1, total), total, len(reference), corr, kld, limits=limits
    )


def in_top(ranks: list[list[int]], top: int = GREEDY_TOP) -> float:
    flat = [r for seq in ranks for r in seq]
    return sum(r < top for r in flat) / max(1, len(flat))


def equal_before_difference(ranks: list[list[int]]) -> float:
    """Share of the source's greedy tokens the output's own greedy generation reproduces before
    the first difference: while the two agree, the output's next greedy token is its top-ranked
    one at that position, so this is read off the teacher-forced ranks (rank 0 = its argmax)."""
    shares = []
    for seq in ranks:
        same = 0
        for rank in seq:
            if rank != 0:
                break
            same += 1
        shares.append(same / max(1, len(seq)))
    return sum(shares) / max(1, len(shares))


def _ranks(logits: Any, tokens: list[int]) -> list[int]:
    """Rank of each token among its row's logits (0 = the most likely)."""
    import numpy as np

    rows = np.asarray(logits, dtype=np.float64)
    return [int((row > row[t]).sum()) for row, t in zip(rows, tokens, strict=True)]


def teacher_forced(
    logits_of: Callable[[list[list[int]]], list[Any]], ids: list[list[int]], continuations: list[list[int]]
) -> tuple[list[Any], list[list[int]]]:
    """One pass of the output over every prompt, the first ones followed by the source's greedy
    continuation: (the output's logits on each prompt, the ranks it gives each continuation
    token). A prompt's rows do not depend on what follows it, so both come from the same pass."""
    seqs = [p + continuations[i] if i < len(continuations) else p for i, p in enumerate(ids)]
    rows = logits_of(seqs)
    logits = [r[: len(p)] for r, p in zip(rows, ids, strict=True)]
    ranks = [_ranks(rows[i][len(p) - 1 : len(p) - 1 + len(c)], c)
             for i, (p, c) in enumerate(zip(ids, continuations, strict=False))]
    return logits, ranks


def judge_greedy(result: Comparison, ranks: list[list[int]]) -> Comparison:
    result.greedy_in_top = in_top(ranks)
    result.greedy_agreement = equal_before_difference(ranks)
    return result


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


# -- transformers side --------------------------------------------------------------------------
def load_hf_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def hf_tokenize(model_dir: Path | Any, prompts: tuple[str, ...] = PROMPTS) -> list[list[int]]:
    tok = load_hf_tokenizer(model_dir) if isinstance(model_dir, (str, Path)) else model_dir
    ids = [list(tok(p).input_ids) for p in prompts]
    if any(len(i) < 2 for i in ids):
        raise ConvertError(
            f"{model_dir}: the tokenizer turns the test prompts into almost nothing; is tokenizer.model/json complete?"
        )
    return ids


def load_hf_model(model_or_dir: Any) -> Any:
    import torch

    if isinstance(model_or_dir, (str, Path)):
        from transformers import AutoModelForCausalLM

        model_or_dir = AutoModelForCausalLM.from_pretrained(str(model_or_dir), dtype=torch.float32)
    model_or_dir.eval()
    return model_or_dir


class _LayerChecks:
    """Forward pre-hooks on every decoder layer that call `check`: a cancel lands between layers."""

    def __init__(self, model: Any, check: Check) -> None:
        self.handles = []
        if check is _no_check:
            return
        for module in model.modules():
            if type(module).__name__.endswith("DecoderLayer"):
                self.handles.append(module.register_forward_pre_hook(lambda *_a: check()))

    def __enter__(self) -> _LayerChecks:
        return self

    def __exit__(self, *_exc: object) -> None:
        for handle in self.handles:
            handle.remove()


def hf_logits(model_or_dir: Any, ids: list[list[int]], check: Check = _no_check) -> list[Any]:
    """Logits for every position of each prompt, float32, with transformers."""
    import torch

    model = load_hf_model(model_or_dir)
    out = []
    with torch.no_grad(), _LayerChecks(model, check):
        for seq in ids:
            check()
            out.append(model(torch.tensor([seq])).logits[0].float().numpy())
    return out


def hf_greedy(
    model_or_dir: Any, ids: list[list[int]], n: int = GREEDY_TOKENS, check: Check = _no_check
) -> list[list[int]]:
    """`n` greedy tokens after each prompt: argmax of the last position, step by step with the
    model's KV cache (no sampling, no generation config: the same rule as the logits check)."""
    import torch

    model = load_hf_model(model_or_dir)
    out = []
    with torch.no_grad(), _LayerChecks(model, check):
        for seq in ids:
            check()
            step = model(torch.tensor([seq]), use_cache=True, logits_to_keep=1)
            new: list[int] = []
            for _ in range(n):
                token = int(step.logits[0, -1].argmax())
                new.append(token)
                if len(new) == n:
                    break
                check()
                # transformers 5.24 names the cache `cache`; earlier 5.x `past_key_values`
                kept = (
                    {"cache": step.cache}
                    if getattr(step, "cache", None) is not None
                    else {"past_key_values": step.past_key_values}
                )
                step = model(torch.tensor([[token]]), use_cache=True, logits_to_keep=1, **kept)
            out.append(new)
    return out


# -- llama.cpp side -----------------------------------------------------------------------------
def open_llama(path: Path, n_ctx: int = 512) -> Any:
    from engine import llama_runtime

    llama_runtime.quiet_logs()  # llama.cpp's own log lines (context warnings...) go to logging, not stderr
    try:
        return llama_runtime.load(path, n_ctx=n_ctx, logits_all=True, n_threads=_threads(), n_gpu_layers=0)
    except Exception as exc:  # noqa: BLE001 - llama.cpp reports load failures as ValueError/RuntimeError; any becomes one line
        raise ConvertError(f"llama.cpp cannot load {path} ({exc})") from None


def _n_ctx(ids: list[list[int]]) -> int:
    return max(64, max(len(s) for s in ids) + GREEDY_TOKENS + 8)


def gguf_logits(llm: Any, ids: list[list[int]], check: Check = _no_check) -> list[Any]:
    import numpy as np

    out = []
    for seq in ids:
        check()
        llm.reset()
        llm.eval(seq)
        out.append(np.array(llm.scores[: len(seq)], dtype=np.float32, copy=True))
    return out


def gguf_greedy(llm: Any, ids: list[list[int]], n: int = GREEDY_TOKENS, check: Check = _no_check) -> list[list[int]]:
    import numpy as np

    out = []
    for seq in ids:
        llm.reset()
        llm.eval(list(seq))
        new = []
        for _ in range(n):
            check()
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            new.append(token)
            llm.eval([token])
        out.append(new)
    return out


def open_vocab(path: Path) -> Any:
    """llama.cpp's tokenizer for a GGUF alone (vocab_only: no weights read, well under a second)."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    from engine.llama_runtime import quiet_logs

    quiet_logs()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    try:
        return LlamaModel(path_model=str(path), params=params, verbose=False)
    except ValueError as exc:
        raise ConvertError(f"llama.cpp cannot load the vocabulary of {path} ({exc})") from None


def gguf_tokenizer_agreement(gguf_path: Path, hf_tok: Any) -> tuple[str, str]:
    vocab = open_vocab(gguf_path)
    try:
        return tokenizer_agreement(vocab, hf_tok)
    finally:
        vocab.close()


def _tokenizer_differs(kind: str, tokenizer: tuple[str, str]) -> Comparison | None:
    """A Comparison that fails on the tokenizer alone, or None when the tokenizers agree."""
    same, total = tokenizer[0].split("/")
    if same == total:
        return None
    result = Comparison(kind, float("nan"), float("nan"), 0.0, 0, 0, limits=limits_for(kind), logits_compared=False)
    result.tokenizer_match, result.tokenizer_example = tokenizer
    return result


def _shared_tokens(
    hf_dir: Path, gguf_path: Path, kind: str, check_: Check
) -> tuple[tuple[str, str], list[list[int]] | Comparison]:
    """The tokenizer agreement of an HF folder and a GGUF, then the prompt ids both sides read;
    in place of the ids, the Comparison that fails on the tokenizer alone when they differ
    (then nothing else is computed)."""
    tok = load_hf_tokenizer(hf_dir)
    check_()
    tokenizer = gguf_tokenizer_agreement(gguf_path, tok)
    differs = _tokenizer_differs(kind, tokenizer)
    return tokenizer, differs if differs is not None else hf_tokenize(tok)


def tokenizer_agreement(llm: Any, hf_tok: Any, samples: tuple[str, ...] = TOKENIZER_SAMPLES) -> tuple[str, str]:
    """("same/total", the first differing sample with both splits) for llama.cpp vs transformers."""
    same = 0
    example = ""
    for text in samples:
        hf_ids = list(hf_tok(text).input_ids)
        add_bos = bool(hf_ids) and hf_ids[0] == hf_tok.bos_token_id
        ll_ids = list(llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))
        if ll_ids == hf_ids:
            same += 1
        elif not example:
            example = f"{text[:40]!r}: transformers {hf_ids[:12]}, llama.cpp {ll_ids[:12]}"
    return f"{same}/{len(samples)}", example


def llama_tokenizer_agreement(a: Any, b: Any, samples: tuple[str, ...] = TOKENIZER_SAMPLES) -> tuple[str, str]:
    """The same for two llama.cpp models (a quantized GGUF and its source)."""
    same = 0
    example = ""
    for text in samples:
        x = list(a.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        y = list(b.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        same += int(x == y)
        if x != y and not example:
            example = f"{text[:40]!r}: source {x[:12]}, output {y[:12]}"
    return f"{same}/{len(samples)}", example


# -- the verifications ---------------------------------------------------------------------------
def check(result: Comparison, what: str) -> dict[str, Any]:
    failures = result.failures()
    if failures:
        raise ConvertError(f"verification failed for {what}: {'; '.join(failures)} [{result.text()}]")
    return result.summary()


def compare_gguf_with_hf(
    hf_dir: Path, gguf_path: Path, kind: str, hf_model: Any = None, check_: Check = _no_check
) -> Comparison:
    """GGUF (llama.cpp) vs its HF source (transformers): every figure, judged by nobody yet. The
    tokenizer goes first: when it differs, nothing else is computed."""
    tokenizer, ids = _shared_tokens(hf_dir, gguf_path, kind, check_)
    if isinstance(ids, Comparison):
        return ids
    model = load_hf_model(hf_model if hf_model is not None else hf_dir)
    check_()
    reference = hf_logits(model, ids, check_)
    ref_greedy = hf_greedy(model, ids[:GREEDY_PROMPTS], check=check_)
    del model
    llm = open_llama(gguf_path, n_ctx=_n_ctx(ids))
    try:
        candidate, ranks = teacher_forced(lambda seqs: gguf_logits(llm, seqs, check_), ids, ref_greedy)
    finally:
        llm.close()
    result = judge_greedy(compare(reference, candidate, kind), ranks)
    result.tokenizer_match, result.tokenizer_example = tokenizer
    return result


def verify_gguf_against_hf(
    hf_dir: Path, gguf_path: Path, kind: str, hf_model: Any = None, label: str = "", check_: Check = _no_check
) -> dict[str, Any]:
    """GGUF output (llama.cpp) vs its HF source (transformers)."""
    result = compare_gguf_with_hf(hf_dir, gguf_path, kind, hf_model, check_)
    return check(result, label or f"{gguf_path.name} vs {hf_dir.name}")


def compare_hf_with_gguf(gguf_path: Path, hf_dir: Path, kind: str, check_: Check = _no_check) -> Comparison:
    """HF output (transformers) vs its GGUF source (llama.cpp)."""
    tokenizer, ids = _shared_tokens(hf_dir, gguf_path, kind, check_)
    if isinstance(ids, Comparison):
        return ids
    llm = open_llama(gguf_path, n_ctx=_n_ctx(ids))
    try:
        reference = gguf_logits(llm, ids, check_)
        ref_greedy = gguf_greedy(llm, ids[:GREEDY_PROMPTS], check=check_)
    finally:
        llm.close()
    model = load_hf_model(hf_dir)
    check_()
    candidate, ranks = teacher_forced(lambda seqs: hf_logits(model, seqs, check_), ids, ref_greedy)
    result = judge_greedy(compare(reference, candidate, kind), ranks)
    result.tokenizer_match, result.tokenizer_example = tokenizer
    return result


def verify_hf_against_gguf(
    gguf_path: Path, hf_dir: Path, kind: str = "dequantized", label: str = "", check_: Check = _no_check
) -> dict[str, Any]:
    """HF output (transformers) vs its GGUF source (llama.cpp), e.g. after dequantizing."""
    return check(compare_hf_with_gguf(gguf_path, hf_dir, kind, check_), label or f"{hf_dir.name} vs {gguf_path.name}")


def compare_quantized(source: Path, output: Path, kind: str, check_: Check = _no_check) -> tuple[Comparison, str]:
    """A quantized GGUF vs its source, both in llama.cpp; also a sample of the output's text."""
    src = open_llama(source)
    try:
        ids = [list(src.tokenize(p.encode("utf-8"), add_bos=True)) for p in PROMPTS]
        reference = gguf_logits(src, ids, check_)
        ref_greedy = gguf_greedy(src, ids[:GREEDY_PROMPTS], check=check_)
        out = open_llama(output)
        try:
            tokenizer = llama_tokenizer_agreement(src, out)
            candidate, ranks = teacher_forced(lambda seqs: gguf_logits(out, seqs, check_), ids, ref_greedy)
            sample = PROMPTS[0] + out.detokenize(gguf_greedy(out, ids[:1], check=check_)[0]).decode(
                "utf-8", errors="replace"
            )
        finally:
            out.close()
    finally:
        src.close()
    result = judge_greedy(compare(reference, candidate, kind), ranks)
    result.tokenizer_match, result.tokenizer_example = tokenizer
    return result, sample


def verify_quantized(
    source: Path, output: Path, kind: str = "Q4_K_M", label: str = "", check_: Check = _no_check
) -> dict[str, Any]:
    """A quantized GGUF vs the GGUF it came from, both in llama.cpp, plus a short generation."""
    result, sample = compare_quantized(source, output, kind, check_)
    summary = check(result, label or f"{output.name} vs {source.name}")
    summary["sample"] = sample
    return summary
