"""Render an Example through the model's chat template and compute the loss mask.

Labels are the input ids with every position that must not be trained on set to -100 (the
value transformers' loss ignores). With `loss_on="assistant"` (the default) only assistant
turns are trained on, each including its end-of-turn token (`<|im_end|>`, `<|eot_id|>`,
`<end_of_turn>`), so the model learns to stop; `loss_on="all"` trains on every token.

How the assistant tokens are found: if the template marks them with `{% generation %}`,
transformers' own `return_assistant_tokens_mask` is used. Otherwise (most templates) by prefix
rendering: the text before turn i's content is the conversation up to i rendered with the
generation prompt, and the turn ends where the conversation up to and including i ends (minus
trailing whitespace, which belongs to the separator between turns). Character spans map to
tokens through the fast tokenizer's offsets. A template that re-renders earlier turns (so these
prefixes do not line up) and has no generation tags gives a `template` problem for that record.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from typing import Any

from engine.data.formats import Example
from engine.data.problems import DataError, RecordProblem

IGNORE_INDEX = -100
LOSS_ON: tuple[str, ...] = ("assistant", "all")
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


@dataclass(frozen=True, slots=True)
class Rendered:
    """One tokenized example. `text`/`offsets` are kept only when asked (for previews)."""

    input_ids: list[int]
    labels: list[int]
    text: str = ""
    offsets: list[tuple[int, int]] | None = None
    truncated_from: int = 0  # original token count when truncated, else 0

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def n_trained(self) -> int:
        return len(self.labels) - self.labels.count(IGNORE_INDEX)

    def truncate(self, n: int) -> Rendered:
        """Keep the first `n` tokens (the end is cut, as TRL's `truncation_mode="keep_start"`)."""
        if len(self.input_ids) <= n:
            return self
        return replace(
            self,
            input_ids=self.input_ids[:n],
            labels=self.labels[:n],
            offsets=None if self.offsets is None else self.offsets[:n],
            truncated_from=self.truncated_from or len(self.input_ids),
        )

    def trained_spans(self) -> list[tuple[int, int]]:
        """Character spans of `text` covered by trained tokens (merged), for highlighting."""
        if self.offsets is None:
            return []
        spans: list[tuple[int, int]] = []
        for (start, end), label in zip(self.offsets, self.labels):
            if label == IGNORE_INDEX or end <= start:
                continue
            if spans and start <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            else:
                spans.append((start, end))
        return spans


class Renderer:
    """Turns Examples into token ids and labels for one tokenizer."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        loss_on: str = "assistant",
        chat_template: str | None = None,
        keep_text: bool = False,
        chat_only: bool = False,
    ) -> None:
        """`chat_only`: the template is a built-in one chosen for a model that has none, so it
        renders chat records only; prompt/completion records stay plain text + completion, as
        a base model is used."""
        if loss_on not in LOSS_ON:
            raise DataError(f"unknown loss mode {loss_on!r}; use one of {', '.join(LOSS_ON)}")
        self.tokenizer = tokenizer
        self.loss_on = loss_on
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None) or None
        if isinstance(self.chat_template, dict):  # several named templates: use the default one
            self.chat_template = self.chat_template.get("default") or next(iter(self.chat_template.values()))
        self.keep_text = keep_text
        self.chat_only = chat_only
        self.generation_tags = bool(self.chat_template and _GENERATION_TAG.search(self.chat_template))
        self._offsets_ok = True
        self._last_offsets: list[tuple[int, int]] | None = None

    @property
    def has_template(self) -> bool:
        return bool(self.chat_template)

    def render(self, example: Example) -> Rendered:
        if example.kind == "text":
            return self._plain("", example.text)
        if example.kind == "completion" and (self.chat_only or not self.has_template):
            return self._plain(example.messages[0]["content"], example.messages[1]["content"])
        if not self.has_template:
            from engine.chat.templates import BUILTIN_TEMPLATES

            name = getattr(self.tokenizer, "name_or_path", "") or "the tokenizer"
            raise DataError(
                f"{name}: the tokenizer has no chat template, so chat records cannot be rendered; "
                f"give one with --chat-template NAME|FILE ({', '.join(BUILTIN_TEMPLATES)}, or a Jinja file)"
            )
        return self._chat(example.message_list())

    # -- chat -------------------------------------------------------------------------------
    def _apply(self, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
        try:
            out = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt, chat_template=self.chat_template
            )
        except Exception as exc:  # noqa: BLE001 - jinja raise_exception, TemplateError, KeyError...
            message = str(exc).strip().splitlines()
            raise RecordProblem("template", f"chat template error: {message[0] if message else type(exc).__name__}") from None
        return out if isinstance(out, str) else out[0]

    def _chat(self, messages: list[dict[str, Any]]) -> Rendered:
        full = self._apply(messages, False)
        if self.loss_on == "all":
            ids, _ = self._tokenize(full, [])
            return self._result(full, ids, list(ids), self._last_offsets)
        if self.generation_tags:
            return self._chat_generation_tags(messages, full)
        spans: list[tuple[int, int]] = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._apply(messages[:i], True) if i else self._assistant_header()
            upto = full if i == len(messages) - 1 else self._apply(messages[: i + 1], False)
            if not (upto.startswith(before) and full.startswith(upto)):
                raise RecordProblem(
                    "template",
                    f"the chat template renders turn {i + 1} differently once later turns follow, so the assistant "
                    "tokens cannot be located; use --loss-on all, or a template with {% generation %} tags",
                )
            end = len(upto.rstrip())
            spans.append((len(before), max(end, len(before))))
        ids, trained = self._tokenize(full, spans)
        labels = [tok if keep else IGNORE_INDEX for tok, keep in zip(ids, trained)]
        return self._result(full, ids, labels, self._last_offsets)

    def _assistant_header(self) -> str:
        """What the template writes before the content of a first, assistant turn (the empty
        conversation cannot be rendered, so render a marker and cut at it)."""
        marker = "LLMDECKMARKER7f3a"
        text = self._apply([{"role": "assistant", "content": marker}], False)
        if marker not in text:
            raise RecordProblem("template", "the chat template does not render an assistant turn that opens the conversation")
        return text[: text.index(marker)]

    def _chat_generation_tags(self, messages: list[dict[str, Any]], full: str) -> Rendered:
        try:
            out = self.tokenizer.apply_chat_template(
                messages,
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
                chat_template=self.chat_template,
            )
        except Exception as exc:  # noqa: BLE001
            message = str(exc).strip().splitlines()
            raise RecordProblem("template", f"chat template error: {message[0] if message else type(exc).__name__}") from None
        ids = list(out["input_ids"])
        mask = list(out["assistant_masks"])
        labels = [tok if m else IGNORE_INDEX for tok, m in zip(ids, mask)]
        offsets = None
        if self.keep_text:
            check, _ = self._tokenize(full, [])
            offsets = self._last_offsets if check == ids else None
        return self._result(full, ids, labels, offsets)

    # -- raw text and plain prompt/completion ------------------------------------------------
    def _plain(self, prompt: str, completion: str) -> Rendered:
        """Raw text (prompt == "") or prompt + completion without a template, ending in EOS."""
        text = prompt + completion
        tok = self.tokenizer
        offsets: list[tuple[int, int]] | None = None
        want_offsets = self._offsets_ok and (self.keep_text or bool(prompt))
        try:
            enc = tok(text, add_special_tokens=True, return_offsets_mapping=want_offsets)
        except (NotImplementedError, ValueError, TypeError):
            self._offsets_ok = False
            enc = tok(text, add_special_tokens=True)
        ids = list(enc["input_ids"])
        if "offset_mapping" in enc:
            offsets = [tuple(o) for o in enc["offset_mapping"]]
        eos_id = tok.eos_token_id
        if eos_id is not None and (not ids or ids[-1] != eos_id):
            ids.append(eos_id)
            if offsets is not None:
                eos_text = tok.eos_token or ""
                offsets.append((len(text), len(text) + len(eos_text)))
                text = text + eos_text
        if self.loss_on == "all" or not prompt:
            labels = list(ids)
        else:
            start = len(prompt)
            if offsets is None:  # no offsets (slow tokenizer): count the prompt's tokens
                n_prompt = len(tok(prompt, add_special_tokens=True)["input_ids"])
                labels = [IGNORE_INDEX] * n_prompt + ids[n_prompt:]
            else:
                labels = [t if end > start or (s == end and s >= start) else IGNORE_INDEX for t, (s, end) in zip(ids, offsets)]
        return self._result(text, ids, labels, offsets)

    # -- tokenization ------------------------------------------------------------------------
    def _tokenize(self, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[bool]]:
        """Token ids of `text` (special tokens are already in it) and, per token, whether it
        overlaps one of the character `spans`. Sets `_last_offsets`."""
        tok = self.tokenizer
        self._last_offsets = None
        if self._offsets_ok:
            try:
                enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            except (NotImplementedError, ValueError, TypeError):
                self._offsets_ok = False
            else:
                ids = list(enc["input_ids"])
                offsets = [tuple(o) for o in enc["offset_mapping"]]
                self._last_offsets = offsets
                return ids, _overlaps(offsets, spans)
        ids = list(tok(text, add_special_tokens=False)["input_ids"])
        trained = [False] * len(ids)
        for start, end in spans:
            a = len(tok(text[:start], add_special_tokens=False)["input_ids"])
            b = len(tok(text[:end], add_special_tokens=False)["input_ids"])
            for j in range(a, min(b, len(ids))):
                trained[j] = True
        return ids, trained

    def _result(self, text: str, ids: list[int], labels: list[int], offsets: Any) -> Rendered:
        if not self.keep_text:
            return Rendered(ids, labels)
        return Rendered(ids, labels, text, offsets if offsets is not None and len(offsets) == len(ids) else None)


def _overlaps(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """Per token: does its character range overlap any span? Offsets are sorted, so each span
    is two binary searches (a Python loop over every token was a fifth of the scan time)."""
    out = [False] * len(offsets)
    if not spans:
        return out
    starts = [start for start, _ in offsets]
    ends = [end for _, end in offsets]
    for s, e in spans:
        a = bisect.bisect_right(ends, s)  # first token ending after the span starts
        b = bisect.bisect_left(starts, e)  # first token starting at or after its end
        if b > a:
            out[a:b] = [True] * (b - a)
    return out
