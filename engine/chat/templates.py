"""Chat templates: the model's own, or a built-in one chosen from the architecture.

A template turns a list of messages into the exact prompt text a model was trained on. Using the
wrong one makes a good model babble, so the choice is explicit and shown in the side panel:

- the model's own Jinja template (HF `tokenizer.chat_template`, GGUF `tokenizer.chat_template`),
- else a built-in one picked from the architecture (the bundled Gemma 3 GGUF has none and gets
  Gemma's `<start_of_turn>` format, not llama-cpp-python's generic llama-2 fallback),
- or whatever the user asks for: a built-in name, a `.jinja` file, or template text.

Templates come from model files, so they are rendered in Jinja's ImmutableSandboxedEnvironment
(as transformers does): a template cannot reach Python internals or change its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any


class TemplateError(ValueError):
    """A template cannot be found, compiled or rendered; the text says which and why."""


_SPLIT_SYSTEM = (
    "{% if messages and messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}"
    "{% set msgs = messages[1:] %}{% else %}{% set sys = '' %}{% set msgs = messages %}{% endif %}"
)

BUILTIN_TEMPLATES: dict[str, str] = {
    "llama-2": _SPLIT_SYSTEM
    + "{% for m in msgs %}{% if m['role'] == 'user' %}{{ bos_token }}[INST] "
    "{% if loop.first and sys %}<<SYS>>\n{{ sys }}\n<</SYS>>\n\n{% endif %}{{ m['content'] | trim }} [/INST]"
    "{% elif m['role'] == 'assistant' %} {{ m['content'] | trim }} {{ eos_token }}{% endif %}{% endfor %}",
    "llama-3": "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
    "mistral": _SPLIT_SYSTEM
    + "{{ bos_token }}{% for m in msgs %}{% if m['role'] == 'user' %}[INST] "
    "{% if loop.first and sys %}{{ sys }}\n\n{% endif %}{{ m['content'] | trim }}[/INST]"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] | trim }}{{ eos_token }}{% endif %}{% endfor %}",
    "chatml": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    "gemma": _SPLIT_SYSTEM
    + "{{ bos_token }}{% for m in msgs %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% if loop.first and sys %}{{ sys }}\n\n{% endif %}{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
    # Stanford Alpaca's instruction format (what `alpaca`-format datasets were written for);
    # a system message stands where Alpaca's fixed preamble was.
    "alpaca": "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] | trim }}\n\n"
    "{% elif m['role'] == 'user' %}### Instruction:\n{{ m['content'] | trim }}\n\n"
    "{% elif m['role'] == 'assistant' %}### Response:\n{{ m['content'] | trim }}{{ eos_token }}\n\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}### Response:\n{% endif %}",
}

BUILTIN_STOPS: dict[str, tuple[str, ...]] = {
    "llama-2": ("</s>", "[INST]"),
    "llama-3": ("<|eot_id|>",),
    "mistral": ("</s>", "[INST]"),
    "chatml": ("<|im_end|>", "<|im_start|>"),
    "gemma": ("<end_of_turn>", "<start_of_turn>"),
    "alpaca": ("### Instruction:",),
}

# Turn-end markers worth stopping on when a model's own template uses them.
_KNOWN_TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>", "</s>")

_ARCH_TEMPLATES: dict[str, str] = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "gemma3_text": "gemma",
    "mistral": "mistral",
    "mixtral": "mistral",
    "qwen": "chatml",
    "qwen2": "chatml",
    "qwen2moe": "chatml",
    "qwen3": "chatml",
    "qwen3moe": "chatml",
}


def builtin_for_architecture(architecture: str | None, has_token: Callable[[str], bool] = lambda _t: False) -> str:
    """The built-in template name for a GGUF `general.architecture` or HF `model_type`.

    Llama covers two formats: a vocabulary that knows `<|start_header_id|>` is Llama 3.
    Unknown architectures get ChatML, the most widely trained generic format.
    """
    arch = (architecture or "").lower()
    if arch == "llama":
        return "llama-3" if has_token("<|start_header_id|>") else "llama-2"
    return _ARCH_TEMPLATES.get(arch, "chatml")


def _raise(message: str) -> None:
    raise TemplateError(message)


@lru_cache(maxsize=32)
def _compile(text: str):  # -> jinja2.Template
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"chat template does not compile: {exc.message} (line {exc.lineno})") from None


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    """gemma, llama-3... for built-ins; 'model' for the model's own; a file name."""
    source: str
    """'built-in', 'model', 'file' or 'text'."""
    text: str
    bos_token: str = ""
    eos_token: str = ""
    stop_strings: tuple[str, ...] = ()
    chosen_for: str = ""
    """For a built-in picked automatically: the architecture it was picked for ('?' if unknown)."""

    @property
    def label(self) -> str:
        return self.name if self.source == "model" else f"{self.name} ({self.source})"

    def render(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """The prompt text for `messages`, ending with the assistant's turn opener."""
        template = _compile(self.text)
        try:
            return template.render(
                messages=[dict(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except TemplateError:
            raise
        except Exception as exc:  # noqa: BLE001 - any Jinja runtime error is the template's fault
            raise TemplateError(f"chat template {self.label} failed: {type(exc).__name__}: {exc}") from None


def _stops_for(text: str, eos: str) -> tuple[str, ...]:
    found = [s for s in _KNOWN_TURN_ENDS if s in text]
    if eos and eos not in found:
        found.append(eos)
    return tuple(found)


def _builtin(name: str, bos_token: str, eos_token: str, chosen_for: str = "") -> ChatTemplate:
    stops = BUILTIN_STOPS[name] + ((eos_token,) if eos_token and eos_token not in BUILTIN_STOPS[name] else ())
    return ChatTemplate(name, "built-in", BUILTIN_TEMPLATES[name], bos_token, eos_token, stops, chosen_for)


def resolve_template(
    *,
    override: str | None = None,
    model_template: str | None = None,
    architecture: str | None = None,
    bos_token: str = "",
    eos_token: str = "",
    has_token: Callable[[str], bool] = lambda _t: False,
) -> ChatTemplate:
    """Pick the template for a model.

    `override`: None/'' /'auto' (the model's own, else the built-in for the architecture),
    'model' (the model's own, error if it has none), a built-in name, a path to a Jinja file,
    or template text itself (anything containing '{{' or '{%').
    """
    choice = (override or "auto").strip()
    if choice in ("auto", "model"):
        if model_template:
            return ChatTemplate("model", "model", model_template, bos_token, eos_token, _stops_for(model_template, eos_token))
        if choice == "model":
            raise TemplateError("this model has no chat template of its own; pick a built-in one: " + ", ".join(BUILTIN_TEMPLATES))
        name = builtin_for_architecture(architecture, has_token)
        return _builtin(name, bos_token, eos_token, chosen_for=architecture or "?")
    if choice in BUILTIN_TEMPLATES:
        return _builtin(choice, bos_token, eos_token)
    if "{{" in choice or "{%" in choice:
        _compile(choice)
        return ChatTemplate("custom", "text", choice, bos_token, eos_token, _stops_for(choice, eos_token))
    path = Path(choice).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        _compile(text)
        return ChatTemplate(path.name, "file", text, bos_token, eos_token, _stops_for(text, eos_token))
    raise TemplateError(
        f"unknown chat template {choice!r}: use auto, model, a Jinja file, or one of " + ", ".join(BUILTIN_TEMPLATES)
    )


def model_architecture(model: str | Path | None) -> str:
    """What `builtin_for_architecture` needs: an HF folder's `model_type` (its text model's, for a
    multimodal config), or a GGUF's `general.architecture`; '' when it cannot be told."""
    if not model:
        return ""
    path = Path(model).expanduser()
    if path.is_dir():
        import json

        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        if not isinstance(config, dict):
            return ""
        text = config.get("text_config")
        if isinstance(text, dict) and text.get("model_type"):
            return str(text["model_type"])
        return str(config.get("model_type") or "")
    if path.suffix.lower() == ".gguf" and path.is_file():
        from engine.gguf_header import GGUFHeaderError, read_header

        try:
            return read_header(path).architecture
        except GGUFHeaderError:
            return ""
    return ""


def own_template(tokenizer: Any) -> str | None:
    """A transformers tokenizer's own chat template (the default one of several), or None."""
    text = getattr(tokenizer, "chat_template", None) or None
    if isinstance(text, dict):
        text = text.get("default") or next(iter(text.values()), None)
    return text or None


def template_for_tokenizer(
    tokenizer: Any, override: str | None = None, model: str | Path | None = None
) -> ChatTemplate:
    """The template data preparation and training render chat records with: the same choice
    chat and generate make (`resolve_template`), for a loaded transformers tokenizer.

    `override` is what the user typed (`--chat-template`, the Train/Data field): '' or 'auto',
    'model', a built-in name, a Jinja file or template text. `model` (the model folder or .gguf)
    names the architecture when the tokenizer has no template of its own."""
    try:
        vocab = tokenizer.get_vocab()
    except (AttributeError, NotImplementedError):
        vocab = {}
    return resolve_template(
        override=override or None,
        model_template=own_template(tokenizer),
        architecture=model_architecture(model or getattr(tokenizer, "name_or_path", None)),
        bos_token=getattr(tokenizer, "bos_token", None) or "",
        eos_token=getattr(tokenizer, "eos_token", None) or "",
        has_token=lambda t: t in vocab,
    )


def describe(template: ChatTemplate) -> str:
    """One line saying which template is used and why, for logs and reports."""
    if template.source == "model":
        return "the model's own chat template"
    if template.source == "built-in" and template.chosen_for:
        arch = "an unknown architecture" if template.chosen_for == "?" else f"architecture {template.chosen_for}"
        return f"built-in {template.name} template (the model has none; chosen for {arch})"
    if template.source == "built-in":
        return f"built-in {template.name} template"
    return f"chat template {template.name} ({template.source})"
