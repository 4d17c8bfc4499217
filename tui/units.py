"""How numbers, times and errors read on screen (sizes in binary units, like the CLI)."""

from __future__ import annotations

from snapfs import SnapfsError, Snapshot
from snapfs.humanize import local_time, size

__all__ = ["clock", "describe", "local_time", "size", "when"]


def clock(seconds: float | None) -> str:
    """``h:mm:ss`` for an elapsed time or ETA; ``--:--`` when unknown."""
    if seconds is None:
        return "--:--"
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def when(snap: Snapshot) -> str:
    """A snapshot's time in its own UTC offset, as ``snapfs snapshots`` prints it."""
    return snap.datetime.strftime("%Y-%m-%d %H:%M:%S")


def describe(error: BaseException) -> str:
    """One line for a notification. snapfs errors are written for users already; anything
    else names its type, since it is a bug or an environment problem worth reporting."""
    if isinstance(error, SnapfsError):
        return str(error)
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}"
    return f"{type(error).__name__}: {error}"
