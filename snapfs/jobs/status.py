"""Where each job stands: its last run and when it runs next, from the config and the
history. ``snapfs jobs list`` and the TUI's Jobs screen both show this."""

from __future__ import annotations

from dataclasses import dataclass

from snapfs.jobs.config import Config
from snapfs.jobs.history import History
from snapfs.jobs.records import RunRecord
from snapfs.jobs.schedule import Schedule, next_run


@dataclass(frozen=True)
class JobStatus:
    job: str
    repository: str  # a key of Config.repositories
    schedule: Schedule | None  # None: run only by hand
    last: RunRecord | None  # the newest run; None: never run
    next_run: float | None  # Unix time, ``now`` when due already; None: no schedule

    @property
    def last_run(self) -> float | None:
        return self.last.started if self.last else None

    @property
    def result(self) -> str | None:
        return self.last.status if self.last else None


def job_statuses(config: Config, history: History, now: float) -> list[JobStatus]:
    """Every job of ``config``, by name."""
    statuses = []
    for name, job in sorted(config.jobs.items()):
        last = history.last(name)
        started = last.started if last else None
        upcoming = next_run(job.schedule, started, now) if job.schedule else None
        statuses.append(JobStatus(name, job.repository, job.schedule, last, upcoming))
    return statuses
