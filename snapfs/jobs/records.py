"""What one run of a job did: the record history stores, notify sends and metrics count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["success", "failure"]
STEPS = ("before", "backup", "forget", "prune", "copy", "check", "drill", "after")
"""A run's steps, in the order they run; a step not due (prune, check, drill) is skipped."""


@dataclass(frozen=True)
class StepResult:
    step: str  # one of STEPS
    ok: bool
    started: float  # Unix time
    finished: float
    error: str | None = None  # one line, as the CLI would print it
    detail: str | None = None  # e.g. "copy to offsite", "3 snapshots removed"


@dataclass(frozen=True)
class RunRecord:
    job: str
    status: Status
    started: float  # Unix time
    finished: float
    snapshot: str | None = None  # the id of the snapshot the backup step saved
    bytes_added: int = 0  # what the backup stored anew (after compression)
    step: str | None = None  # the first failing step
    error: str | None = None  # its error, one line
    steps: tuple[StepResult, ...] = field(default=())

    @property
    def duration(self) -> float:
        return self.finished - self.started
