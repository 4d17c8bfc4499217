"""The scan ahead of a backup: its totals (the ETA of progress displays) count exactly the
regular files and bytes the backup will read, excludes left out."""

from __future__ import annotations

import threading
from pathlib import Path

from snapfs.backup import Scan, backup
from snapfs.events import Event, FileDone, Planned
from snapfs.progress import Tally
from snapfs.repository import Repository


def _planned(events: list[Event]) -> list[Planned]:
    return [e for e in events if isinstance(e, Planned)]


def test_a_scan_counts_what_the_backup_reads(lake_tree: Path) -> None:
    events: list[Event] = []
    done = threading.Event()

    def on_event(event: Event) -> None:
        events.append(event)
        done.set()

    Scan([str(lake_tree)], ["*.bin"], on_event)
    assert done.wait(30)
    files = [p for p in lake_tree.rglob("*") if p.is_file() and not p.is_symlink()]
    kept = [p for p in files if p.suffix != ".bin"]
    assert events == [Planned(len(kept), sum(p.stat().st_size for p in kept))]


def test_an_estimating_backup_plans_what_it_then_saves(repo: Repository, lake_tree: Path) -> None:
    events: list[Event] = []
    snap = backup(repo, [str(lake_tree)], on_event=events.append, estimate=True)
    assert _planned(events) == [Planned(snap.summary.files, snap.summary.bytes)]


def test_progress_counts_reused_files_as_the_summary_does(
    repo: Repository, lake_tree: Path
) -> None:
    """Files reused from the parent snapshot are told once a directory, not one event each;
    the tally still reaches the summary's files and bytes, and the file read again is told
    on its own."""
    backup(repo, [str(lake_tree)])
    changed = lake_tree / "dir/nested/deeper/leaf.csv"
    changed.write_text("changed")
    tally = Tally()
    events: list[Event] = []

    def on_event(event: Event) -> None:
        events.append(event)
        tally(event)

    snap = backup(repo, [str(lake_tree)], on_event=on_event)
    view = tally.view()
    assert (view.files, view.bytes) == (snap.summary.files, snap.summary.bytes)
    assert [e.path for e in events if isinstance(e, FileDone)] == [str(changed)]
