"""Restore a snapshot, or the entries marked in the browser, into a target directory, with
live progress. A path /a/b of the snapshot comes back as TARGET/a/b, as with the CLI."""

from __future__ import annotations

import glob

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Static

from snapfs import RestoreSummary, Snapshot, Tally, restore
from tui.messages import WorkFailed
from tui.session import Session
from tui.units import describe, size, when
from tui.widgets.task_progress import TaskProgress


def include_patterns(paths: list[bytes]) -> list[str]:
    """--include globs naming exactly these snapshot paths: glob characters in names are
    escaped, and a directory brings everything below it (PathFilter matches ancestors)."""
    return [glob.escape("/" + p.decode("utf-8", "surrogateescape")) for p in paths]


class RestoreScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="restore.back"),
        Binding("ctrl+s", "start", "Start", id="restore.start"),
    ]

    class Done(Message):
        def __init__(self, summary: RestoreSummary, target: str) -> None:
            super().__init__()
            self.summary = summary
            self.target = target

    def __init__(self, session: Session, snapshot: Snapshot, paths: list[bytes]) -> None:
        super().__init__()
        self.session = session
        self.snapshot = snapshot
        self.paths = paths
        self.sub_title = f"restore {snapshot.short_id}"
        self.running = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="form"):
            yield Label(f"Snapshot [b]{self.snapshot.short_id}[/b] of {when(self.snapshot)}")
            what = "\n".join("  /" + p.decode("utf-8", "replace") for p in self.paths[:10])
            more = f"\n  … and {len(self.paths) - 10} more" if len(self.paths) > 10 else ""
            yield Static(
                f"Restore:\n{what}{more}" if self.paths else "Restore: the whole snapshot",
                id="what",
                markup=False,
            )
            yield Label("Target directory")
            yield Input(placeholder="/tmp/restore", id="target")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", id="start")
            yield TaskProgress(id="progress")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_start()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_start()

    def action_start(self) -> None:
        target = self.query_one("#target", Input).value.strip()
        if self.running:
            return
        if not target:
            self.notify("choose a target directory first", severity="warning")
            return
        self.running = True
        self.query_one("#start", Button).disabled = True
        tally = Tally()
        self.query_one(TaskProgress).start(tally)
        self._restore(target, tally)

    @work(thread=True, exclusive=True, group="restore", exit_on_error=False)
    def _restore(self, target: str, tally: Tally) -> None:
        try:
            summary = restore(
                self.session.repository,
                self.snapshot,
                target,
                includes=include_patterns(self.paths),
                on_event=tally,
            )
        except Exception as e:
            self.post_message(WorkFailed("restore", e))
            return
        self.post_message(self.Done(summary, target))

    def on_restore_screen_done(self, event: Done) -> None:
        self.running = False
        self.query_one("#start", Button).disabled = False
        s = event.summary
        line = (
            f"restored {s.files:,} files ({size(s.bytes)}) and {s.dirs:,} directories to "
            f"{event.target}" + (f"; {s.skipped:,} already there" if s.skipped else "")
        )
        if s.warnings:
            line += f"; {s.warnings} warnings"
        self.query_one(TaskProgress).stop(line)
        self.notify(line, title="restore finished")

    def on_work_failed(self, event: WorkFailed) -> None:
        self.running = False
        self.query_one("#start", Button).disabled = False
        self.query_one(TaskProgress).stop(f"failed: {describe(event.error)}")
        self.notify(describe(event.error), title=f"{event.action} failed", severity="error")
