"""Perplexity: the sliding-window plan, exactness against logits computed here, and the same
model through transformers and through llama.cpp (its GGUF) giving the same number."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.evaluate.models import EvalError, load_model
from engine.evaluate.perplexity import perplexity, plan_windows
from engine.events import Metric, Progress
from engine.jobs import JobContext
from tests.engine.evaluate_helpers import PROSE, tiny_gguf, tiny_hf
from tests.helpers.requirements import require_module


@pytest.mark.parametrize("n,ctx,stride,bos",
                         [(100, 16, 8, True), (100, 16, 15, True), (100, 16, 16, False), (37, 10, 3, False),
                          (5, 64, 32, True)])
def test_windows_score_every_token_once(n: int, ctx: int, stride: int, bos: bool) -> None:
    windows = plan_windows(n, ctx, stride, bos=bos)
    scored = [t for w in windows for t in range(w.score_from, w.end)]
    assert scored == sorted(set(scored))  # each token at most once, in order
    first = 0 if bos else 1
    if stride <= (ctx - 1 if bos else ctx) - (0 if bos else 1) or len(windows) == 1:
        assert scored == list(range(first, n))  # and every token (BOS: even the first)
    for w in windows:
        assert w.end - w.begin <= (ctx - 1 if bos else ctx)
        if w is not windows[0]:
            assert w.score_from - w.begin >= (ctx - 1 if bos else ctx) - stride  # the promised context


def test_window_errors() -> None:
    with pytest.raises(EvalError, match="stride"):
        plan_windows(100, 16, 16, bos=True)  # the window holds only 15 text tokens after BOS
    with pytest.raises(EvalError, match="too small"):
        plan_windows(100, 2, 1, bos=True)
    with pytest.raises(EvalError, match="shorter"):
        plan_windows(1, 16, 8, bos=False)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="not found"):
        perplexity(tiny_hf(), tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(EvalError, match="empty"):
        perplexity(tiny_hf(), tmp_path / "empty.txt")
    with pytest.raises(EvalError, match="model not found"):
        perplexity(tmp_path / "nomodel", PROSE)


def _reference_ppl(model, tokenizer, ids: list[int], ctx: int, stride: int) -> tuple[float, int]:
    """The transformers perplexity guide's loop, written out here with labels and -100,
    BOS prepended to every window."""
    import torch

    bos = tokenizer.bos_token_id
    span = ctx - 1
    nlls, count, prev_end = [], 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + span, len(ids))
        trg = end - prev_end
        inp = torch.tensor([[bos] + ids[begin:end]])
        labels = inp.clone()
        labels[:, : inp.shape[1] - trg] = -100
        with torch.no_grad():
            logits = model(inp).logits.double()
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="sum")
        nlls.append(float(loss))
        count += trg
        prev_end = end
        if end == len(ids):
            break
    return math.exp(sum(nlls) / count), count


def test_equals_direct_computation_from_logits() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_hf()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tok(PROSE.read_text(), add_special_tokens=False)["input_ids"][:150]

    # one window holding the whole text: PPL = exp(mean cross-entropy of all next-token logits)
    with torch.no_grad():
        logits = model(torch.tensor([[tok.bos_token_id] + ids])).logits[0].double()
    direct = math.exp(float(torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids))))
    whole = perplexity(folder, PROSE, ctx=160, max_tokens=150)
    assert whole.tokens_evaluated == 150 and whole.windows == 1 and whole.bos
    assert whole.ppl == pytest.approx(direct, rel=1e-6)

    # sliding windows with overlap
    ref, count = _reference_ppl(model, tok, ids, ctx=40, stride=16)
    events: list = []
    slid = perplexity(folder, PROSE, ctx=40, stride=16, max_tokens=150, job=JobContext(events.append, min_interval=0))
    assert slid.tokens_evaluated == count == 150
    assert slid.ppl == pytest.approx(ref, rel=1e-6)
    assert slid.ppl != pytest.approx(whole.ppl, rel=1e-4)  # less context, another number
    progress = [e for e in events if isinstance(e, Progress) and e.phase == "perplexity"]
    assert progress[-1].done == progress[-1].total == 150
    assert [e for e in events if isinstance(e, Metric)]


def test_same_number_through_transformers_and_llama_cpp() -> None:
    require_module("llama_cpp")
    hf = perplexity(tiny_hf(), PROSE, ctx=64, stride=32, max_tokens=200)
    gguf = perplexity(tiny_gguf(), PROSE, ctx=64, stride=32, max_tokens=200)
    assert hf.backend == "transformers" and gguf.backend == "llama.cpp"
    assert gguf.tokens_evaluated == hf.tokens_evaluated == 200  # the two tokenizers agree
    assert gguf.ppl == pytest.approx(hf.ppl, rel=1e-3)


def test_loaded_model_is_reused_and_context_checked() -> None:
    require_module("llama_cpp")
    loaded = load_model(tiny_gguf(), n_ctx=32, logits_all=True, n_threads=1)
    try:
        first = perplexity(loaded, PROSE, ctx=32, max_tokens=60)
        again = perplexity(loaded, PROSE, ctx=32, max_tokens=60)
        assert first.ppl == pytest.approx(again.ppl, rel=1e-9)
        with pytest.raises(EvalError, match="smaller than the window"):
            perplexity(loaded, PROSE, ctx=64, max_tokens=60)
    finally:
        loaded.close()


def test_the_same_gguf_through_both_backends() -> None:
    """transformers can read a GGUF too (dequantized): the very same file, two engines."""
    require_module("llama_cpp")
    via_hf = perplexity(tiny_gguf(), PROSE, backend="transformers", ctx=64, max_tokens=120, n_threads=1)
    via_llama = perplexity(tiny_gguf(), PROSE, ctx=64, max_tokens=120, n_threads=1)
    assert via_hf.backend == "transformers" and via_llama.backend == "llama.cpp"
    assert via_hf.tokens_evaluated == via_llama.tokens_evaluated == 120
    assert via_hf.ppl == pytest.approx(via_llama.ppl, rel=1e-3)
