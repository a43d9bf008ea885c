"""The Chat side panel: what is loaded (backend, model, template, chat or completion and why,
context) and the sampling parameters, editable, with sampler presets.

Enter in the model or template field loads that model in the background. A value that does not
parse keeps its text and gets the reason on the line under it (`FormField`). The screen reads
the values from the fields themselves when it sends (`read_params`), never from the last
`Input.Changed`: under load that message can still be on its way when Enter is handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Input, Select, Static

from engine.chat.base import BackendInfo
from engine.chat.params import PRESET_FIELDS, ParamError, SamplingParams, parse_value, preset_name
from tui.widgets.form_field import FormField

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

PROMPT_MODE_OPTIONS = (("auto (from the model)", "auto"), ("chat (template)", "chat"),
                       ("completion (no template)", "completion"))


def _shown(name: str, params: SamplingParams) -> str:
    value = getattr(params, name)
    if name == "stop":
        return "|".join(s.encode("unicode_escape").decode() for s in value)
    return "" if value is None else str(value)


class ChatSidePanel(VerticalScroll):
    DEFAULT_CSS = """
    ChatSidePanel { width: 36; border-left: tall $panel-lighten-2; padding: 0 1; background: $surface; }
    ChatSidePanel FormField { margin-top: 1; }
    ChatSidePanel Input { height: 1; border: none; padding: 0; background: $boost; }
    ChatSidePanel Input:focus { border: none; background: $primary-muted; }
    ChatSidePanel Input.-invalid { color: $text-error; }
    ChatSidePanel Select { height: 1; }
    ChatSidePanel #side-info { height: auto; }
    """

    @dataclass
    class ParamsChanged(Message):
        params: SamplingParams

    @dataclass
    class LoadRequested(Message):
        model: str
        template: str

    @dataclass
    class PromptModeRequested(Message):
        mode: str
        """auto, chat or completion."""

    @dataclass
    class PresetSaveRequested(Message):
        name: str
        values: dict[str, Any]

    def __init__(self, params: SamplingParams, *, model: str = "", template: str = "auto",
                 presets: dict[str, dict[str, Any]] | None = None, prompt_mode: str = "auto",
                 id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.params = params
        self.presets = dict(presets or {})
        self._model = model
        self._template = template
        self._prompt_mode = prompt_mode

    def compose(self) -> ComposeResult:
        yield Static("no model loaded", id="side-info", markup=False)
        yield FormField("model (Enter loads)", Input(self._model, placeholder=".gguf file or HF folder",
                                                    id="side-model"))
        yield FormField("template (Enter reloads)", Input(self._template, placeholder="auto, gemma, chatml, file.jinja",
                                                          id="side-template"))
        yield FormField("prompt (F6 switches)", Select(PROMPT_MODE_OPTIONS, value=self._prompt_mode, allow_blank=False,
                                                       compact=True, id="side-mode"))
        yield FormField("sampler preset", Select(self._preset_options(), value=self._preset_value(self.params),
                                                 prompt="custom", compact=True, id="side-preset"))
        for name, label in FIELDS:
            yield FormField(label, Input(_shown(name, self.params), id=f"p-{name}"))
        yield FormField("save sampler as preset (name, Enter)", Input(placeholder="my-preset", id="side-preset-name"))

    # -- what is loaded --------------------------------------------------------------------------
    def show_info(self, info: BackendInfo | None, note: str = "") -> None:
        if info is None:
            text = note or "no model loaded"
        else:
            lines = [f"backend  {info.backend}", f"model    {info.model}", f"template {info.template}",
                     f"prompt   {info.prompt_mode}", f"context  {info.context_size or '?'}"]
            lines += [f"{k:<8} {v}" for k, v in info.details.items()]
            if info.prompt_mode_reason:
                lines.append(f"({info.prompt_mode_reason})")
            if note:
                lines.append(note)
            text = "\n".join(lines)
        self.query_one("#side-info", Static).update(text)

    def show_prompt_mode(self, requested: str) -> None:
        """Reflect a mode chosen elsewhere (F6) without asking for it again."""
        self._prompt_mode = requested
        select = self.query_one("#side-mode", Select)
        if select.value != requested:
            with select.prevent(Select.Changed):
                select.value = requested

    # -- sampling values ------------------------------------------------------------------------
    def read_params(self) -> tuple[SamplingParams | None, list[str]]:
        """The parameters the fields hold right now, read from the widgets; (None, the problems)
        when one does not parse. Each problem also shows under its field."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, _label in FIELDS:
            field_input = self.query_one(f"#p-{name}", Input)
            try:
                values[name] = parse_value(name, field_input.value)
                self.params.with_(**{name: values[name]})  # the range of this one field
            except (ParamError, TypeError) as exc:
                problems.append(str(exc))
                self._field(field_input).set_error(str(exc))
            else:
                self._field(field_input).set_error("")
        if problems:
            return None, problems
        try:
            params = self.params.with_(**values)
        except (ParamError, TypeError) as exc:
            return None, [str(exc)]
        self.params = params
        return params, []

    @staticmethod
    def _field(widget: Input) -> FormField:
        field = FormField.of(widget)
        assert field is not None
        return field

    def apply_preset(self, values: dict[str, Any]) -> None:
        """Put a preset's values into the fields (the rest stay as they are)."""
        for name in PRESET_FIELDS:
            if name in values:
                self.query_one(f"#p-{name}", Input).value = str(values[name])
        self.read_params()

    def set_presets(self, presets: dict[str, dict[str, Any]]) -> None:
        self.presets = dict(presets)
        select = self.query_one("#side-preset", Select)
        with select.prevent(Select.Changed):
            select.set_options(self._preset_options())
            select.value = self._preset_value(self.params)

    def _preset_options(self) -> list[tuple[str, str]]:
        return [(name, name) for name in self.presets]

    def _preset_value(self, params: SamplingParams) -> Any:
        return preset_name(params, self.presets) or Select.NULL

    def on_input_changed(self, event: Input.Changed) -> None:
        if not (event.input.id or "").startswith("p-"):
            return
        event.stop()
        params, _problems = self.read_params()
        if params is None:
            return
        select = self.query_one("#side-preset", Select)
        shown = self._preset_value(params)
        if select.value != shown:
            with select.prevent(Select.Changed):
                select.value = shown
        self.post_message(self.ParamsChanged(params))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "side-preset" and event.value in self.presets:
            self.apply_preset(self.presets[str(event.value)])
            if self.params is not None:
                self.post_message(self.ParamsChanged(self.params))
        elif event.select.id == "side-mode" and event.value != self._prompt_mode:
            self._prompt_mode = str(event.value)
            self.post_message(self.PromptModeRequested(str(event.value)))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("side-model", "side-template"):
            event.stop()
            model = self.query_one("#side-model", Input).value.strip()
            template = self.query_one("#side-template", Input).value.strip() or "auto"
            self.post_message(self.LoadRequested(model, template))
        elif event.input.id == "side-preset-name":
            event.stop()
            self._save_preset(event.input)

    def _save_preset(self, name_input: Input) -> None:
        name = name_input.value.strip()
        field = self._field(name_input)
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            field.set_error("a preset name is letters, digits, - and _")
            return
        params, problems = self.read_params()
        if params is None:
            field.set_error("fix the values above first: " + problems[0])
            return
        field.set_error("")
        name_input.value = ""
        self.post_message(self.PresetSaveRequested(name, {k: getattr(params, k) for k in PRESET_FIELDS}))
