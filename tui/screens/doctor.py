"""The doctor screen (F9, or "Doctor" in the palette): `llmdeck doctor` one key away.

The same report as the CLI (engine.doctor): one row per check, and under the table the
highlighted check in full with the command that fixes it, which `c` copies to your own
clipboard (OSC 52, works over SSH). The checks run in a thread (a few seconds: they start child
processes), so the screen opens at once and the app never waits on them.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

STATUS_COLOUR = {"ok": "success", "warning": "warning", "missing": "error"}  # theme variables


class DoctorScreen(ModalScreen[None]):
    CSS_PATH = "modals.tcss"
    BINDINGS = [
        Binding("escape,q,f9", "dismiss", "close"),
        Binding("r", "recheck", "check again"),
        Binding("c", "copy_fix", "copy fix"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report = None  # engine.doctor.Report once the checks are done

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Doctor: checking this machine…", id="doctor-title")
            table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="doctor-table")
            table.add_columns("status", "check", "what is there")
            yield table
            yield Static("", id="doctor-detail", markup=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.action_recheck()

    def action_recheck(self) -> None:
        self.query_one("#doctor-title", Static).update("Doctor: checking this machine…")
        self._run_checks()

    @work(thread=True, exclusive=True, group="doctor")
    def _run_checks(self) -> None:
        from engine.doctor import run_checks

        report = run_checks()
        self.app.call_from_thread(self._show, report)

    def _show(self, report) -> None:
        from rich.text import Text

        self.report = report
        counts = report.summary()
        self.query_one("#doctor-title", Static).update(
            f"Doctor: {counts['ok']} ok, {counts['warning']} warning(s), {counts['missing']} missing "
            f"({report.seconds:.1f} s)   c copies the fix · r checks again · Esc closes"
        )
        table = self.query_one(DataTable)
        table.clear()
        colours = self.app.get_css_variables()
        for check in report.checks:
            status = Text(check.status, style=f"bold {colours.get(STATUS_COLOUR.get(check.status, ''), '')}".strip())
            table.add_row(status, check.name, check.detail, key=check.name)
        self._describe(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._describe(event.cursor_row)

    def _describe(self, row: int) -> None:
        if self.report is None or not 0 <= row < len(self.report.checks):
            return
        check = self.report.checks[row]
        fix = f"\nfix: {check.fix}" if check.fix else ""
        self.query_one("#doctor-detail", Static).update(f"{check.name} ({check.status}): {check.detail}{fix}")

    def action_copy_fix(self) -> None:
        if self.report is None:
            return
        check = self.report.checks[self.query_one(DataTable).cursor_row]
        if not check.fix:
            self.notify(f"{check.name}: nothing to run", timeout=3)
            return
        self.app.copy_to_clipboard(check.fix)
        self.notify(f"copied: {check.fix}", timeout=4)
