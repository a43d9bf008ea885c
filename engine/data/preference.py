"""Datasets for preference and RL training: pairs, unpaired labels, prompts.

Formats (name: the fields that identify it), detected like the SFT formats in `formats.py`:
- `preference`: `chosen`, `rejected`, optional `prompt` (DPO, ORPO; KTO splits each pair in two).
  Each field is plain text or a message list. Two common shapes need no prompt field:
  Anthropic-HH (`chosen`/`rejected` are whole conversations as "\\n\\nHuman: ... \\n\\nAssistant:
  ..." text) and UltraFeedback (`chosen`/`rejected` are message lists that start with the same
  user turns). The prompt is then the turns both answers share; the answers are what follows.
- `unpaired`: `prompt`, `completion`, `label` (true = a good answer) — KTO's unpaired labels.
- `prompt`: `prompt` only (GRPO); every other scalar column is kept (as text) for the reward
  functions, e.g. an `answer` column that `exact:answer` compares with.

Each record normalizes to a `PreferenceExample`. Plain-text fields are turned into a user and an
assistant turn when the tokenizer has a chat template (as SFT's prompt/completion records are),
so the model is trained in the format it is chatted with. `trl_row` writes the record in TRL's
dataset format (conversational or standard), and `render_pair` renders both answers of a pair
through the chat template, with their token counts, for Data mode and `llmdeck data inspect`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.data.problems import DataError, RecordProblem
from engine.data.values import json_type, maybe_json_list

RL_FORMATS: tuple[str, ...] = ("preference", "unpaired", "prompt")
FIELDS: dict[str, tuple[str, ...]] = {
    "preference": ("prompt", "chosen", "rejected"),
    "unpaired": ("prompt", "completion", "label"),
    "prompt": ("prompt",),
}
DESCRIPTIONS: dict[str, str] = {
    "preference": "preference pairs",
    "unpaired": "unpaired labels (KTO)",
    "prompt": "prompts (GRPO)",
}
# Which formats each method trains on (KTO takes pairs too: each becomes a good and a bad row;
# GRPO only needs the prompts, so any format with a prompt field is read as `prompt`).
METHOD_FORMATS: dict[str, tuple[str, ...]] = {
    "dpo": ("preference",),
    "orpo": ("preference",),
    "kto": ("unpaired", "preference"),
    "grpo": ("prompt",),
}

_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
_TRUE = ("true", "1", "yes", "good", "desirable")
_FALSE = ("false", "0", "no", "bad", "undesirable")

Messages = tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class PreferenceExample:
    """One normalized record. `prompt`/`chosen`/`rejected` are either all text (`str`) or all
    message tuples; `chosen` holds the completion of an unpaired record, `label` its verdict."""

    kind: str  # "pair" | "unpaired" | "prompt"
    prompt: str | Messages
    chosen: str | Messages = ""
    rejected: str | Messages = ""
    label: bool | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def conversational(self) -> bool:
        return not isinstance(self.prompt, str)

    def key(self) -> bytes:
        """Canonical bytes for duplicate detection."""
        payload = [self.kind, _jsonable(self.prompt), _jsonable(self.chosen), _jsonable(self.rejected), self.label]
        return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

    def as_conversation(self) -> PreferenceExample:
        """Plain text as a user turn and assistant turns (for a tokenizer with a chat template)."""
        if self.conversational:
            return self
        user = ({"role": "user", "content": self.prompt},)

        def answer(text: str | Messages) -> Messages:
            return ({"role": "assistant", "content": text},) if text else ()

        return PreferenceExample(self.kind, user, answer(self.chosen), answer(self.rejected), self.label, self.extra)


def detect(record: Mapping[str, Any], has: Any) -> str | None:
    """The RL format a record has (`has(record, canonical_field)` applies the user's mapping)."""
    if has(record, "chosen") and has(record, "rejected"):
        return "preference"
    if has(record, "prompt") and has(record, "completion") and has(record, "label"):
        return "unpaired"
    return None


def normalize(fmt: Any, value: dict[str, Any]) -> PreferenceExample:
    """`fmt` is the `FormatSpec` (its `f` maps canonical field names, `_turns` reads turns)."""
    if fmt.name == "preference":
        return _pair(fmt, value)
    if fmt.name == "unpaired":
        return _unpaired(fmt, value)
    if fmt.name == "prompt":
        return _prompt_only(fmt, value)
    raise DataError(f"unknown format {fmt.name!r}")  # pragma: no cover - checked by the caller


# -- per format ---------------------------------------------------------------------------------
def _pair(fmt: Any, value: dict[str, Any]) -> PreferenceExample:
    ckey, rkey, pkey = fmt.f("chosen"), fmt.f("rejected"), fmt.f("prompt")
    chosen = _field(fmt, value, ckey)
    rejected = _field(fmt, value, rkey)
    prompt = _field(fmt, value, pkey, optional=True)
    if isinstance(chosen, str) and isinstance(rejected, str) and prompt is None:
        hh_chosen, hh_rejected = _hh_messages(chosen), _hh_messages(rejected)
        if hh_chosen is None or hh_rejected is None:
            raise RecordProblem(
                "missing_field",
                f"no {pkey!r} field, and {ckey!r}/{rkey!r} are not Human:/Assistant: conversations; "
                "give the prompt separately",
            )
        chosen, rejected = hh_chosen, hh_rejected
    if isinstance(chosen, str) and isinstance(rejected, str) and isinstance(prompt, str):
        for key, text in ((pkey, prompt), (ckey, chosen), (rkey, rejected)):
            if not text.strip():
                raise RecordProblem("empty_turn", f"{key!r} is empty")
        if chosen == rejected:
            raise RecordProblem("duplicate", f"{ckey!r} and {rkey!r} are the same answer (both answers are the same)")
        return PreferenceExample("pair", prompt, chosen, rejected)
    # at least one side is a conversation: everything becomes messages
    chosen_m, rejected_m = _as_messages(chosen, "assistant"), _as_messages(rejected, "assistant")
    if prompt is None:
        shared = _shared_prefix(chosen_m, rejected_m)
        prompt_m, chosen_m, rejected_m = chosen_m[:shared], chosen_m[shared:], rejected_m[shared:]
    else:
        prompt_m = _as_messages(prompt, "user")
        # UltraFeedback repeats the prompt's turns at the start of both answers
        if chosen_m[: len(prompt_m)] == prompt_m and rejected_m[: len(prompt_m)] == prompt_m:
            chosen_m, rejected_m = chosen_m[len(prompt_m):], rejected_m[len(prompt_m):]
        elif _shared_prefix(chosen_m, rejected_m) and chosen_m[0]["role"] != "assistant":
            shared = _shared_prefix(chosen_m, rejected_m)
            prompt_m, chosen_m, rejected_m = chosen_m[:shared], chosen_m[shared:], rejected_m[shared:]
    if not prompt_m:
        raise RecordProblem(
            "missing_field", f"no prompt: {ckey!r} and {rkey!r} share no opening turns and there is no {pkey!r}"
        )
    for key, turns in ((ckey, chosen_m), (rkey, rejected_m)):
        if not turns:
            raise RecordProblem("empty_turn", f"{key!r} has no answer after the prompt (both answers are the same)")
        if turns[-1]["role"] != "assistant":
            raise RecordProblem("wrong_type", f"{key!r} does not end with an assistant turn")
    if prompt_m[-1]["role"] == "assistant":
        raise RecordProblem("wrong_type", "the prompt ends with an assistant turn; the answers must follow a user turn")
    if chosen_m == rejected_m:
        raise RecordProblem("duplicate", f"{ckey!r} and {rkey!r} are the same answer (both answers are the same)")
    return PreferenceExample("pair", tuple(prompt_m), tuple(chosen_m), tuple(rejected_m))


def _unpaired(fmt: Any, value: dict[str, Any]) -> PreferenceExample:
    pkey, ckey, lkey = fmt.f("prompt"), fmt.f("completion"), fmt.f("label")
    prompt, completion = _field(fmt, value, pkey), _field(fmt, value, ckey)
    label = _label(value.get(lkey), lkey)
    if isinstance(prompt, str) and isinstance(completion, str):
        for key, text in ((pkey, prompt), (ckey, completion)):
            if not text.strip():
                raise RecordProblem("empty_turn", f"{key!r} is empty")
        return PreferenceExample("unpaired", prompt, completion, label=label)
    prompt_m, completion_m = _as_messages(prompt, "user"), _as_messages(completion, "assistant")
    if not completion_m or completion_m[-1]["role"] != "assistant":
        raise RecordProblem("wrong_type", f"{ckey!r} does not end with an assistant turn")
    return PreferenceExample("unpaired", tuple(prompt_m), tuple(completion_m), label=label)


def _prompt_only(fmt: Any, value: dict[str, Any]) -> PreferenceExample:
    pkey = fmt.f("prompt")
    prompt = _field(fmt, value, pkey)
    if isinstance(prompt, str):
        if not prompt.strip():
            raise RecordProblem("empty_turn", f"{pkey!r} is empty")
    else:
        prompt = tuple(_as_messages(prompt, "user"))
        if prompt[-1]["role"] == "assistant":
            raise RecordProblem("wrong_type", f"{pkey!r} ends with an assistant turn; a prompt ends with a user turn")
    extra = tuple(
        (key, v if isinstance(v, str) else json.dumps(v))
        for key, v in value.items()
        if key != pkey and (v is None or isinstance(v, (str, int, float, bool)))
    )
    return PreferenceExample("prompt", prompt, extra=extra)


# -- helpers --------------------------------------------------------------------------------------
def _field(fmt: Any, value: dict[str, Any], key: str, *, optional: bool = False) -> str | list[dict[str, Any]] | None:
    """A text field or a list of turns (normalized roles); None when optional and absent."""
    if key not in value or value[key] is None:
        if optional:
            return None
        raise RecordProblem("missing_field", f"missing field {key!r}")
    raw = maybe_json_list(value[key])
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        return fmt._turns(raw, fmt.f("role"), fmt.f("content"))
    raise RecordProblem("wrong_type", f"{key!r} is a JSON {json_type(raw)}, not text or a list of turns")


def _as_messages(value: str | list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        if not value.strip():
            raise RecordProblem("empty_turn", f"the {role} text is empty")
        return [{"role": role, "content": value}]
    return list(value)


def _shared_prefix(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> int:
    """Turns both conversations open with, up to the last turn before either answer."""
    n = 0
    while n < min(len(a), len(b)) - 1 and a[n] == b[n]:
        n += 1
    return n


def _hh_messages(text: str) -> list[dict[str, Any]] | None:
    """Anthropic-HH text ("\\n\\nHuman: ... \\n\\nAssistant: ...") as turns, or None."""
    marks = list(_HH_TURN.finditer(text))
    if not marks or marks[0].start() > 2 or not any(m.group(1) == "Assistant" for m in marks):
        return None
    turns = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        content = text[mark.end():end].strip()
        role = "user" if mark.group(1) == "Human" else "assistant"
        if turns and turns[-1]["role"] == role:  # a stray marker inside a turn: keep it as text
            turns[-1]["content"] += f"\n\n{mark.group(1)}: {content}"
            continue
        turns.append({"role": role, "content": content})
    if any(not t["content"] for t in turns):
        raise RecordProblem("empty_turn", "a Human:/Assistant: turn is empty")
    return turns


def _label(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if value is None:
        raise RecordProblem("missing_field", f"missing field {key!r}")
    raise RecordProblem("wrong_type", f"{key!r} is {value!r}; use true (a good answer) or false (a bad one)")


def _jsonable(value: str | Messages) -> Any:
    return value if isinstance(value, str) else [dict(m) for m in value]


# -- to TRL -----------------------------------------------------------------------------------------
def trl_row(example: PreferenceExample, method: str) -> list[dict[str, Any]]:
    """The record as TRL's dataset rows for `method` (KTO gets two rows from a pair)."""

    def val(v: str | Messages) -> Any:
        return _jsonable(v)

    if method in ("dpo", "orpo"):
        return [{"prompt": val(example.prompt), "chosen": val(example.chosen), "rejected": val(example.rejected)}]
    if method == "kto":
        if example.kind == "pair":
            return [
                {"prompt": val(example.prompt), "completion": val(example.chosen), "label": True},
                {"prompt": val(example.prompt), "completion": val(example.rejected), "label": False},
            ]
        return [{"prompt": val(example.prompt), "completion": val(example.chosen), "label": bool(example.label)}]
    if method == "grpo":
        return [{**dict(example.extra), "prompt": val(example.prompt)}]
    raise DataError(f"no dataset rows for method {method!r}")


# -- rendering for Data mode --------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderedSide:
    """One answer rendered after the prompt: the whole text, where the answer starts, tokens."""

    text: str
    answer_start: int  # character where the answer begins (the prompt is before it)
    n_tokens: int  # prompt + answer
    n_prompt: int
    cut_char: int | None  # where max_seq_len cuts the text (None: it fits)


def render_side(tokenizer: Any, prompt: str | Messages, answer: str | Messages, max_seq_len: int | None,
                chat_template: str | None = None) -> RenderedSide:
    """Render prompt + answer as TRL tokenizes it (conversation through the chat template with
    the generation prompt; plain text as prompt + answer + EOS) and count the tokens."""
    if isinstance(prompt, str):
        head = prompt
        full = prompt + str(answer) + ((tokenizer.eos_token or "") if answer else "")
    else:
        template = chat_template or getattr(tokenizer, "chat_template", None)
        try:
            head = tokenizer.apply_chat_template(
                [dict(m) for m in prompt], tokenize=False, add_generation_prompt=True, chat_template=template
            )
            full = head if not answer else tokenizer.apply_chat_template(
                [dict(m) for m in prompt] + [dict(m) for m in answer], tokenize=False, chat_template=template
            )
        except Exception as exc:  # noqa: BLE001 - jinja raise_exception, TemplateError, KeyError...
            lines = str(exc).strip().splitlines()
            reason = lines[0] if lines else type(exc).__name__
            raise RecordProblem("template", f"chat template error: {reason}") from None
    start = len(head) if full.startswith(head) else _common_chars(head, full)
    try:
        enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc.get("offset_mapping")
    except (NotImplementedError, ValueError, TypeError):
        enc, offsets = tokenizer(full, add_special_tokens=False), None
    ids = list(enc["input_ids"])
    n_prompt = len(tokenizer(full[:start], add_special_tokens=False)["input_ids"])
    cut = None
    if max_seq_len and len(ids) > max_seq_len:
        cut = int(offsets[max_seq_len - 1][1]) if offsets else None
    return RenderedSide(full, start, len(ids), n_prompt, cut)


def _common_chars(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n
