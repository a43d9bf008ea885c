"""The dataset formats users have, detected from their fields, normalized to one `Example`.

Formats (name: the fields that identify it):
- `openai`: `messages` = [{role, content}, ...] (also TRL's conversational format)
- `sharegpt`: `conversations` = [{from, value}, ...], optional `system`
- `alpaca`: `instruction`, optional `input`, `output`, optional `system` and `history`
- `prompt_completion`: `prompt`, `completion` (strings, or message lists as TRL accepts)
- `text`: `text` (raw text, trained on everywhere)
- `preference`, `unpaired`, `prompt`: pairs, KTO labels and GRPO prompts for the preference and RL
  methods; they normalize to `preference.PreferenceExample` (see engine/data/preference.py)

A mapping overrides field names: `{"instruction": "question", "output": "answer"}` reads Alpaca
from a file whose columns are `question` and `answer`; `role`/`content`/`from`/`value` rename the
keys inside turns. Every format normalizes to `Example`, so rendering has one input shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.data import preference
from engine.data.problems import DataError, RecordProblem
from engine.data.values import json_type as _json_type
from engine.data.values import maybe_json_list as _maybe_json_list

SFT_FORMATS: tuple[str, ...] = ("openai", "sharegpt", "alpaca", "prompt_completion", "text")
FORMATS: tuple[str, ...] = SFT_FORMATS + preference.RL_FORMATS

_FORMAT_ALIASES = {
    "messages": "openai",
    "chatml": "openai",
    "conversation": "openai",
    "share_gpt": "sharegpt",
    "instruct": "alpaca",
    "prompt-completion": "prompt_completion",
    "completion": "prompt_completion",
    "raw": "text",
    "pairs": "preference",
    "dpo": "preference",
    "kto": "unpaired",
    "prompts": "prompt",
    "prompt_only": "prompt",
}

#: Canonical field names a mapping may rename, per format.
FIELDS: dict[str, tuple[str, ...]] = {
    "openai": ("messages", "role", "content"),
    "sharegpt": ("conversations", "from", "value", "system"),
    "alpaca": ("instruction", "input", "output", "system", "history"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
    **preference.FIELDS,
}
ALL_FIELDS: frozenset[str] = frozenset(f for fields in FIELDS.values() for f in fields)

#: Role names seen in the wild -> the chat-template role.
ROLE_ALIASES: dict[str, str] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
    "ipython": "tool",
}

_DESCRIPTIONS = {
    "openai": "OpenAI messages",
    "sharegpt": "ShareGPT",
    "alpaca": "Alpaca",
    "prompt_completion": "prompt/completion",
    "text": "raw text",
    **preference.DESCRIPTIONS,
}


@dataclass(frozen=True, slots=True)
class Example:
    """One normalized record.

    `kind` is "chat" (render `messages` through the chat template), "completion" (a
    user/assistant pair from prompt/completion: templated if the tokenizer has a template,
    else plain prompt + completion + EOS) or "text" (raw `text`, trained on everywhere).
    """

    kind: str
    messages: tuple[dict[str, Any], ...] = ()
    text: str = ""

    def key(self) -> bytes:
        """Canonical bytes for duplicate detection (same content = same key)."""
        payload = [self.kind, self.text, list(self.messages)]
        return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

    def message_list(self) -> list[dict[str, Any]]:
        return [dict(m) for m in self.messages]


@dataclass(frozen=True)
class FormatSpec:
    """A format plus the user's field mapping; `normalize` turns one raw record into an Example."""

    name: str
    mapping: Mapping[str, str] = field(default_factory=dict)
    detected: bool = False

    def f(self, canonical: str) -> str:
        """The file's name for a canonical field."""
        return self.mapping.get(canonical, canonical)

    def describe(self) -> str:
        text = _DESCRIPTIONS.get(self.name, self.name)
        if self.mapping:
            text += " (" + ", ".join(f"{k}={v}" for k, v in self.mapping.items()) + ")"
        return text + (", detected" if self.detected else "")

    def normalize(self, value: Any) -> Example | preference.PreferenceExample:
        """Raise RecordProblem(kind, reason) when the record does not fit the format."""
        if self.name == "text" and isinstance(value, str):
            return _text_example(value)
        if not isinstance(value, dict):
            raise RecordProblem("not_object", f"record is a JSON {_json_type(value)}, not an object")
        if self.name in preference.RL_FORMATS:
            return preference.normalize(self, value)
        if self.name == "openai":
            turns = _list_field(value, self.f("messages"))
            return Example("chat", tuple(self._turns(turns, self.f("role"), self.f("content"))))
        if self.name == "sharegpt":
            turns = _list_field(value, self.f("conversations"))
            messages = self._turns(turns, self.f("from"), self.f("value"))
            system = _optional_str(value, self.f("system"))
            if system and not any(m["role"] == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": system})
            return Example("chat", tuple(messages))
        if self.name == "alpaca":
            return self._alpaca(value)
        if self.name == "prompt_completion":
            return self._prompt_completion(value)
        if self.name == "text":
            text = _str_field(value, self.f("text"))
            return _text_example(text)
        raise DataError(f"unknown format {self.name!r}")  # pragma: no cover - checked at construction

    # -- per format -------------------------------------------------------------------------
    def _turns(self, turns: list[Any], role_key: str, content_key: str) -> list[dict[str, Any]]:
        if not turns:
            raise RecordProblem("empty_turn", "the conversation has no turns")
        # ShareGPT files sometimes use role/content inside `conversations` and vice versa.
        alt_role = "from" if role_key == "role" else "role" if role_key == "from" else None
        alt_content = "value" if content_key == "content" else "content" if content_key == "value" else None
        out: list[dict[str, Any]] = []
        for i, turn in enumerate(turns, 1):
            if not isinstance(turn, dict):
                raise RecordProblem("wrong_type", f"turn {i} is a JSON {_json_type(turn)}, not an object")
            rkey = role_key if role_key in turn or alt_role not in turn else alt_role
            ckey = content_key if content_key in turn or alt_content not in turn else alt_content
            if rkey not in turn:
                raise RecordProblem("missing_field", f"turn {i} has no {role_key!r} field")
            raw_role = turn[rkey]
            if not isinstance(raw_role, str):
                raise RecordProblem("wrong_type", f"turn {i}: {rkey!r} is a JSON {_json_type(raw_role)}, not a string")
            role = ROLE_ALIASES.get(raw_role.strip().lower())
            if role is None:
                known = "system, user, assistant, tool"
                raise RecordProblem("unknown_role", f"turn {i} has unknown role {raw_role!r} (expected {known})")
            tool_calls = turn.get("tool_calls")
            if ckey not in turn and not tool_calls:
                raise RecordProblem("missing_field", f"turn {i} ({role}) has no {content_key!r} field")
            content = _content_text(turn.get(ckey), i)
            if not content.strip() and not tool_calls:
                raise RecordProblem("empty_turn", f"turn {i} ({role}) is empty")
            message: dict[str, Any] = {"role": role, "content": content}
            for extra in ("tool_calls", "name", "tool_call_id"):
                if turn.get(extra):
                    message[extra] = turn[extra]
            out.append(message)
        return out

    def _alpaca(self, value: dict[str, Any]) -> Example:
        instruction = _str_field(value, self.f("instruction"))
        output = _str_field(value, self.f("output"))
        extra = _optional_str(value, self.f("input"))
        system = _optional_str(value, self.f("system"))
        if not instruction.strip():
            raise RecordProblem("empty_turn", f"{self.f('instruction')!r} is empty")
        if not output.strip():
            raise RecordProblem("empty_turn", f"{self.f('output')!r} is empty")
        messages: list[dict[str, Any]] = []
        if system and system.strip():
            messages.append({"role": "system", "content": system})
        history = value.get(self.f("history"))
        if history:
            if not isinstance(history, list) or not all(
                isinstance(h, (list, tuple)) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in history
            ):
                raise RecordProblem("wrong_type",
                                    f"{self.f('history')!r} must be a list of [instruction, response] pairs")
            for user, assistant in history:
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        user = instruction if not (extra and extra.strip()) else f"{instruction}\n\n{extra}"
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
        return Example("chat", tuple(messages))

    def _prompt_completion(self, value: dict[str, Any]) -> Example:
        pkey, ckey = self.f("prompt"), self.f("completion")
        for key in (pkey, ckey):
            if key not in value or value[key] is None:
                raise RecordProblem("missing_field", f"missing field {key!r}")
        prompt, completion = _maybe_json_list(value[pkey]), _maybe_json_list(value[ckey])
        if isinstance(prompt, list) and isinstance(completion, list):
            # TRL's conversational prompt-completion: two message lists.
            messages = self._turns(prompt, self.f("role"), self.f("content"))
            messages += self._turns(completion, self.f("role"), self.f("content"))
            return Example("chat", tuple(messages))
        for key, v in ((pkey, prompt), (ckey, completion)):
            if not isinstance(v, str):
                raise RecordProblem("wrong_type", f"{key!r} is a JSON {_json_type(v)}, not a string")
            if not v.strip():
                raise RecordProblem("empty_turn", f"{key!r} is empty")
        return Example("completion",
                       ({"role": "user", "content": prompt}, {"role": "assistant", "content": completion}))


def resolve_format(name: str | None, mapping: Mapping[str, str] | None = None) -> str | None:
    """Canonical format name for a user's `--format` (None = detect)."""
    if name is None or name in ("", "auto"):
        return None
    key = name.strip().lower().replace(" ", "_")
    key = _FORMAT_ALIASES.get(key, key)
    if key not in FORMATS:
        raise DataError(f"unknown format {name!r}; use one of {', '.join(FORMATS)} (or leave it out to detect)")
    return key


def parse_mapping(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """`["instruction=question", "output=answer"]` -> {"instruction": "question", ...}."""
    if not items:
        return {}
    pairs = items.items() if isinstance(items, Mapping) else (_split_pair(item) for item in items)
    mapping: dict[str, str] = {}
    for canonical, name in pairs:
        canonical, name = canonical.strip(), name.strip()
        if canonical not in ALL_FIELDS:
            known = ", ".join(sorted(ALL_FIELDS))
            raise DataError(f"--map {canonical}={name}: unknown field {canonical!r}; fields are: {known}")
        if not name:
            raise DataError(f"--map {canonical}=: give the file's field name after '='")
        mapping[canonical] = name
    return mapping


def _split_pair(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise DataError(f"--map {item}: expected FIELD=NAME, e.g. --map instruction=question")
    left, _, right = item.partition("=")
    return left, right


def detect_format(samples: Iterable[Any], mapping: Mapping[str, str] | None = None) -> str | None:
    """The format of the first sample that looks like one, or None."""
    mapping = mapping or {}

    def has(rec: dict[str, Any], canonical: str) -> bool:
        return mapping.get(canonical, canonical) in rec

    for rec in samples:
        if isinstance(rec, str):
            return "text"
        if not isinstance(rec, dict):
            continue
        paired = preference.detect(rec, has)  # before `messages`: UltraFeedback rows carry both
        if paired:
            return paired
        if has(rec, "messages"):
            return "openai"
        if has(rec, "conversations"):
            return "sharegpt"
        if has(rec, "instruction") and has(rec, "output"):
            return "alpaca"
        if has(rec, "prompt") and has(rec, "completion"):
            return "prompt_completion"
        if has(rec, "text"):
            return "text"
        if has(rec, "prompt"):
            return "prompt"
    return None


def undetected_message(file: str, kind: str, fields: list[str] | None) -> str:
    """One line saying the format was not recognised and how to say what it is."""
    expected = "messages, conversations, instruction+output, prompt+completion, text, chosen+rejected or prompt"
    hint = "use --format F and/or --map FIELD=NAME (e.g. --map instruction=question)"
    if kind in ("csv", "tsv"):
        shown = ", ".join(fields or []) or "none"
        return f"{file}: CSV has no usable columns (header: {shown}); expected {expected}; {hint}"
    if fields is None:
        return f"{file}: cannot detect the dataset format (no JSON object in the first records); {hint}"
    shown = ", ".join(fields[:12]) or "none"
    return f"{file}: cannot detect the dataset format (fields: {shown}); expected {expected}; {hint}"


# -- helpers ------------------------------------------------------------------------------
def _text_example(text: str) -> Example:
    if not text.strip():
        raise RecordProblem("empty_turn", "the text is empty")
    return Example("text", text=text)


def _list_field(value: dict[str, Any], key: str) -> list[Any]:
    if key not in value or value[key] is None:
        raise RecordProblem("missing_field", f"missing field {key!r}")
    v = _maybe_json_list(value[key])
    if not isinstance(v, list):
        raise RecordProblem("wrong_type", f"{key!r} is a JSON {_json_type(v)}, not a list of turns")
    return v


def _str_field(value: dict[str, Any], key: str) -> str:
    if key not in value or value[key] is None:
        raise RecordProblem("missing_field", f"missing field {key!r}")
    v = value[key]
    if not isinstance(v, str):
        raise RecordProblem("wrong_type", f"{key!r} is a JSON {_json_type(v)}, not a string")
    return v


def _optional_str(value: dict[str, Any], key: str) -> str:
    v = value.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise RecordProblem("wrong_type", f"{key!r} is a JSON {_json_type(v)}, not a string")
    return v


def _content_text(content: Any, turn: int) -> str:
    """String content, or the text parts of OpenAI's list-of-parts content."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else _json_type(part)
                raise RecordProblem("wrong_type", f"turn {turn}: non-text content ({kind}) is not supported")
        return "".join(parts)
    raise RecordProblem("wrong_type", f"turn {turn}: content is a JSON {_json_type(content)}, not a string")
