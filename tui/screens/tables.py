"""The Tables screen: the Delta and Iceberg tables a snapshot pinned, with their versions and
commit times; below, the highlighted table's schema, row count and first rows."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from snapfs import Snapshot
from snapfs.snapshot import TableRecord
from tui.content import NoPreview
from tui.session import Session
from tui.tablepeek import TablePeek, peek
from tui.units import describe, size, when
from tui.widgets.file_preview import FilePreview


class TablesScreen(Screen[None]):
    AUTO_FOCUS = "#tables"
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="tables.back")]

    class Peeked(Message):
        def __init__(self, table: TableRecord, peeked: TablePeek) -> None:
            super().__init__()
            self.table = table
            self.peeked = peeked

    def __init__(self, session: Session, snapshot: Snapshot) -> None:
        super().__init__()
        self.session = session
        self.snapshot = snapshot
        self.sub_title = f"tables of {snapshot.short_id}"
        self._shown: TableRecord | None = None
        self.peeked: TablePeek | None = None  # what the preview shows

    def compose(self) -> ComposeResult:
        yield Header()
        count = len(self.snapshot.tables)
        yield Static(f"snapshot {self.snapshot.short_id} ({when(self.snapshot)}) pinned "
                     f"{count} table{'' if count == 1 else 's'}", id="tables-status")  # fmt: skip
        yield DataTable[str | Text](id="tables", cursor_type="row", zebra_stripes=True)
        yield Static("", id="table-note", classes="section")
        yield FilePreview(id="table-preview")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#tables", DataTable)
        for name in ("Path", "Format", "Version", "Committed", "Files", "Size", "State"):
            table.add_column(name, key=name.lower())
        for t in self.snapshot.tables:
            state = Text("torn", style="bold red") if t.torn else Text("whole", style="green")
            table.add_row(t.path, t.format, str(t.version), t.commit_time, f"{t.files:,}",
                          size(t.bytes), state)  # fmt: skip
        if not self.snapshot.tables:
            self.query_one(FilePreview).show(NoPreview("this snapshot pinned no tables"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        tables = self.snapshot.tables
        if event.cursor_row >= len(tables) or tables[event.cursor_row] == self._shown:
            return
        self._shown = tables[event.cursor_row]
        self.query_one(FilePreview).show(None, loading=True)
        self.query_one("#table-note", Static).update("")
        self._peek(self._shown)

    @work(thread=True, exclusive=True, group="peek", exit_on_error=False)
    def _peek(self, table: TableRecord) -> None:
        try:
            peeked = peek(self.session.repository, self.snapshot, table)
        except Exception as e:  # a table that does not read: say why in the preview
            peeked = TablePeek(NoPreview(f"cannot read the table: {describe(e)}"), "")
        self.post_message(self.Peeked(table, peeked))

    def on_tables_screen_peeked(self, event: Peeked) -> None:
        if event.table != self._shown:
            return  # the cursor moved on meanwhile
        self.peeked = event.peeked
        self.query_one(FilePreview).show(event.peeked.preview)
        self.query_one("#table-note", Static).update(event.peeked.note)
