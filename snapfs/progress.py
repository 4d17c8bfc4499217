"""Folds events into counts, rate and ETA. Thread-safe; never renders."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from snapfs.events import BytesDone, Event, FileDone, FilesReused, FileWarning, Planned


@dataclass(frozen=True)
class TallyView:
    files: int
    bytes: int
    total_files: int | None
    total_bytes: int | None
    warnings: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.bytes / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        if not self.total_bytes or not self.rate:
            return None
        return max(0.0, (self.total_bytes - self.bytes) / self.rate)


class Tally:
    """An event handler (call it with events) that keeps running totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.files = self.bytes = self.warnings = 0
        self.total_files: int | None = None
        self.total_bytes: int | None = None
        self.warning_lines: list[str] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, BytesDone):
                self.bytes += event.bytes
            elif isinstance(event, FileDone):
                self.files += 1
            elif isinstance(event, FilesReused):
                self.files += event.files
                self.bytes += event.bytes
            elif isinstance(event, FileWarning):
                self.warnings += 1
                self.warning_lines.append(f"{event.path}: {event.error}")
            elif isinstance(event, Planned):
                self.total_files, self.total_bytes = event.files, event.bytes

    def view(self) -> TallyView:
        with self._lock:
            return TallyView(
                self.files,
                self.bytes,
                self.total_files,
                self.total_bytes,
                self.warnings,
                time.monotonic() - self._started,
            )
