"""Perplexity of a model on a local text file, with a sliding window and a stride.

The text is tokenized once. Windows of `ctx` tokens start every `stride` tokens; each token is
scored exactly once, by the first window that holds it after the tokens already scored, so with
`stride < ctx` every scored token has at least `ctx - stride` tokens of context (the method of
the transformers perplexity guide). When the model's tokenizer adds BOS, every window starts
with BOS (as llama.cpp's `llama-perplexity` does): models such as Gemma give nonsense without
it, and then the file's first token is scored too.

PPL = exp(mean negative log-likelihood over the scored tokens), computed in float64 from the
backend's logits: transformers' forward pass, or llama.cpp's `Llama(logits_all=True)` +
`eval(ids)` + `scores`. Both backends run the same windows over the same ids when their
tokenizers agree, so a model and its GGUF give close numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.evaluate.models import EvalError, LoadedModel, load_model
from engine.jobs import JobContext

DEFAULT_CTX = 512
MAX_FILE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Window:
    """Tokens `[begin, end)` of the text are fed (after BOS, if any); `[score_from, end)` are scored."""

    begin: int
    end: int
    score_from: int


@dataclass
class PerplexityResult:
    ppl: float
    nll: float  # mean negative log-likelihood per scored token (nats)
    tokens_evaluated: int  # scored tokens
    tokens_in_file: int
    windows: int
    ctx: int
    stride: int
    bos: bool
    backend: str
    model: str
    file: str
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_evaluated / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tokens_per_s": self.tokens_per_s}


def plan_windows(n_tokens: int, ctx: int, stride: int, *, bos: bool) -> list[Window]:
    """The sliding windows over `n_tokens` tokens. Without BOS a window's first token has no
    prediction, so it is scored only if an earlier window covered it."""
    span = ctx - 1 if bos else ctx
    if span < 2:
        raise EvalError(f"context {ctx} is too small; use at least {3 if bos else 2} tokens")
    if not 0 < stride <= span:
        raise EvalError(f"stride {stride} must be between 1 and the window's text length {span} (context {ctx})")
    if n_tokens < 2:
        raise EvalError("the text is shorter than 2 tokens; perplexity needs more text")
    windows: list[Window] = []
    begin = prev_end = 0
    while True:
        end = min(begin + span, n_tokens)
        score_from = max(prev_end, begin if bos else begin + 1)
        if score_from < end:
            windows.append(Window(begin, end, score_from))
        prev_end = end
        if end >= n_tokens:
            return windows
        begin += stride


def read_text(path: str | Path) -> str:
    path = Path(path).expanduser()
    if not path.is_file():
        raise EvalError(f"text file not found: {path}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise EvalError(f"{path} is {size / 2**20:.0f} MB; perplexity reads at most {MAX_FILE_BYTES // 2**20} MB (pass "
                        "--max-tokens on a shorter file)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EvalError(f"{path} is not UTF-8 text") from None
    if not text.strip():
        raise EvalError(f"{path} is empty")
    return text


# -- per-backend scoring ------------------------------------------------------------------------
def _logsumexp_rows(rows: Any) -> Any:
    import numpy as np

    rows = np.asarray(rows, dtype=np.float64)
    top = rows.max(axis=1, keepdims=True)
    return (top[:, 0] + np.log(np.exp(rows - top).sum(axis=1)))


def window_nll_llama(llm: Any, ids: list[int], first_target: int) -> tuple[float, int]:
    """Sum of -log p(ids[t] | ids[:t]) for t >= first_target, from llama.cpp's logits."""
    import numpy as np

    llm.reset()
    llm.eval(ids)
    total = 0.0
    targets = np.asarray(ids[first_target:], dtype=np.int64)
    chunk = 64  # rows at a time: a 256k vocabulary in float64 is 2 MB a row
    for start in range(0, len(targets), chunk):
        tgt = targets[start : start + chunk]
        rows = np.asarray(llm.scores[first_target - 1 + start : first_target - 1 + start + len(tgt)], dtype=np.float64)
        total += float((_logsumexp_rows(rows) - rows[np.arange(len(rows)), tgt]).sum())
    return total, len(targets)


