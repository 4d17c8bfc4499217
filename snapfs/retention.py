"""Which snapshots a forget policy keeps, and why. Pure: snapshots and a policy in, decisions
out. The rules are restic's (``forget``), so the same flags keep the same snapshots:

* snapshots are taken newest first; ``keep_tags`` and ``keep_within`` keep without counting;
* each counted rule (last, hourly, daily, weekly, monthly, yearly) keeps a snapshot whose
  period (in the snapshot's own UTC offset) differs from the last one it kept, while its
  count lasts (-1: unlimited); when a rule still has counts left at the oldest snapshot, it
  keeps that one too, so the history kept is as long as possible (restic 0.16 and later;
  ``keep_oldest=False`` gives restic 0.14's decisions);
* ``keep_within_<period>`` keeps one snapshot per period among those newer than the
  duration before the newest snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from snapfs.snapshot import Snapshot


@dataclass(frozen=True)
class Duration:
    """restic's duration: years, months, days and hours, as in ``1y2m3d4h``."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        if not re.fullmatch(r"(\d+[ymdh])+", text):
            raise ValueError(f"invalid duration {text!r}: use e.g. 1y6m7d12h")
        parts = {unit: int(n) for n, unit in re.findall(r"(\d+)([ymdh])", text)}
        return cls(parts.get("y", 0), parts.get("m", 0), parts.get("d", 0), parts.get("h", 0))

    def __bool__(self) -> bool:
        return any((self.years, self.months, self.days, self.hours))

    def __str__(self) -> str:
        units = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{n}{u}" for n, u in units if n) or "0h"

    def before(self, when: datetime) -> datetime:
        """``when`` minus this duration, calendar arithmetic normalised as Go's AddDate."""
        month0 = when.month - 1 - self.months - 12 * self.years
        year, month = when.year + month0 // 12, month0 % 12 + 1
        first = when.replace(year=year, month=month, day=1)
        return first + timedelta(days=when.day - 1 - self.days, hours=-self.hours)


@dataclass(frozen=True)
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration = Duration()
    within_hourly: Duration = Duration()
    within_daily: Duration = Duration()
    within_weekly: Duration = Duration()
    within_monthly: Duration = Duration()
    within_yearly: Duration = Duration()
    tags: tuple[frozenset[str], ...] = ()
    keep_oldest: bool = True

    def empty(self) -> bool:
        counts = (self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        withins = (self.within, self.within_hourly, self.within_daily, self.within_weekly,
                   self.within_monthly, self.within_yearly)  # fmt: skip
        return not any(counts) and not any(withins) and not self.tags


@dataclass
class Decision:
    snapshot: Snapshot
    keep: bool
    reasons: list[str] = field(default_factory=list)


# A snapshot's period under each rule; restic packs the same fields into one integer.
Bucket = Callable[[datetime, int], object]
PERIODS: dict[str, Bucket] = {
    "last": lambda _t, nr: nr,
    "hourly": lambda t, _nr: (t.year, t.month, t.day, t.hour),
    "daily": lambda t, _nr: (t.year, t.month, t.day),
    "weekly": lambda t, _nr: t.isocalendar()[:2],
    "monthly": lambda t, _nr: (t.year, t.month),
    "yearly": lambda t, _nr: t.year,
}


def _newest_first(snaps: list[Snapshot]) -> list[Snapshot]:
    return sorted(snaps, key=lambda s: s.datetime, reverse=True)


def apply_policy(
    snaps: list[Snapshot], policy: Policy, now: datetime | None = None
) -> list[Decision]:
    """A decision per snapshot, newest first."""
    ordered = _newest_first(snaps)
    if policy.empty():
        return [Decision(s, True, ["policy is empty"]) for s in ordered]
    if not ordered:
        return []
    now = now or datetime.now().astimezone()
    latest = max((s.datetime for s in ordered if s.datetime < now), default=ordered[-1].datetime)
    counted = {name: [getattr(policy, name), None] for name in PERIODS}
    within_last: dict[str, object] = dict.fromkeys(PERIODS)
    decisions = []
    for nr, snap in enumerate(ordered):
        when, reasons = snap.datetime, []
        reasons += [f"has tags {sorted(t)}" for t in policy.tags if t <= set(snap.tags)]
        if policy.within and when > policy.within.before(latest):
            reasons.append(f"within {policy.within}")
        for name, bucket in PERIODS.items():
            count, last = counted[name]
            oldest = policy.keep_oldest and nr == len(ordered) - 1
            if count and (bucket(when, nr) != last or oldest):
                counted[name] = [count - 1 if count > 0 else count, bucket(when, nr)]
                reasons.append(f"{'last' if name == 'last' else name} snapshot")
        for name, bucket in PERIODS.items():
            span: Duration = getattr(policy, f"within_{name}", Duration())
            if span and when > span.before(latest) and bucket(when, nr) != within_last[name]:
                within_last[name] = bucket(when, nr)
                reasons.append(f"{name} within {span}")
        decisions.append(Decision(snap, bool(reasons), reasons))
    return decisions


def group_key(snap: Snapshot, group_by: tuple[str, ...]) -> tuple[object, ...]:
    """The group a snapshot belongs to: any of host, paths, tags."""
    values = {
        "host": snap.host,
        "paths": tuple(sorted(snap.paths)),
        "tags": tuple(sorted(snap.tags)),
    }
    return tuple(values[g] for g in group_by)


def plan_forget(
    snaps: list[Snapshot], policy: Policy, group_by: tuple[str, ...] = ("host", "paths"),
    now: datetime | None = None,
) -> dict[tuple[object, ...], list[Decision]]:  # fmt: skip
    """Decisions per group, groups in a stable order."""
    groups: dict[tuple[object, ...], list[Snapshot]] = {}
    for snap in snaps:
        groups.setdefault(group_key(snap, group_by), []).append(snap)
    return {key: apply_policy(groups[key], policy, now) for key in sorted(groups, key=repr)}
