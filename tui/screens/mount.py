"""Mount a snapshot read-only through FUSE, or unmount one mounted from here. The mount is
the ``snapfs mount`` command in a child process (see tui/mounts.py)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from snapfs import Snapshot
from tui.messages import WorkFailed
from tui.session import Session
from tui.units import describe, when


class MountScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="mount.back"),
        Binding("ctrl+s", "mount", "Mount", id="mount.mount"),
        Binding("ctrl+t", "unmount", "Unmount", id="mount.unmount"),
    ]

    class Changed(Message):
        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    def __init__(self, session: Session, snapshot: Snapshot) -> None:
        super().__init__()
        self.session = session
        self.snapshot = snapshot
        self.sub_title = f"mount {snapshot.short_id}"
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="form"):
            yield Label(f"Snapshot [b]{self.snapshot.short_id}[/b] of {when(self.snapshot)}")
            yield Label("Mountpoint (an empty directory)")
            yield Input(placeholder="/mnt/snapshot", id="mountpoint")
            with Horizontal(classes="buttons"):
                yield Button("Mount", variant="primary", id="mount")
                yield Button("Unmount", id="unmount")
            yield Static("", id="mount-status")
            yield Label("Mounted from here (unmounted when you quit)")
            yield DataTable[str](id="mounts", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#mounts", DataTable).add_columns("Mountpoint", "Snapshot")
        self._show_mounts()

    def _show_mounts(self) -> None:
        table = self.query_one("#mounts", DataTable)
        table.clear()
        for where, snapshot_id in sorted(self.session.mounts.active.items()):
            table.add_row(where, snapshot_id[:8], key=where)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.query_one("#mountpoint", Input).value = event.row_key.value

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_mount()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_mount() if event.button.id == "mount" else self.action_unmount()

    def _mountpoint(self) -> str | None:
        where = self.query_one("#mountpoint", Input).value.strip()
        if not where:
            self.notify("type a mountpoint first", severity="warning")
            return None
        if self.busy:
            return None
        self.busy = True
        return where

    def action_mount(self) -> None:
        if (where := self._mountpoint()) is not None:
            self.query_one("#mount-status", Static).update(f"mounting at {where}…")
            self._run("mount", where)

    def action_unmount(self) -> None:
        if (where := self._mountpoint()) is not None:
            self.query_one("#mount-status", Static).update(f"unmounting {where}…")
            self._run("unmount", where)

    @work(thread=True, exclusive=True, group="mount", exit_on_error=False)
    def _run(self, verb: str, where: str) -> None:
        mounts = self.session.mounts
        try:
            if verb == "mount":
                mounts.mount(where, self.snapshot.id)
                line = f"{self.snapshot.short_id} mounted at {where}"
            else:
                mounts.unmount(where)
                line = f"{where} unmounted"
        except Exception as e:
            self.post_message(WorkFailed(verb, e))
            return
        self.post_message(self.Changed(line))

    def on_mount_screen_changed(self, event: Changed) -> None:
        self.busy = False
        self.query_one("#mount-status", Static).update(event.line)
        self.notify(event.line)
        self._show_mounts()

    def on_work_failed(self, event: WorkFailed) -> None:
        self.busy = False
        self.query_one("#mount-status", Static).update(
            f"cannot {event.action}: {describe(event.error)}"
        )
        self.notify(describe(event.error), title=f"cannot {event.action}", severity="error")