def window_nll_transformers(model: Any, ids: list[int], first_target: int) -> tuple[float, int]:
    import torch

    device = next(model.parameters()).device
    total = 0.0
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=device)).logits[0, first_target - 1 : len(ids) - 1]
        targets = torch.tensor(ids[first_target:], device=device)
        for start in range(0, len(targets), 64):  # float64 rows of a big vocabulary, a few at a time
            logp = torch.log_softmax(logits[start : start + 64].double(), dim=-1)
            total -= float(logp.gather(1, targets[start : start + 64, None]).sum())
    return total, len(ids) - first_target


def perplexity_of_ids(
    model: LoadedModel,
    tokens: list[int],
    *,
    ctx: int,
    stride: int,
    bos: int | None,
    job: JobContext | None = None,
    phase: str = "perplexity",
) -> tuple[float, int, int]:
    """Total NLL, scored tokens and windows over `tokens` (no BOS in `tokens`)."""
    windows = plan_windows(len(tokens), ctx, stride, bos=bos is not None)
    total_score = sum(w.end - w.score_from for w in windows)
    nll, scored = 0.0, 0
    for i, w in enumerate(windows):
        if job is not None:
            job.raise_if_cancelled()
        prefix = [bos] if bos is not None else []
        ids = prefix + tokens[w.begin : w.end]
        first = len(prefix) + (w.score_from - w.begin)
        if model.backend == "llama.cpp":
            part, n = window_nll_llama(model.handle, ids, first)
        else:
            part, n = window_nll_transformers(model.handle, ids, first)
        if not math.isfinite(part):
            # NaN/inf logits: damaged weights (or a dtype that overflows). A number computed
            # from them would be saved and compared as if it meant something.
            raise EvalError(
                f"{model.path}: the model's output is not a number (NaN or infinite) in window {i + 1} of "
                f"{len(windows)}; its weights are damaged or overflow in this dtype. No result was saved."
            )
        nll += part
        scored += n
        if job is not None:
            job.progress(scored, total_score, phase, unit="tokens")
            job.metric(i + 1, ppl=math.exp(nll / scored), tokens=scored)
    return nll, scored, len(windows)


def perplexity(
    model: str | Path | LoadedModel,
    text_file: str | Path,
    *,
    backend: str = "auto",
    ctx: int = DEFAULT_CTX,
    stride: int | None = None,
    max_tokens: int | None = None,
    job: JobContext | None = None,
    phase: str = "perplexity",
    **load_options: Any,
) -> PerplexityResult:
    """Perplexity of `model` on `text_file`. `stride` defaults to half the window (every token
    then has at least half a window of context). `max_tokens` caps the text read."""
    text = read_text(text_file)
    owned = not isinstance(model, LoadedModel)
    if job is not None:
        job.progress(0, None, "load model", force=True)
    loaded = load_model(model, backend, n_ctx=ctx, logits_all=True, **load_options) if owned else model
    try:
        capacity = loaded.context_capacity
        if capacity is not None and capacity < ctx:
            raise EvalError(f"the model was loaded with context {capacity}, smaller than the window {ctx}")
        bos = loaded.bos_id()
        tokens = loaded.tokenize(text)
        if max_tokens:
            tokens = tokens[: int(max_tokens)]
        span = ctx - 1 if bos is not None else ctx
        stride = int(stride) if stride else max(1, span // 2)
        if job is not None:
            job.log(f"{len(tokens)} tokens, window {ctx}, stride {stride}, "
                    f"{'BOS per window' if bos is not None else 'no BOS'}")
        started = time.perf_counter()
        nll, scored, n_windows = perplexity_of_ids(loaded, tokens, ctx=ctx, stride=stride, bos=bos, job=job,
                                                   phase=phase)
        seconds = time.perf_counter() - started
    finally:
        if owned:
            loaded.close()
    return PerplexityResult(
        ppl=math.exp(nll / scored),
        nll=nll / scored,
        tokens_evaluated=scored,
        tokens_in_file=len(tokens),
        windows=n_windows,
        ctx=ctx,
        stride=stride,
        bos=bos is not None,
        backend=loaded.backend,
        model=str(loaded.path),
        file=str(Path(text_file).expanduser()),
        seconds=seconds,
    )
