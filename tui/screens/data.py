"""Data mode: open a dataset against a model's tokenizer and see what training will see.

Three views of one scan: Records (each record rendered through the chat template, the tokens
trained on highlighted, the max_seq_len cut marked; a preference pair shows its prompt, then its
two answers side by side, each with its token count and cut), Lengths (token-length statistics and
the histogram with the cut line), Problems (every skipped record with its line and reason).
The scan is `engine.data.job.scan_job` in a thread worker whose events come back as
`DataScreen.ScanReported` messages: the UI never waits on tokenization, and starting a new scan
cancels the one in flight (the worker's cancel flag is the job's).
"""

from __future__ import annotations

import itertools
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import DataTable, Input, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from engine.data.stats import POLICIES, Histogram, format_histogram
from engine.events import Cancelled, Failed, Finished, JobEvent, Progress
from tui.screens.base import ModeScreen

TRAINED_STYLE = "bold $text-success on $success-muted"
CUT_STYLE = "$text-disabled strike"
_job_ids = itertools.count(1)


class DataScreen(ModeScreen):
    CSS_PATH = "data.tcss"
    MODE_KEY = "data"
    BINDINGS = [
        Binding("ctrl+r", "scan", "scan", id="data.scan"),
        Binding("ctrl+l", "toggle_loss", "loss on", id="data.loss"),
        Binding("ctrl+y", "cycle_policy", "policy", id="data.policy"),
        Binding("r", "show_tab('records')", "records", show=False, id="data.records"),
        Binding("h", "show_tab('lengths')", "histogram", show=False, id="data.lengths"),
        Binding("p", "show_tab('problems')", "problems", show=False, id="data.problems"),
    ]

    class ScanReported(Message):
        """An event of scan `scan_id`. A Progress replaces a queued one of the same phase."""

        def __init__(self, scan_id: str, event: JobEvent) -> None:
            super().__init__()
            self.scan_id = scan_id
            self.event = event

        def can_replace(self, message: Message) -> bool:
            return (isinstance(message, DataScreen.ScanReported) and message.scan_id == self.scan_id
                    and isinstance(self.event, Progress) and isinstance(message.event, Progress)
                    and message.event.phase == self.event.phase)

    def __init__(self) -> None:
        super().__init__()
        self.loss_on = "assistant"
        self.policy = "truncate"
        self.job_id = ""
        self.summary: dict[str, Any] | None = None

    # -- layout ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        options = self.app.options
        with Horizontal(id="data-form"):
            yield Input(str(options.get("file") or ""), placeholder="dataset: .jsonl .json .csv .parquet",
                        id="data-file")
            yield Input(str(options.get("model") or ""), placeholder="model or tokenizer folder", id="data-model")
            yield Input(str(options.get("max_seq_len") or ""), placeholder="max len", id="data-maxlen", type="integer")
            yield Input(
                str(options.get("chat_template") or ""),
                placeholder="template: auto",
                id="data-template",
                tooltip="chat template: empty = the model's own, else the built-in one for its architecture; "
                "or llama-2, llama-3, mistral, chatml, gemma, alpaca, or a Jinja file",
            )
        yield Static("Tab to the fields: a dataset and a model folder, then Enter (or ctrl+r) to scan.",
                     id="data-status")
        with TabbedContent(id="data-tabs", initial="records"):
            with TabPane("Records", id="records"):
                with Horizontal():
                    yield OptionList(id="data-records")
                    with VerticalScroll(id="data-record-scroll"):
                        yield Static("", id="data-record-head")
                        yield Static("", id="data-record")
                        with Horizontal(id="data-pair"):
                            for side in ("a", "b"):
                                with Vertical(classes="data-side"):
                                    yield Static("", id=f"data-side-{side}-head", classes="data-side-head")
                                    yield Static("", id=f"data-side-{side}", classes="data-side-text")
            with TabPane("Lengths", id="lengths"):
                with VerticalScroll(id="data-lengths-scroll"):
                    yield Static("No scan yet.", id="data-lengths")
            with TabPane("Problems", id="problems"):
                table: DataTable[str] = DataTable(id="data-problems", cursor_type="row", zebra_stripes=True)
                table.add_column("where", key="where")
                table.add_column("kind", key="kind")
                table.add_column("reason", key="reason")
                yield table

    def on_mount(self) -> None:
        # The record list has the focus (AUTO_FOCUS), never a path field: number keys still
        # switch modes, and Tab (or a click) reaches the fields.
        options = self.app.options
        if options.get("file") and options.get("model"):
            self.action_scan()

    # -- actions -----------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_scan()

    def action_scan(self) -> None:
        path = self.query_one("#data-file", Input).value.strip()
        model = self.query_one("#data-model", Input).value.strip()
        max_len = self.query_one("#data-maxlen", Input).value.strip()
        template = self.query_one("#data-template", Input).value.strip()
        if not path or not model:
            self._status("Give both a dataset file and a model or tokenizer folder.", error=True)
            self.query_one("#data-file" if not path else "#data-model", Input).focus()
            return
        policy = self.policy
        if policy == "pack" and not max_len:
            policy = "truncate"
            self.notify("packing needs a max length; showing truncate", severity="warning")
        spec = {
            "path": path,
            "model": model,
            "max_seq_len": int(max_len) if max_len.isdigit() else None,
            "policy": policy,
            "loss_on": self.loss_on,
            "chat_template": template or None,
            "previews": 200,
            "problems_limit": 1000,
        }
        self.job_id = f"data-scan-{next(_job_ids)}"
        self._status(f"scanning {path} …")
        self._scan(self.job_id, spec)

    @work(thread=True, exclusive=True, group="data-scans", exit_on_error=False, description="scanning the dataset")
    def _scan(self, scan_id: str, spec: dict[str, Any]) -> None:
        from engine.data.job import scan_job
        from engine.jobs import JobContext, execute

        def report(event: JobEvent) -> None:
            self.post_message(self.ScanReported(scan_id, event))

        execute(scan_job, spec, JobContext(report, get_current_worker().cancelled_event, job_id=scan_id))

    def action_toggle_loss(self) -> None:
        self.loss_on = "all" if self.loss_on == "assistant" else "assistant"
        self.notify(f"loss on {self.loss_on} tokens")
        if self.summary is not None:
            self.action_scan()

    def action_cycle_policy(self) -> None:
        self.policy = POLICIES[(POLICIES.index(self.policy) + 1) % len(POLICIES)]
        self.notify(f"length policy: {self.policy}")
        if self.summary is not None:
            self.action_scan()

    def action_show_tab(self, tab: str) -> None:
        # Focus moves into the new pane too: TabbedContent re-activates whichever pane holds
        # the focused widget, so leaving focus in the old pane would switch straight back.
        self.query_one("#data-tabs", TabbedContent).active = tab
        target = {"records": "#data-records", "lengths": "#data-lengths-scroll", "problems": "#data-problems"}[tab]
        self.query_one(target).focus()

    # -- scan results ------------------------------------------------------------------------
    def on_data_screen_scan_reported(self, message: ScanReported) -> None:
        if message.scan_id != self.job_id:
            return  # a scan that was replaced
        event = message.event
        if isinstance(event, Progress):
            if event.phase == "tokenizer":
                self._status("loading the tokenizer …")
            elif event.total:
                self._status(f"scanning {100 * event.fraction:.0f}% …")
        elif isinstance(event, Finished):
            self.show_summary(event.summary)
        elif isinstance(event, Failed):
            self._status(event.message, error=True)
        elif isinstance(event, Cancelled):
            self._status("scan cancelled")

    def show_summary(self, s: dict[str, Any]) -> None:
        self.summary = s
        kinds = ", ".join(f"{k} {n}" for k, n in s["problems"].items())
        self._status(
            f"{s['file']}: {s['format']} · {s['records']} records · {s['problem_total']} problems"
            + (f" ({kinds})" if kinds else "")
            + f" · loss on {s['loss_on']} · template {s.get('template_name', '?')}"
        )
        records = self.query_one("#data-records", OptionList)
        records.clear_options()
        records.add_options(
            Option(f"{'line ' + str(p['line']) if p['line'] else 'rec ' + str(p['record'])} · {p['n_tokens']} tok",
                   id=str(i))
            for i, p in enumerate(s["previews"])
        )
        if s["previews"]:
            records.highlighted = 0
            self.show_record(0)
        else:
            self.query_one("#data-record-head", Static).update("No record could be rendered.")
            self.query_one("#data-record", Static).update("")
        self.query_one("#data-lengths", Static).update(lengths_content(s))
        table = self.query_one("#data-problems", DataTable)
        table.clear()
        for i, p in enumerate(s["problem_list"]):
            table.add_row(p["where"], p["kind"], p["reason"], key=str(i))
        tabs = self.query_one("#data-tabs", TabbedContent)
        problems_tab = tabs.get_tab("problems")
        problems_tab.label = f"Problems ({s['problem_total']})"  # type: ignore[assignment]

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "data-records" and event.option.id is not None:
            self.show_record(int(event.option.id))

    def show_record(self, index: int) -> None:
        if self.summary is None or not (0 <= index < len(self.summary["previews"])):
            return
        p = self.summary["previews"][index]
        max_seq_len = self.summary.get("max_seq_len")
        sides = p.get("sides")
        pair = self.query_one("#data-pair", Horizontal)
        pair.display = bool(sides)
        if sides is not None:  # a preference, KTO or prompt record: the prompt, then each answer
            head = f"{p['where']} · prompt {sides[0]['n_prompt'] if sides else p['n_tokens']} tokens"
            self.query_one("#data-record-head", Static).update(head)
            self.query_one("#data-record", Static).update(prompt_content(p))
            for key, side in zip(("a", "b"), [*sides, None, None][:2], strict=True):
                column = self.query_one(f"#data-side-{key}", Static).parent
                assert column is not None
                column.display = side is not None
                if side is not None:
                    self.query_one(f"#data-side-{key}-head", Static).update(side_head(side, max_seq_len))
                    self.query_one(f"#data-side-{key}", Static).update(answer_content(side, max_seq_len))
            return
        head = f"{p['where']} · {p['n_tokens']} tokens · {p['n_trained']} trained"
        if p["cut_char"] is not None:
            head += f" · cut at {max_seq_len}"
        self.query_one("#data-record-head", Static).update(head)
        self.query_one("#data-record", Static).update(record_content(p, max_seq_len))

    def _status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#data-status", Static)
        status.update(Content(text))
        status.set_class(error, "-error")


