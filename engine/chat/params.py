"""Sampling parameters and the system prompt, shared by every backend.

One dataclass so the side panel, the CLI and saved sessions all speak the same names; each
backend maps them to its library's own (llama.cpp's `repeat_penalty`, OpenAI's `max_tokens`...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


class ParamError(ValueError):
    """A sampling value is out of range; the text says which and what is allowed."""


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    """0 means greedy decoding (always the most likely token)."""
    top_p: float = 0.95
    top_k: int = 40
    """0 disables top-k."""
    min_p: float = 0.05
    repetition_penalty: float = 1.0
    """1.0 means no penalty."""
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    """Extra stop strings on top of the template's own end-of-turn marker."""
    seed: int | None = None
    """None: a fresh random seed each time."""
    system_prompt: str = ""

    def __post_init__(self) -> None:
        checks = (
            ("temperature", 0.0 <= self.temperature <= 5.0, "between 0 and 5"),
            ("top_p", 0.0 < self.top_p <= 1.0, "in (0, 1]"),
            ("top_k", self.top_k >= 0, "0 (off) or more"),
            ("min_p", 0.0 <= self.min_p < 1.0, "in [0, 1)"),
            ("repetition_penalty", 0.5 <= self.repetition_penalty <= 3.0, "between 0.5 and 3"),
            ("max_new_tokens", self.max_new_tokens >= 1, "at least 1"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise ParamError(f"{name} must be {rule}, got {getattr(self, name)!r}")
        if isinstance(self.stop, list):  # accept lists from JSON / TOML
            object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def with_(self, **changes: Any) -> SamplingParams:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingParams:
        """Build from a dict, ignoring unknown keys (old saved sessions keep loading)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if "stop" in values and values["stop"] is not None:
            values["stop"] = tuple(values["stop"])
        return cls(**values)


def parse_value(name: str, text: str) -> Any:
    """Turn the text a user typed for field `name` into its typed value (side panel, CLI).

    Raises ParamError with a one-line explanation when the text does not parse.
    """
    kinds = {f.name: f.type for f in fields(SamplingParams)}
    if name not in kinds:
        raise ParamError(f"unknown sampling parameter {name!r}")
    text = text.strip()
    try:
        if name in ("top_k", "max_new_tokens"):
            return int(text)
        if name == "seed":
            return None if text in ("", "none", "random") else int(text)
        if name == "stop":
            return tuple(s.encode().decode("unicode_escape") for s in text.split("|") if s) if text else ()
        if name == "system_prompt":
            return text
        return float(text)
    except ValueError:
        raise ParamError(f"{name}: {text!r} is not a number") from None


DEFAULT_PARAMS = SamplingParams()

PRESET_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
"""What a sampler preset sets; the token limit, seed, stops and system prompt stay as they are."""

BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    # near-deterministic: facts, code, extraction
    "precise": {"temperature": 0.2, "top_p": 0.9, "top_k": 20, "min_p": 0.1, "repetition_penalty": 1.05},
    # llmdeck's defaults
    "balanced": {name: getattr(DEFAULT_PARAMS, name) for name in PRESET_FIELDS},
    # varied wording: brainstorming, stories (min_p keeps the tail sane at a high temperature)
    "creative": {"temperature": 1.1, "top_p": 0.98, "top_k": 100, "min_p": 0.02, "repetition_penalty": 1.0},
}
"""The sampler presets every user has; their own are added from the settings ([presets.NAME])."""


def preset_name(params: SamplingParams, presets: dict[str, dict[str, Any]]) -> str:
    """The preset whose values `params` has, or '' when they match none (edited by hand)."""
    for name, values in presets.items():
        if all(getattr(params, key) == values.get(key, getattr(DEFAULT_PARAMS, key)) for key in PRESET_FIELDS):
            return name
    return ""
