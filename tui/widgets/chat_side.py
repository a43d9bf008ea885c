"""The Chat side panel: what is loaded (backend, model path, template, context) and the sampling
parameters, editable. Enter in the model or template field loads that model in the background."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Static

from engine.chat.base import BackendInfo
from engine.chat.params import ParamError, SamplingParams, parse_value

FIELDS = (
    ("temperature", "temperature (0 = greedy)"),
    ("top_p", "top-p"),
    ("top_k", "top-k (0 = off)"),
    ("min_p", "min-p"),
    ("repetition_penalty", "repetition penalty"),
    ("max_new_tokens", "max new tokens"),
    ("seed", "seed (empty = random)"),
    ("stop", "stop strings (a|b, \\n ok)"),
    ("system_prompt", "system prompt"),
)


def _shown(name: str, params: SamplingParams) -> str:
    value = getattr(params, name)
    if name == "stop":
        return "|".join(s.encode("unicode_escape").decode() for s in value)
    return "" if value is None else str(value)


class ChatSidePanel(VerticalScroll):
    DEFAULT_CSS = """
    ChatSidePanel { width: 36; border-left: tall $panel-lighten-2; padding: 0 1; background: $surface; }
    ChatSidePanel Label { color: $text-muted; margin-top: 1; }
    ChatSidePanel Input { height: 1; border: none; padding: 0; background: $boost; }
    ChatSidePanel Input:focus { border: none; background: $primary-muted; }
    ChatSidePanel Input.-invalid { color: $error; }
    ChatSidePanel #side-info { height: auto; }
    """

    @dataclass
    class ParamsChanged(Message):
        params: SamplingParams

    @dataclass
    class LoadRequested(Message):
        model: str
        template: str

    def __init__(self, params: SamplingParams, *, model: str = "", template: str = "auto",
                 id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.params = params
        self._model = model
        self._template = template

    def compose(self) -> ComposeResult:
        yield Static("no model loaded", id="side-info", markup=False)
        yield Label("model (Enter loads)")
        yield Input(self._model, placeholder=".gguf file or HF folder", id="side-model")
        yield Label("template (Enter reloads)")
        yield Input(self._template, placeholder="auto, gemma, chatml, file.jinja", id="side-template")
        for name, label in FIELDS:
            yield Label(label)
            yield Input(_shown(name, self.params), id=f"p-{name}")

    def show_info(self, info: BackendInfo | None, note: str = "") -> None:
        if info is None:
            text = note or "no model loaded"
        else:
            lines = [f"backend  {info.backend}", f"model    {info.model}", f"template {info.template}",
                     f"context  {info.context_size or '?'}"]
            lines += [f"{k:<8} {v}" for k, v in info.details.items()]
            if note:
                lines.append(note)
            text = "\n".join(lines)
        self.query_one("#side-info", Static).update(text)

    def on_input_changed(self, event: Input.Changed) -> None:
        if not (event.input.id or "").startswith("p-"):
            return
        event.stop()
        name = event.input.id[2:]
        try:
            value = parse_value(name, event.value)
            params = self.params.with_(**{name: value})
        except (ParamError, TypeError) as exc:
            event.input.add_class("-invalid")
            event.input.tooltip = str(exc)
            return
        event.input.remove_class("-invalid")
        event.input.tooltip = None
        self.params = params
        self.post_message(self.ParamsChanged(params))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("side-model", "side-template"):
            event.stop()
            model = self.query_one("#side-model", Input).value.strip()
            template = self.query_one("#side-template", Input).value.strip() or "auto"
            self.post_message(self.LoadRequested(model, template))