def record_content(preview: dict[str, Any], max_seq_len: int | None) -> Content:
    """The rendered text with trained spans highlighted and the part past the cut struck."""
    text: str = preview["text"]
    cut = preview.get("cut_char")
    content = Content(text)
    for start, end in preview["spans"]:
        content = content.stylize(TRAINED_STYLE, start, end)
    if cut is not None and cut < len(text):
        marker = Content.styled(f"✂ max_seq_len {max_seq_len} ", "bold $text-warning")
        content = Content.assemble(content[:cut], marker, content[cut:].stylize(CUT_STYLE))
    if preview.get("clipped"):
        content = Content.assemble(content, Content.styled("\n… (record clipped for display)", "$text-muted"))
    return content


def prompt_content(preview: dict[str, Any]) -> Content:
    """A pair's prompt as the chat template renders it (and the columns a GRPO reward reads)."""
    content = Content(preview["prompt"].rstrip("\n"))
    columns = preview.get("columns")
    if columns:
        listed = ", ".join(f"{k}={v!r}" for k, v in columns.items())
        content = Content.assemble(content, Content.styled(f"\ncolumns: {listed}", "$text-muted"))
    return content


def side_head(side: dict[str, Any], max_seq_len: int | None) -> str:
    """`chosen · 12 tokens (40 with the prompt)`, and where max_seq_len cuts it."""
    head = f"[b]{side['label']}[/b] · {side['n_answer']} tokens ({side['n_tokens']} with the prompt)"
    if side.get("prompt_over"):
        head += f" · the prompt alone fills {max_seq_len}: dropped"
    elif side["cut_char"] is not None:
        head += f" · ✂ at {max_seq_len}"
    return head


