"""Histogram and cut counts match a direct computation."""

from __future__ import annotations

import json
import random

import pytest

from engine.data.dataset import DataSpec, prepare
from engine.data.stats import format_histogram, histogram, percentile
from engine.data.tokenizer import load_tokenizer
from tests.helpers.tiny_model import cached_tiny_tokenizer


def direct_counts(lengths, edges):
    counts = [0] * (len(edges) - 1)
    for n in lengths:
        for i in range(len(counts)):
            low = edges[i] if i else -1
            if low < n <= edges[i + 1]:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
    return counts


@pytest.mark.parametrize("cut", [None, 64, 100, 512, 2048, 37])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_matches_direct_counts(cut, seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 3000) for _ in range(500)] + [1, 64, 65, 512, 513]
    hist = histogram(lengths, bins=16, cut=cut)
    assert sum(hist.counts) == len(lengths)
    assert hist.edges[0] == 0 and hist.edges[-1] >= max(lengths)
    assert all(a < b for a, b in zip(hist.edges, hist.edges[1:], strict=False))
    assert hist.counts == direct_counts(lengths, hist.edges)
    if cut:
        assert cut in hist.edges  # the cut is a bar boundary
        i = hist.cut_index
        assert sum(hist.counts[:i]) == sum(1 for n in lengths if n <= cut)
        assert sum(hist.counts[i:]) == sum(1 for n in lengths if n > cut)


def test_whole_number_bar_widths_for_round_cuts():
    hist = histogram([10, 2000], bins=16, cut=2048)
    assert hist.edges[:3] == [0, 128, 256] and hist.cut_index == 16
    wide = histogram([10, 2000, 4000], bins=16, cut=2048)  # room for the bars past the cut
    assert wide.edges[:3] == [0, 256, 512] and wide.cut_index == 8 and len(wide.counts) == 16


def test_empty_and_outliers():
    assert sum(histogram([], cut=64).counts) == 0
    hist = histogram([10] * 5 + [10**6], bins=8, cut=64)
    assert len(hist.counts) <= 16 and hist.counts[-1] == 1 and hist.edges[-1] == 10**6


def test_format_histogram_draws_the_cut_line_between_bars():
    hist = histogram([5, 10, 60, 70], bins=4, cut=40)
    lines = format_histogram(hist, width=10, over_label="2 longer")
    cut = next(i for i, line in enumerate(lines) if "max_seq_len 40" in line)
    assert "2 longer" in lines[cut] and cut == hist.cut_index


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
    assert percentile([], 50) == 0


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(cached_tiny_tokenizer("chatml"))


@pytest.fixture
def chat_file(tmp_path):
    rng = random.Random(7)
    words = ["the", "model", "learns", "to", "answer", "short", "questions", "with", "short", "answers"]
    path = tmp_path / "chat.jsonl"
    with open(path, "w") as f:
        for i in range(60):
            q = " ".join(rng.choices(words, k=rng.randint(1, 30)))
            a = " ".join(rng.choices(words, k=rng.randint(1, 40)))
            turns = [{"role": "user", "content": f"{i} {q}"}, {"role": "assistant", "content": a}]
            f.write(json.dumps({"messages": turns}) + "\n")
    return path


@pytest.mark.parametrize("policy", ["truncate", "drop", "pack"])
def test_cut_counts_match_a_direct_computation(chat_file, tok, policy):
    # direct: render every record with no limit, count by hand
    full = prepare(DataSpec(str(chat_file)), tok)
    lengths = [len(row.input_ids) for row in full.examples()]
    assert len(lengths) == 60
    limit = sorted(lengths)[44]  # about a quarter of the records are longer
    over = [n for n in lengths if n > limit]
    assert over, "the sample must have long records"

    data = prepare(DataSpec(str(chat_file), max_seq_len=limit, policy=policy), tok)
    rows = list(data.examples())
    s = data.stats
    assert s.over == len(over)
    assert list(s.lengths) == lengths
    assert all(len(row) <= limit for row in rows)
    if policy == "drop":
        assert s.dropped_too_long == len(over) and s.truncated == 0
        assert s.kept == len(rows) == 60 - len(over)
        assert s.tokens_cut == sum(over)
    else:
        assert s.truncated == len(over) and s.dropped_too_long == 0
        assert s.tokens_cut == sum(n - limit for n in over) + limit * s.dropped_after_cut
        assert s.kept == 60 - s.dropped_after_cut
    if policy == "pack":
        assert s.packs == len(rows) < s.kept
        assert sum(len(row.seq_lengths) for row in rows) == s.kept
    assert s.kept_tokens == sum(len(row) for row in rows)
    # scan (the report) gives the same numbers without materializing rows
    report = prepare(DataSpec(str(chat_file), max_seq_len=limit, policy=policy), tok).scan().stats
    counters = (
        "over", "truncated", "dropped_too_long", "dropped_after_cut", "tokens_cut", "kept", "kept_tokens", "packs"
    )
    for key in counters:
        assert getattr(report, key) == getattr(s, key), key
    hist = report.histogram()
    assert sum(hist.counts[hist.cut_index :]) == len(over)


def test_truncation_that_leaves_nothing_to_train_drops_the_example(tmp_path, tok):
    path = tmp_path / "long_prompt.jsonl"
    prompt = "the model learns " * 30
    turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": "ok"}]
    path.write_text(json.dumps({"messages": turns}) + "\n")
    data = prepare(DataSpec(str(path), max_seq_len=16), tok)
    assert list(data.examples()) == []
    assert data.stats.truncated == 1 and data.stats.dropped_after_cut == 1 and data.stats.dropped == 1


def test_stats_to_dict_is_json(chat_file, tok):
    data = prepare(DataSpec(str(chat_file), max_seq_len=48, policy="pack"), tok)
    d = data.scan().stats.to_dict()
    json.dumps(d)
    assert d["length"]["count"] == 60 and d["histogram"]["cut"] == 48 and 0 < d["pack_fill"] <= 1
