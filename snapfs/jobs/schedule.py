"""When a job runs: every N seconds, or on a cron expression in local time.

A job is due once its next time after its last run has come, so after downtime an overdue
job runs once (its next time is then counted from that run), not once per missed slot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cronsim import CronSim, CronSimError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number and a unit (s, m, h, d, w), or several (``1h30m``).
    ValueError, saying what is accepted, for anything else or for zero."""
    if not isinstance(text, str) or not re.fullmatch(rf"(?:{_PART.pattern})+", text):
        raise ValueError(f"cannot parse duration {text!r}: use e.g. 30s, 15m, 6h, 1d, 1h30m")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"duration {text!r} is not longer than nothing")
    return seconds


@dataclass(frozen=True)
class Schedule:
    """``every`` seconds after the last run, or the times ``cron`` names (five fields, local
    time). ``text`` is how the config file wrote it."""

    text: str
    every: float | None = None
    cron: str | None = None

    @classmethod
    def every_(cls, text: str) -> Schedule:
        return cls(text=f"every {text}", every=parse_duration(text))

    @classmethod
    def cron_(cls, expr: str) -> Schedule:
        if not isinstance(expr, str) or len(expr.split()) != 5:
            raise ValueError(f"cannot parse cron schedule {expr!r}: five fields, e.g. '0 2 * * *'")
        try:
            CronSim(expr, datetime.now().astimezone())
        except CronSimError as e:
            raise ValueError(f"cannot parse cron schedule {expr!r}: {e}") from None
        return cls(text=expr, cron=expr)

    def next_after(self, t: float) -> float:
        """The first time after ``t`` (Unix time) the job falls due."""
        if self.every is not None:
            return t + self.every
        assert self.cron is not None
        start = datetime.fromtimestamp(t).astimezone()  # local time: cron's fields are
        return next(iter(CronSim(self.cron, start))).timestamp()

    def __str__(self) -> str:
        return self.text


def due(schedule: Schedule, last_run: float | None, now: float) -> bool:
    """Whether a job last run at ``last_run`` (None: never) is due at ``now``. Never run: due
    at once. Overdue by many slots: due, once; the run it starts becomes ``last_run``."""
    return last_run is None or schedule.next_after(last_run) <= now


def next_run(schedule: Schedule, last_run: float | None, now: float) -> float:
    """When the job runs next: ``now`` if it is due already."""
    if due(schedule, last_run, now):
        return now
    assert last_run is not None
    return schedule.next_after(last_run)
