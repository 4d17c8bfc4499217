"""The list of snapshots: sortable by any column (click a header or press 1-7), filtered
by a substring and by restic's filters written as words (``host:db1 tag:old,weekly
path:/data``, snapfs.SnapshotFilter's rules), rows marked with space (for a diff)."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from snapfs import Snapshot, SnapshotFilter
from snapfs.snapshot import filter_snapshots
from tui.units import size, when

Cell = str | Text
# (key, label, right-aligned, sort key)
COLUMNS: list[tuple[str, str, bool, Callable[[Snapshot], object]]] = [
    ("id", "ID", False, lambda s: s.id),
    ("time", "Time", False, lambda s: (s.datetime, s.id)),
    ("host", "Host", False, lambda s: (s.host, s.datetime)),
    ("tags", "Tags", False, lambda s: (",".join(s.tags), s.datetime)),
    ("files", "Files", True, lambda s: (s.summary.files, s.datetime)),
    ("size", "Size", True, lambda s: (s.summary.bytes, s.datetime)),
    ("added", "Added", True, lambda s: (s.summary.bytes_added, s.datetime)),
]
_SORT_KEYS = {key: sort for key, _label, _right, sort in COLUMNS}


class SnapshotTable(DataTable[Cell]):
    BINDINGS = [
        Binding("space", "toggle_mark", "Mark", id="snapshots.mark"),
        *(
            Binding(str(n), f"sort('{key}')", f"Sort by {label}", show=False, id=f"sort.{key}")
            for n, (key, label, _r, _s) in enumerate(COLUMNS, start=1)
        ),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.snapshots: list[Snapshot] = []
        self.sort_column = "time"
        self.sort_reverse = True  # newest first: the snapshot one usually wants
        self.filter_text = ""
        self.snapshot_filter = SnapshotFilter()
        self.marked: set[str] = set()
        self.rows_shown: list[Snapshot] = []

    def show(self, snapshots: list[Snapshot]) -> None:
        self.snapshots = list(snapshots)
        self.marked &= {s.id for s in snapshots}
        self._rebuild()

    def set_filter(self, text: str) -> None:
        """``host:H``, ``tag:T[,T2]`` and ``path:P`` words (each repeatable, as the
        command line's --host, --tag, --path); the other words are one substring."""
        fields: dict[str, list[str]] = {"host": [], "tag": [], "path": []}
        rest = []
        for word in text.split():
            key, colon, value = word.partition(":")
            if colon and key in fields:
                fields[key].append(value)
            else:
                rest.append(word)
        self.snapshot_filter = SnapshotFilter.parse(
            tuple(fields["host"]), tuple(fields["tag"]), tuple(fields["path"])
        )
        self.filter_text = " ".join(rest).lower()
        self._rebuild()

    def action_sort(self, column: str) -> None:
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, column in ("time", "size", "added")
        self._rebuild()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_key.value in _SORT_KEYS:
            self.action_sort(event.column_key.value)

    def action_toggle_mark(self) -> None:
        snap = self.current()
        if snap is None:
            return
        self.marked ^= {snap.id}
        self._rebuild()

    def current(self) -> Snapshot | None:
        if not self.rows_shown or not 0 <= self.cursor_row < len(self.rows_shown):
            return None
        return self.rows_shown[self.cursor_row]

    def marked_snapshots(self) -> list[Snapshot]:
        """Marked snapshots, oldest first."""
        chosen = [s for s in self.snapshots if s.id in self.marked]
        return sorted(chosen, key=lambda s: (s.datetime, s.id))

    def _matches(self, snap: Snapshot) -> bool:
        if not self.filter_text:
            return True
        haystack = " ".join([snap.id, when(snap), snap.host, *snap.tags, *snap.paths])
        return self.filter_text in haystack.lower()

    def _rebuild(self) -> None:
        """Columns are re-added too, so the sort arrow moves with the sort column; a few
        thousand rows rebuild in milliseconds. Each column gets the width of its widest
        cell here: DataTable measures auto-width columns only when idle, and a frame drawn
        before that (a loaded machine) stays cached at the labels' widths."""
        keep = self.current()
        passing = filter_snapshots(self.snapshots, self.snapshot_filter)
        rows = [s for s in passing if self._matches(s)]
        rows.sort(key=_SORT_KEYS[self.sort_column], reverse=self.sort_reverse)  # type: ignore[arg-type]
        self.rows_shown = rows
        cells = [self._cells(snap) for snap in rows]
        self.clear(columns=True)
        self.add_column("", key="mark", width=1)
        for at, (key, label, right, _sort) in enumerate(COLUMNS, start=1):
            arrow = (" ▼" if self.sort_reverse else " ▲") if key == self.sort_column else ""
            header = Text(label + arrow, justify="right" if right else "left")
            width = max([header.cell_len, *(_cell_len(row[at]) for row in cells)])
            self.add_column(header, key=key, width=width)
        for snap, row in zip(rows, cells, strict=True):
            self.add_row(*row, key=snap.id)
        if keep is not None and keep in rows:
            self.move_cursor(row=rows.index(keep))

    def _cells(self, snap: Snapshot) -> list[Cell]:
        s = snap.summary
        return [
            Text("●", style="bold") if snap.id in self.marked else "",
            snap.short_id,
            when(snap),
            snap.host,
            ",".join(snap.tags),
            Text(f"{s.files:,}", justify="right"),
            Text(size(s.bytes), justify="right"),
            Text(size(s.bytes_added), justify="right"),
        ]


def _cell_len(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else Text(cell).cell_len
