"""Create a snapshot: choose paths and tags, watch files, bytes, rate and ETA, cancel.

Cancelling makes the event handler raise in the backup's threads; the backup stops at its
next file or chunk and saves no snapshot. Packs it already stored stay, named by an index:
the next backup reuses them, or prune removes them."""

from __future__ import annotations

import os

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, OptionList

from snapfs import Event, Snapshot, Tally, backup
from snapfs.events import Planned
from tui.messages import SnapshotsChanged, WorkFailed
from tui.session import Session
from tui.units import describe, size
from tui.widgets.task_progress import TaskProgress


class BackupCancelled(Exception):
    """Raised by the event handler once the user cancels."""


class CancellableTally(Tally):
    """A Tally whose call raises BackupCancelled after ``cancel()`` (thread-safe: a flag)."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __call__(self, event: Event) -> None:
        # Planned comes from the scanner's own thread, where nobody would catch the error.
        if self.cancelled and not isinstance(event, Planned):
            raise BackupCancelled
        super().__call__(event)


def split_tags(text: str) -> list[str]:
    return sorted({t.strip() for t in text.replace(" ", ",").split(",") if t.strip()})


class CreateScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "cancel_or_back", "Cancel/back", id="create.back"),
        Binding("ctrl+s", "start", "Start", id="create.start"),
        Binding("delete", "remove_path", "Remove path", id="create.remove", show=False),
    ]

    class Done(Message):
        def __init__(self, snapshot: Snapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

    class Cancelled(Message):
        pass

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.sub_title = "create a snapshot"
        self.paths: list[str] = []
        self.tally: CancellableTally | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="form"):
            yield Label("Paths to back up (enter adds one; delete removes the highlighted)")
            yield Input(placeholder="/data/lake", id="path")
            yield OptionList(id="paths")
            yield Label("Tags (comma-separated)")
            yield Input(placeholder="nightly, lake", id="tags")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", id="start")
                yield Button("Cancel", variant="error", id="cancel", disabled=True)
            yield TaskProgress(id="progress")
        yield Footer()

    # -- choosing ---------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "path":
            self.add_path(event.value)
            event.input.value = ""
        elif event.input.id == "tags":
            self.action_start()

    def add_path(self, text: str) -> None:
        path = os.path.abspath(os.path.expanduser(text.strip())) if text.strip() else ""
        if not path:
            return
        if not os.path.lexists(path):
            self.notify(f"{path}: no such file or directory", severity="warning")
            return
        if path not in self.paths:
            self.paths.append(path)
            self.query_one("#paths", OptionList).add_option(path)

    def action_remove_path(self) -> None:
        options = self.query_one("#paths", OptionList)
        index = options.highlighted
        if index is not None and not self.running:
            options.remove_option_at_index(index)
            del self.paths[index]

    # -- running ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.tally is not None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()
        elif event.button.id == "cancel":
            self.action_cancel()

    def action_start(self) -> None:
        pending = self.query_one("#path", Input).value
        if pending.strip():  # typed but not yet added with enter: surely meant
            self.add_path(pending)
            self.query_one("#path", Input).value = ""
        if self.running:
            return
        if not self.paths:
            self.notify("add a path to back up first", severity="warning")
            return
        self.tally = CancellableTally()
        self._set_running(True)
        self.query_one(TaskProgress).start(self.tally)
        tags = split_tags(self.query_one("#tags", Input).value)
        self._backup(list(self.paths), tags, self.tally)

    @work(thread=True, exclusive=True, group="backup", exit_on_error=False)
    def _backup(self, paths: list[str], tags: list[str], tally: CancellableTally) -> None:
        repo = self.session.repository
        try:
            snap = backup(repo, paths, tags=tags, on_event=tally, estimate=True)
        except BackupCancelled:
            self.post_message(self.Cancelled())
            return
        except Exception as e:
            self.post_message(WorkFailed("back up", e))
            return
        self.post_message(self.Done(snap))

    def action_cancel(self) -> None:
        if self.tally is not None:
            self.tally.cancel()
            self.query_one("#cancel", Button).disabled = True

    def action_cancel_or_back(self) -> None:
        if self.running:
            self.action_cancel()
        else:
            self.app.pop_screen()

    def _set_running(self, running: bool) -> None:
        self.query_one("#start", Button).disabled = running
        self.query_one("#cancel", Button).disabled = not running
        if not running:
            self.tally = None

    def on_create_screen_done(self, event: Done) -> None:
        s = event.snapshot.summary
        line = (
            f"snapshot {event.snapshot.short_id} saved: {s.files:,} files, {size(s.bytes)}, "
            f"added {size(s.bytes_added)} ({size(s.stored_bytes_added)} stored)"
            + (f"; {s.warnings} files could not be read" if s.warnings else "")
        )
        self.query_one(TaskProgress).stop(line)
        self._set_running(False)
        self.notify(
            line, title="backup finished", severity="warning" if s.warnings else "information"
        )
        self.app.post_message(SnapshotsChanged())

    def on_create_screen_cancelled(self, _event: Cancelled) -> None:
        self.query_one(TaskProgress).stop("cancelled: no snapshot was saved")
        self._set_running(False)
        self.notify("backup cancelled; no snapshot was saved", severity="warning")

    def on_work_failed(self, event: WorkFailed) -> None:
        self.query_one(TaskProgress).stop(f"failed: {describe(event.error)}")
        self._set_running(False)
        self.notify(describe(event.error), title=f"cannot {event.action}", severity="error")
