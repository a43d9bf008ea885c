"""Chat or plain completion: how a conversation becomes the text a model continues.

An instruction-tuned model was trained on turns wrapped in a chat template; a base model (the
bundled Gemma 3 270M is one) was trained on plain text, and wrapped in a template it babbles
until the token limit. So a model with no chat template of its own and nothing in its metadata
saying it was instruction-tuned runs as a plain completion: the text typed is continued as
written, with no template (llama.cpp's `llama-cli` makes the same choice: conversation mode only
when the model has a template). The choice comes with its reason, for the screen and the CLI,
and `--prompt-mode chat|completion` (Chat's F6) forces either.

A base model rarely emits its end token and loops instead, so in completion mode a line or
sentence that repeats one already generated ends the answer (`RepeatGuard`); the end token
still ends it too (each backend's stop tokens).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

PROMPT_MODES = ("auto", "chat", "completion")
"""What a user may ask for: auto (decided from the model), chat or completion."""

# What instruction-tuned checkpoints are called: "-it" (Gemma), "Instruct" (Llama, Qwen,
# Mistral), "chat" (Llama 2, Qwen 1), and the post-training methods in `general.finetune`.
_TUNED = re.compile(r"instruct|chat|(?:^|[\s_.\-/])it(?:$|[\s_.\-/])|(?:^|[\s_.\-/])(?:sft|dpo|orpo|kto|grpo|rlhf)"
                    r"(?:$|[\s_.\-/])|assistant|conversational", re.IGNORECASE)


@dataclass(frozen=True)
class PromptMode:
    mode: str
    """chat or completion."""
    reason: str
    """Why, in words for the screen: 'a base model: no chat template and ...'."""
    requested: str = "auto"

    @property
    def completion(self) -> bool:
        return self.mode == "completion"

    @property
    def label(self) -> str:
        """'completion (auto)' or 'chat (chosen)': the mode and who chose it."""
        return f"{self.mode} ({'auto' if self.requested == 'auto' else 'chosen'})"


def tuned_name(names: Iterable[Any]) -> str:
    """The first name (file name, `general.name`, `general.finetune`, a tag) that says the model
    was instruction-tuned; '' when none does."""
    for name in names:
        for part in name if isinstance(name, (list, tuple)) else (name,):
            if isinstance(part, str) and _TUNED.search(part):
                return part
    return ""


def choose_prompt_mode(requested: str, *, has_template: bool, names: Iterable[Any] = ()) -> PromptMode:
    """Chat when the model has a template or its names say it was instruction-tuned, else
    completion; `requested` chat or completion wins. Raises ValueError for an unknown mode."""
    requested = (requested or "auto").strip().lower()
    if requested not in PROMPT_MODES:
        raise ValueError(f"unknown prompt mode {requested!r}: use one of {', '.join(PROMPT_MODES)}")
    if requested == "chat":
        return PromptMode("chat", "chat mode chosen: each message goes through the chat template", requested)
    if requested == "completion":
        return PromptMode("completion", "completion mode chosen: your text is continued as written, no template",
                          requested)
    if has_template:
        return PromptMode("chat", "the model has a chat template of its own")
    tuned = tuned_name(names)
    if tuned:
        return PromptMode("chat", f"instruction-tuned ({tuned!r}) with no template of its own: a built-in template")
    return PromptMode("completion", "a base model: it has no chat template and nothing in its metadata says it "
                                    "was instruction-tuned, so your text is continued as written")


def completion_text(messages: Sequence[dict[str, str]]) -> str:
    """The conversation as one document, as a base model reads text: a system prompt first, then
    each message in order. A continuation follows its prompt directly ('... France is' +
    ' Paris.'); a new prompt starts on a new line."""
    out = ""
    for message in messages:
        text = message["content"]
        if message["role"] == "system":
            out += text + "\n\n" if text else ""
            continue
        if out and message["role"] != "assistant" and not out[-1].isspace():
            out += "\n"
        out += text
    return out


_SENTENCE_END = ".!?"


def _normal(unit: str) -> str:
    return " ".join(unit.split()).lower()


class RepeatGuard:
    """Ends a completion that starts to repeat itself: a finished line or sentence of at least
    `min_chars` characters that was already generated is cut, and the stream stops there.

    Streamed text stays smooth: only the start of a line or sentence that could still turn into
    a repeat (a prefix of an earlier one) is held back until it is decided.
    """

    def __init__(self, min_chars: int = 12) -> None:
        self.min_chars = min_chars
        self.seen: set[str] = set()
        self.current = ""
        self.held = ""
        self.stopped = False

    def _could_repeat(self) -> bool:
        unit = _normal(self.current)
        return bool(unit) and any(seen.startswith(unit) for seen in self.seen)

    def _unit_ends(self, char: str) -> bool:
        if char == "\n":
            return True
        return char.isspace() and len(self.current) >= 2 and self.current[-2] in _SENTENCE_END

    def feed(self, text: str) -> str:
        """The part of `text` that may be shown now ('' once stopped)."""
        out = []
        for char in text:
            if self.stopped:
                break
            self.current += char
            self.held += char
            if self._unit_ends(char):
                unit = _normal(self.current)
                if len(unit) >= self.min_chars and unit in self.seen:
                    self.stopped = True
                    self.held = ""
                    break
                if len(unit) >= self.min_chars:
                    self.seen.add(unit)
                out.append(self.held)
                self.current = self.held = ""
            elif not self._could_repeat():
                out.append(self.held)
                self.held = ""
        return "".join(out)

    def flush(self) -> str:
        """What was held back when the stream ended for another reason."""
        out, self.held = ("" if self.stopped else self.held), ""
        return out
