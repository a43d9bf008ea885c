"""GRPO's reward functions: built-ins that need no model, and a user's own Python function.

A reward is named by a short spec (`--reward SPEC`, repeatable; the rewards are summed):

    exact:COLUMN      1 when the completion's answer equals the dataset column's value, else 0.
                      The answer is the content of the last \\boxed{...} when there is one, else
                      the completion stripped of spaces and a final period.
    firstline:COLUMN  1 when the completion's first line (spaces and a final period aside) is the column's
                      value, 0.5 when that line holds it as a word among others, else 0 (case aside): it
                      scores a base model that answers on one line and then goes on writing.
    regex:PATTERN     1 when PATTERN (Python `re`) is found in the completion, else 0.
    length:MIN:MAX    1 when the completion has MIN..MAX tokens, falling linearly to 0 at half
                      the window's width (at least 1 token) outside it.
    boxed             1 when the completion ends with its answer in \\boxed{...}, else 0.
    FILE.py:FUNC      FUNC from the user's FILE, called as TRL calls reward functions:
                      FUNC(prompts, completions, completion_ids, **columns) -> list[float | None].

Every reward follows TRL's signature (keyword arguments: `prompts`, `completions` -- text, or
message lists for chat prompts -- `completion_ids`, one list per dataset column, `trainer_state`)
and carries a `__name__`, which TRL logs as `rewards/<name>/mean` and `/std`. A user file is
imported only when its spec is given, from the path given, and only in the training process.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.jobs import JobError

RewardFunction = Callable[..., list[float | None]]
BUILTINS: tuple[str, ...] = ("exact", "firstline", "regex", "length", "boxed")

_BOXED = re.compile(r"\\boxed\{")


class RewardSpecError(ValueError):
    """A reward spec that cannot be used; the text names it and the fix."""


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the content of its (assistant) messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion)


def _last_box(text: str) -> tuple[int, int] | None:
    """(start of the content, index of the closing brace) of the last \\boxed{...}, braces
    inside balanced; None when there is none or it is not closed."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    depth = 1
    for i in range(starts[-1], len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return starts[-1], i
    return None


def boxed_answer(text: str) -> str | None:
    """The content of the last \\boxed{...}, or None."""
    box = _last_box(text)
    return None if box is None else text[box[0]:box[1]].strip()


def answer_of(text: str) -> str:
    """What `exact` compares: the boxed answer, else the text without spaces around it and a final period."""
    boxed = boxed_answer(text)
    if boxed is not None:
        return boxed
    return text.strip().removesuffix(".").strip()


class ExactAnswer:
    def __init__(self, column: str) -> None:
        self.column = column
        self.__name__ = f"exact_{column}"

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        if self.column not in kwargs:
            raise _missing_column(f"exact:{self.column}", self.column, kwargs)
        wanted = kwargs[self.column]
        pairs = zip(completions, wanted, strict=True)
        return [1.0 if answer_of(completion_text(c)) == str(w).strip() else 0.0 for c, w in pairs]


def _missing_column(spec: str, column: str, kwargs: dict[str, Any]) -> JobError:
    columns = ", ".join(k for k in kwargs if k not in ("prompts", "completion_ids", "trainer_state",
                                                     "log_extra", "log_metric")) or "none"
    return JobError(f"reward {spec}: the dataset has no {column!r} column (columns: {columns})")


class FirstLineAnswer:
    """Partial credit for a reply whose first line holds the answer: a base model continuing a
    "Q: ... A:" text answers on one line and then writes on (the next question), so `exact` never
    matches, while a first line that is the bare answer, or contains it, tells good samples apart."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.__name__ = f"firstline_{column}"

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        if self.column not in kwargs:
            raise _missing_column(f"firstline:{self.column}", self.column, kwargs)
        out: list[float | None] = []
        for c, wanted in zip(completions, kwargs[self.column], strict=True):
            line = completion_text(c).strip().split("\n", 1)[0].strip().removesuffix(".").strip().casefold()
            answer = str(wanted).strip().casefold()
            if answer and line == answer:
                out.append(1.0)
            elif answer and re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", line):
                out.append(0.5)
            else:
                out.append(0.0)
        return out


class RegexMatch:
    def __init__(self, pattern: str, index: int) -> None:
        self.pattern = re.compile(pattern)
        self.__name__ = "regex" if index == 0 else f"regex{index + 1}"

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        return [1.0 if self.pattern.search(completion_text(c)) else 0.0 for c in completions]


class LengthWindow:
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.slope = max(1.0, (high - low) / 2)
        self.__name__ = f"length_{low}_{high}"

    def __call__(self, completion_ids: list[list[int]], **kwargs: Any) -> list[float | None]:
        out: list[float | None] = []
        for ids in completion_ids:
            n = len(ids)
            distance = self.low - n if n < self.low else n - self.high if n > self.high else 0
            out.append(max(0.0, 1.0 - distance / self.slope))
        return out


class BoxedFormat:
    """The completion ends with its answer in \\boxed{...} (a final period or $ may follow)."""

    __name__ = "boxed"

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        out: list[float | None] = []
        for c in completions:
            text = completion_text(c).rstrip().rstrip(".$ \n")
            box = _last_box(text)
            out.append(1.0 if box is not None and box[1] == len(text) - 1 and box[1] > box[0] else 0.0)
        return out


def parse(spec: str, index: int = 0, *, load: bool = True) -> RewardFunction | None:
    """The reward function a spec names (None when `load` is False and the spec is valid:
    checking a spec never imports the user's file)."""
    text = spec.strip()
    name, _, rest = text.partition(":")
    if name == "exact":
        if not rest.strip():
            raise RewardSpecError("reward exact:COLUMN needs the dataset column with the answer, e.g. exact:answer")
        return ExactAnswer(rest.strip()) if load else None
    if name == "firstline":
        if not rest.strip():
            raise RewardSpecError("reward firstline:COLUMN needs the dataset column with the answer, "
                                  "e.g. firstline:answer")
        return FirstLineAnswer(rest.strip()) if load else None
    if name == "regex":
        try:
            fn = RegexMatch(rest, index)
        except re.error as exc:
            raise RewardSpecError(f"reward regex:{rest}: not a valid regular expression ({exc})") from None
        return fn if load else None
    if name == "length":
        parts = rest.split(":")
        try:
            low, high = int(parts[0]), int(parts[1])
            if len(parts) != 2 or low < 0 or high < low:
                raise ValueError(rest)
        except (ValueError, IndexError):
            raise RewardSpecError(f"reward length:{rest}: give MIN:MAX tokens, e.g. length:10:60") from None
        return LengthWindow(low, high) if load else None
    if name == "boxed" and not rest:
        return BoxedFormat() if load else None
    file, sep, func = text.rpartition(":")
    if sep and file.endswith(".py") and func.isidentifier():
        path = Path(file).expanduser()
        if not path.is_file():
            raise RewardSpecError(f"reward {text}: {path} is not a file")
        return load_user_function(path, func) if load else None
    raise RewardSpecError(
        f"reward {text!r}: use exact:COLUMN, firstline:COLUMN, regex:PATTERN, length:MIN:MAX, boxed, "
        "or FILE.py:FUNCTION"
    )


def load_user_function(path: Path, func: str) -> RewardFunction:
    """Import `func` from the user's file (the file's own imports and top level run now)."""
    module_name = f"llmdeck_user_rewards_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise JobError(f"reward {path}:{func}: cannot import {path.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's code: any error is reported in one line
        failure = f"{type(exc).__name__}: {exc}"
        raise JobError(f"reward {path.name}:{func}: importing {path.name} failed: {failure}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise JobError(f"reward {path.name}:{func}: {path.name} has no function {func!r}")
    return _checked(fn, f"{path.name}:{func}")


def _checked(fn: RewardFunction, label: str) -> RewardFunction:
    """The user's function, with its output checked so a mistake is one clear line."""

    def reward(**kwargs: Any) -> list[float | None]:
        try:
            out = fn(**kwargs)
        except Exception as exc:  # noqa: BLE001 - the user's code
            raise JobError(f"reward {label} raised {type(exc).__name__}: {exc}") from None
        try:
            values = [None if v is None else float(v) for v in out]
        except (TypeError, ValueError):
            raise JobError(f"reward {label} must return a list of numbers (or None), got {out!r:.80}") from None
        if any(v is not None and not math.isfinite(v) for v in values):
            raise JobError(f"reward {label} returned a non-finite value: {values!r:.80}")
        return values

    reward.__name__ = getattr(fn, "__name__", "reward")
    return reward


def reward_functions(specs: list[str]) -> list[RewardFunction]:
    """Every reward the run asked for, loaded (user files imported now)."""
    out: list[RewardFunction] = []
    regexes = 0
    for spec in specs:
        fn = parse(spec, regexes)
        if spec.strip().startswith("regex:"):
            regexes += 1
        assert fn is not None
        out.append(fn)
    return out


def check(specs: list[str]) -> list[str]:
    """Problems with the specs, without importing any user file."""
    problems = []
    for spec in specs:
        try:
            parse(spec, load=False)
        except RewardSpecError as exc:
            problems.append(f"rewards: {exc}")
    return problems
