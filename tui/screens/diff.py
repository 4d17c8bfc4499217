"""What changed between two snapshots: added, removed, modified (contents) and metadata-only
entries with their sizes. Unchanged subtrees are skipped without being read."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from snapfs import Change, Snapshot, diff_trees
from tui.messages import WorkFailed
from tui.session import Session
from tui.units import describe, size, when

MAX_ROWS = 20_000  # beyond this a table helps nobody; the counts still cover everything
_KINDS = {"+": ("added", "green"), "-": ("removed", "red"), "M": ("modified", "yellow"),
          "U": ("metadata", "cyan")}  # fmt: skip


def summarize(changes: list[Change], total: Counter[str], grown: int, shrunk: int) -> str:
    counts = ", ".join(f"{total[k]:,} {name}" for k, (name, _s) in _KINDS.items())
    shown = f" (first {len(changes):,} shown)" if sum(total.values()) > len(changes) else ""
    return f"{counts} · +{size(grown)} / -{size(shrunk)}{shown}"


class DiffScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="diff.back")]

    class Computed(Message):
        def __init__(self, changes: list[Change], total: Counter[str], grown: int, shrunk: int):
            super().__init__()
            self.changes = changes
            self.total = total
            self.grown = grown
            self.shrunk = shrunk

    def __init__(self, session: Session, first: Snapshot, second: Snapshot) -> None:
        super().__init__()
        self.session = session
        self.first = first
        self.second = second
        self.sub_title = f"diff {first.short_id} → {second.short_id}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            f"from [b]{self.first.short_id}[/b] ({when(self.first)}) "
            f"to [b]{self.second.short_id}[/b] ({when(self.second)})",
            id="diff-title",
        )
        yield Static("comparing…", id="diff-summary")
        yield DataTable[str | Text](id="changes", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#changes", DataTable)
        table.add_column("", key="kind", width=9)
        table.add_column("Path", key="path")
        table.add_column(Text("Before", justify="right"), key="before")
        table.add_column(Text("After", justify="right"), key="after")
        self._diff()

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def _diff(self) -> None:
        repo = self.session.repository
        changes: list[Change] = []
        total: Counter[str] = Counter()
        grown = shrunk = 0
        try:
            a, b = bytes.fromhex(self.first.tree), bytes.fromhex(self.second.tree)
            for change in diff_trees(repo, a, b):
                total[change.kind] += 1
                delta = change.size_after - change.size_before
                grown, shrunk = grown + max(delta, 0), shrunk + max(-delta, 0)
                if len(changes) < MAX_ROWS:
                    changes.append(change)
        except Exception as e:
            self.post_message(WorkFailed("diff", e))
            return
        self.post_message(self.Computed(changes, total, grown, shrunk))

    def on_diff_screen_computed(self, event: Computed) -> None:
        table = self.query_one("#changes", DataTable)
        for c in event.changes:
            name, style = _KINDS[c.kind]
            before = size(c.size_before) if c.kind != "+" else ""
            after = size(c.size_after) if c.kind != "-" else ""
            table.add_row(Text(name, style=style), c.path, Text(before, justify="right"),
                          Text(after, justify="right"))  # fmt: skip
        summary = summarize(event.changes, event.total, event.grown, event.shrunk)
        if not event.total:
            summary = "no differences"
        self.query_one("#diff-summary", Static).update(summary)

    def on_work_failed(self, event: WorkFailed) -> None:
        self.query_one("#diff-summary", Static).update(f"cannot diff: {describe(event.error)}")
        self.notify(describe(event.error), title="cannot diff", severity="error")
