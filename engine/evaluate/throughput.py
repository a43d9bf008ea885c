"""Speed of a model: prompt processing tokens/s, generation tokens/s and time to first token.

Measured the way `llama-bench` does, on token ids rather than text, so no chat template or
tokenizer quirk changes the numbers: a prompt of `prompt_len` pseudo-random (seeded) tokens is
processed from an empty cache (prompt processing, "pp"), the first token is picked greedily
(TTFT = prompt processing + that pick), then `gen_len` single-token decode steps follow
(generation, "tg"). One untimed warm-up, then `reps` timed repetitions; each figure is reported
as median, min, max and standard deviation, because single runs on a shared machine wander.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.evaluate.models import EvalError, LoadedModel, load_model
from engine.jobs import JobContext


@dataclass
class Spread:
    median: float
    min: float
    max: float
    stdev: float
    values: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            return cls(0.0, 0.0, 0.0, 0.0, [])
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.median(values), min(values), max(values), sd, list(values))

    def text(self, digits: int = 1) -> str:
        if len(self.values) < 2:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} ± {self.stdev:.{digits}f}"


@dataclass
class Repetition:
    prompt_s: float
    ttft_s: float
    gen_s: float


@dataclass
class SpeedResult:
    backend: str
    model: str
    prompt_len: int
    gen_len: int
    reps: int
    prompt_tps: Spread  # prompt tokens / prompt processing time
    gen_tps: Spread  # generated tokens / decode time
    ttft_s: Spread
    details: dict[str, Any] = field(default_factory=dict)
    runs: list[Repetition] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (f"pp{self.prompt_len} {self.prompt_tps.text()} tok/s · tg{self.gen_len} {self.gen_tps.text()} tok/s · "
                f"TTFT {self.ttft_s.median * 1000:.0f} ms")


def prompt_ids(n: int, n_vocab: int, avoid: set[int] | None = None, seed: int = 0) -> list[int]:
    """`n` reproducible pseudo-random token ids (specials avoided: some end generation)."""
    rng = random.Random(seed)
    avoid = avoid or set()
    lo = min(256, max(0, n_vocab // 4))  # the low ids are often control/byte tokens
    out: list[int] = []
    while len(out) < n:
        tok = rng.randrange(lo, n_vocab)
        if tok not in avoid:
            out.append(tok)
    return out


# -- llama.cpp ----------------------------------------------------------------------------------
def _llama_argmax(llm: Any) -> int:
    import llama_cpp
    import numpy as np

    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return int(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).argmax())


def _llama_once(llm: Any, prompt: list[int], gen_len: int) -> Repetition:
    llm.reset()
    start = time.perf_counter()
    llm.eval(prompt)
    prompt_done = time.perf_counter()
    token = _llama_argmax(llm)
    first = time.perf_counter()
    for _ in range(gen_len):
        llm.eval([token])
        token = _llama_argmax(llm)
    end = time.perf_counter()
    return Repetition(prompt_done - start, first - start, end - first)


# -- transformers -------------------------------------------------------------------------------
def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cache_kwarg(model: Any) -> str:
    """transformers 5.x renames `past_key_values` to `cache` (the old name warns)."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _hf_once(model: Any, prompt: list[int], gen_len: int) -> Repetition:
    import torch
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids = torch.tensor([prompt], device=device)
    key = _cache_kwarg(model)
    cache = DynamicCache(config=model.config)  # filled in place by every forward call
    with torch.no_grad():
        _sync(device)
        start = time.perf_counter()
        out = model(input_ids=ids, use_cache=True, **{key: cache})
        _sync(device)
        prompt_done = time.perf_counter()
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        token.item()
        first = time.perf_counter()
        for _ in range(gen_len):
            out = model(input_ids=token, use_cache=True, **{key: cache})
            token = out.logits[:, -1].argmax(-1, keepdim=True)
        token.item()  # waits for the device
        end = time.perf_counter()
    return Repetition(prompt_done - start, first - start, end - first)


def measure(
    model: str | Path | LoadedModel,
    *,
    backend: str = "auto",
    prompt_len: int = 512,
    gen_len: int = 128,
    reps: int = 3,
    warmup: bool = True,
    job: JobContext | None = None,
    phase: str = "speed",
    **load_options: Any,
) -> SpeedResult:
    """Measure `model`'s speed (see the module text). Loads the model unless given loaded."""
    if prompt_len < 1 or gen_len < 1 or reps < 1:
        raise EvalError("prompt length, generated tokens and repetitions must each be at least 1")
    owned = not isinstance(model, LoadedModel)
    if job is not None:
        job.progress(0, None, "load model", force=True)
    n_ctx = prompt_len + gen_len + 8
    loaded = load_model(model, backend, n_ctx=n_ctx, logits_all=False, **load_options) if owned else model
    try:
        capacity = loaded.context_capacity
        if capacity is not None and capacity < n_ctx:
            raise EvalError(f"the model's context {capacity} is smaller than prompt + generation ({n_ctx})")
        avoid: set[int] = set()
        if loaded.backend == "llama.cpp":
            avoid = {loaded.handle.token_eos(), loaded.handle.token_bos()}
        elif loaded.tokenizer is not None:
            avoid = set(getattr(loaded.tokenizer, "all_special_ids", []) or [])
        prompt = prompt_ids(prompt_len, loaded.n_vocab, avoid)
        once = _llama_once if loaded.backend == "llama.cpp" else _hf_once
        total = reps + (1 if warmup else 0)
        runs: list[Repetition] = []
        for i in range(total):
            if job is not None:
                job.raise_if_cancelled()
                job.progress(i, total, phase, unit="runs", force=True)
            rep = once(loaded.handle, prompt, gen_len)
            if warmup and i == 0:
                continue
            runs.append(rep)
            if job is not None:
                job.metric(
                    len(runs), prompt_tps=prompt_len / rep.prompt_s, gen_tps=gen_len / rep.gen_s, ttft_s=rep.ttft_s
                )
        if job is not None:
            job.progress(total, total, phase, unit="runs", force=True)
        details = dict(loaded.details)
    finally:
        if owned:
            loaded.close()
    return SpeedResult(
        backend=loaded.backend,
        model=str(loaded.path),
        prompt_len=prompt_len,
        gen_len=gen_len,
        reps=reps,
        prompt_tps=Spread.of([prompt_len / r.prompt_s for r in runs]),
        gen_tps=Spread.of([gen_len / r.gen_s for r in runs]),
        ttft_s=Spread.of([r.ttft_s for r in runs]),
        details=details,
        runs=runs,
    )