def answer_content(side: dict[str, Any], max_seq_len: int | None) -> Content:
    """One answer, trained text highlighted, the part past max_seq_len struck."""
    text: str = side["answer"]
    cut = side["cut_char"]
    content = Content(text).stylize(TRAINED_STYLE, 0, len(text))
    if cut is not None and cut < len(text):
        marker = Content.styled(f"✂ {max_seq_len} ", "bold $text-warning")
        content = Content.assemble(content[:cut], marker, Content(text[cut:]).stylize(CUT_STYLE))
    return content


def lengths_content(s: dict[str, Any]) -> Content:
    """Statistics lines and the histogram, bars past the cut in the error colour."""
    length = s["length"]
    parts: list[Content | str | tuple[str, str]] = []
    tokens, trained = s["tokens"], s["trained_tokens"]
    share = f" ({100 * trained / tokens:.0f}%)" if tokens else ""
    parts.append(f"tokens {tokens:,} · trained on {trained:,}{share}\n")
    parts.append(policy_text(s) + "\n")
    if not length["count"]:
        parts.append("No example has anything to train on.\n")
        return Content.assemble(*parts)
    parts.append(
        f"min {length['min']} · p50 {length['p50']} · p90 {length['p90']} · p99 {length['p99']} · "
        f"max {length['max']} · mean {length['mean']}\n\n"
    )
    hist = Histogram.from_dict(s["histogram"])
    cut_index = hist.cut_index
    over_label = f"{s['over']} longer" if s["max_seq_len"] else ""
    lines = format_histogram(hist, width=36, over_label=over_label)
    bar = 0
    for line in lines:
        if "max_seq_len" in line and "─" in line:
            parts.append((line + "\n", "bold $text-warning"))
            continue
        style = "$text-error" if cut_index is not None and bar >= cut_index else ""
        parts.append((line + "\n", style) if style else line + "\n")
        bar += 1
    return Content.assemble(*parts)


def policy_text(s: dict[str, Any]) -> str:
    limit = s["max_seq_len"]
    if not limit:
        return "No max length: nothing is cut. Type one (e.g. 2048) and press Enter."
    text = f"max_seq_len {limit}, policy {s['policy']}: {s['over']} longer"
    if s["over"]:
        text += f" -> {'dropped' if s['policy'] == 'drop' else 'truncated'} ({s['tokens_cut']:,} tokens lost)"
    if s["dropped_after_cut"]:
        text += f", {s['dropped_after_cut']} left with nothing to train on"
    text += f"\nkept {s['kept']} examples, {s['kept_tokens']:,} tokens"
    if s["policy"] == "pack":
        text += f"; packed into {s['packs']} sequences, {100 * s['pack_fill']:.0f}% full"
    return text
