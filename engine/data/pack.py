"""Training examples, packing, and the collators that batch them.

Packing puts several tokenized examples into one sequence of at most `max_seq_len` tokens
without ever splitting an example. The boundaries travel with it as `seq_lengths` and as
`position_ids` that restart at 0 for every example: that is the format transformers reads for
packed ("padding-free") attention — `masking_utils.find_packed_sequence_indices` turns position
ids that restart into a block-diagonal causal mask for sdpa/eager, and flash-attention-2 gets
`cu_seq_lens` from them — and the format TRL's `DataCollatorWithFlattening`/padding-free
training produces. The label of each example's first token is -100 in a packed row, so the
loss never asks the last token of one example to predict the first token of the next.

Batching (`make_collator`): padding-free batches go through transformers'
`DataCollatorWithFlattening` (fed one feature per original example, so positions restart per
example even inside a pack). TRL's `DataCollatorForLanguageModeling(padding_free=True)` reads
`TrainExample.as_dict()` rows (input_ids, labels, seq_lengths) as is and builds the same batch
(tested), so an `SFTTrainer` on a pre-tokenized dataset of these rows works too. Padded batches
use a small collator here, because the library one (`DataCollatorForSeq2Seq`) needs a tokenizer
with a pad token, which many Llama tokenizers lack; the pad value does not matter under
attention_mask 0 and label -100.
Forward packed batches with no `attention_mask` and `use_cache=False` (transformers only looks
for packed sequences when there is neither a 2D mask nor a cache).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from engine.data.render import IGNORE_INDEX, Rendered


@dataclass(frozen=True, slots=True)
class TrainExample:
    """One training row: one example, or several packed ones (`len(seq_lengths) > 1`)."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    seq_lengths: list[int]  # per original example, in order; sums to len(input_ids)
    records: tuple[int, ...]  # record numbers (1-based) of the examples in this row

    @property
    def packed(self) -> bool:
        return len(self.seq_lengths) > 1

    def __len__(self) -> int:
        return len(self.input_ids)

    def segments(self) -> Iterator[tuple[list[int], list[int]]]:
        """(input_ids, labels) of each original example in the row."""
        start = 0
        for n in self.seq_lengths:
            yield self.input_ids[start : start + n], self.labels[start : start + n]
            start += n

    def as_dict(self) -> dict[str, Any]:
        """The row's columns (the same keys for every row, as an HF dataset needs). No
        attention_mask: collators build it for padded batches, and a packed row must not have
        one (an all-ones mask would let examples attend to each other)."""
        return {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "position_ids": self.position_ids,
            "seq_lengths": self.seq_lengths,
        }


def single(rendered: Rendered, record: int) -> TrainExample:
    return concat([(rendered, record)])


def concat(parts: Sequence[tuple[Rendered, int]]) -> TrainExample:
    """Lay examples end to end with positions restarting and the first label of each masked."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    lengths: list[int] = []
    for rendered, _ in parts:
        n = len(rendered.input_ids)
        ids.extend(rendered.input_ids)
        seg_labels = list(rendered.labels)
        if seg_labels:
            seg_labels[0] = IGNORE_INDEX  # never predicted from inside this example
        labels.extend(seg_labels)
        positions.extend(range(n))
        lengths.append(n)
    return TrainExample(ids, labels, positions, lengths, tuple(record for _, record in parts))


def best_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: indices of `lengths` grouped into bins of at most `capacity`.

    Longest first, each into the fullest bin it still fits; bins come out in creation order and
    indices inside a bin in their original order. Every length must be <= capacity.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin index), sorted
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"example of {n} tokens does not fit in {capacity}; truncate or drop it first")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            space, b = free.pop(k)
            bins[b].append(i)
            bisect.insort(free, (space - n, b))
        else:
            bins.append([i])
            bisect.insort(free, (capacity - n, len(bins) - 1))
    return [sorted(b) for b in bins]


def pack_examples(items: Iterable[tuple[Rendered, int]], max_len: int, *, window: int = 1000) -> Iterator[TrainExample]:
    """Pack a stream of (rendered, record) into rows of <= max_len tokens, `window` at a time.

    The window bounds memory (a 1 GB dataset is never held whole) at a small cost in fill.
    """
    buffer: list[tuple[Rendered, int]] = []
    for item in items:
        buffer.append(item)
        if len(buffer) >= window:
            yield from _pack_window(buffer, max_len)
            buffer = []
    if buffer:
        yield from _pack_window(buffer, max_len)


def _pack_window(buffer: list[tuple[Rendered, int]], max_len: int) -> Iterator[TrainExample]:
    for group in best_fit([len(r.input_ids) for r, _ in buffer], max_len):
        yield concat([buffer[i] for i in group])


def count_packs(lengths: Iterable[int], max_len: int, *, window: int = 1000) -> int:
    """How many rows `pack_examples` makes from these lengths (for statistics without tokens)."""
    total = 0
    buffer: list[int] = []
    for n in lengths:
        buffer.append(n)
        if len(buffer) >= window:
            total += len(best_fit(buffer, max_len))
            buffer = []
    if buffer:
        total += len(best_fit(buffer, max_len))
    return total


def make_collator(
    *, padding_free: bool, pad_token_id: int = 0, flash_attn_kwargs: bool = False
) -> Callable[[list[TrainExample]], dict[str, Any]]:
    """A function turning a list of TrainExamples into a batch of torch tensors.

    padding_free=True: every original example of every row is flattened into one [1, N] row
    with restarting position_ids (transformers' DataCollatorWithFlattening). Required for
    packed rows. padding_free=False: right-padded [B, T] with attention_mask (unpacked only).
    """
    if padding_free:
        from transformers import DataCollatorWithFlattening

        flatten = DataCollatorWithFlattening(return_flash_attn_kwargs=flash_attn_kwargs, return_tensors="pt")

        def collate_flat(batch: list[TrainExample]) -> dict[str, Any]:
            features = [{"input_ids": ids, "labels": labels} for ex in batch for ids, labels in ex.segments()]
            return flatten(features)

        return collate_flat

    def collate_padded(batch: list[TrainExample]) -> dict[str, Any]:
        import torch

        if any(ex.packed for ex in batch):
            raise ValueError("packed rows need a padding-free collator (make_collator(padding_free=True))")
        width = max(len(ex) for ex in batch)
        ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ex in enumerate(batch):
            n = len(ex)
            ids[row, :n] = torch.tensor(ex.input_ids, dtype=torch.long)
            labels[row, :n] = torch.tensor(ex.labels, dtype=torch.long)
            mask[row, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate_padded
