"""The home screen: every snapshot of the repository, and the keys to act on them."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from snapfs import Snapshot
from tui.messages import WorkFailed
from tui.session import Session
from tui.units import describe, size
from tui.widgets.snapshot_table import SnapshotTable


class SnapshotsScreen(Screen[None]):
    AUTO_FOCUS = "#snapshots"
    BINDINGS = [
        Binding("enter", "app.browse", "Browse", id="snapshots.browse"),
        Binding("c", "app.create", "Create", id="snapshots.create"),
        Binding("r", "app.restore", "Restore", id="snapshots.restore"),
        Binding("f", "app.forget", "Forget", id="snapshots.forget"),
        Binding("d", "app.diff", "Diff", id="snapshots.diff"),
        Binding("m", "app.mount", "Mount", id="snapshots.mount"),
        Binding("t", "app.tables", "Tables", id="snapshots.tables"),
        Binding("j", "app.jobs", "Jobs", id="snapshots.jobs"),
        Binding("slash", "filter", "Filter", id="snapshots.filter"),
        Binding("ctrl+r", "reload", "Reload", id="snapshots.reload", show=False),  # F1 lists it
    ]

    def __init__(self) -> None:
        super().__init__()
        self.session: Session | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("opening repository…", id="status")
        yield Input(placeholder="filter: id, time, host, tag or path", id="filter")
        yield SnapshotTable(id="snapshots")
        yield Footer()

    @property
    def table(self) -> SnapshotTable:
        return self.query_one(SnapshotTable)

    def open(self, session: Session) -> None:
        self.session = session
        self.action_reload()

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def failed(self, reason: str) -> None:
        self.query_one("#status", Static).update(Text(reason, style="bold red"))

    def action_reload(self) -> None:
        if self.session is not None:
            self.query_one("#status", Static).update(f"{self.session.location}: loading…")
            self._load(self.session)

    @work(thread=True, exclusive=True, group="snapshots", exit_on_error=False)
    def _load(self, session: Session) -> None:
        try:
            snaps = session.repository.snapshots()
        except Exception as e:
            self.post_message(WorkFailed("list snapshots", e))
            return
        self.app.call_from_thread(self._show, session, snaps)

    def _show(self, session: Session, snaps: list[Snapshot]) -> None:
        self.table.show(snaps)
        total = sum(s.summary.bytes for s in snaps)
        self.query_one("#status", Static).update(
            f"{session.location} · {len(snaps)} snapshots · {size(total)} backed up in all"
        )

    def on_data_table_row_selected(self, _event: SnapshotTable.RowSelected) -> None:
        self.app.call_later(self.app.run_action, "browse")

    def on_work_failed(self, event: WorkFailed) -> None:
        self.failed(f"cannot {event.action}: {describe(event.error)}")
        self.notify(describe(event.error), title=f"cannot {event.action}", severity="error")

    # -- filter -----------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.table.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.table.focus()

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("shown"):
            box.value = ""
            box.remove_class("shown")
            self.table.focus()
