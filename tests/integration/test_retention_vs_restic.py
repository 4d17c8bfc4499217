"""forget keeps exactly what restic's forget keeps, on the same snapshot times and flags:
restic itself is run on snapshots made with ``--time`` and its JSON answer compared."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapfs.retention import Duration, Policy, apply_policy
from snapfs.snapshot import Snapshot

START = datetime(2023, 1, 30, 22, 15, tzinfo=UTC)


def _times() -> list[datetime]:
    rng = random.Random(7)
    t, out = START, []
    for _ in range(40):
        t += timedelta(
            hours=rng.choice([1, 3, 7, 20, 26, 49, 170, 400, 900]), minutes=rng.randint(0, 59)
        )
        out.append(t)
    return out


POLICIES: list[tuple[list[str], Policy]] = [
    (["--keep-last", "5"], Policy(last=5)),
    (["--keep-hourly", "6"], Policy(hourly=6)),
    (["--keep-daily", "7"], Policy(daily=7)),
    (["--keep-weekly", "4", "--keep-monthly", "6"], Policy(weekly=4, monthly=6)),
    (["--keep-yearly", "3", "--keep-last", "2"], Policy(yearly=3, last=2)),
    (["--keep-monthly", "100"], Policy(monthly=100)),
    (["--keep-within", "1m10d"], Policy(within=Duration.parse("1m10d"))),
    (["--keep-within-daily", "20d", "--keep-weekly", "2"],
     Policy(within_daily=Duration.parse("20d"), weekly=2)),
    (["--keep-daily", "3", "--keep-tag", "important"],
     Policy(daily=3, tags=(frozenset({"important"}),))),
]  # fmt: skip


@pytest.fixture(scope="module")
def restic_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, datetime]]:
    base = tmp_path_factory.mktemp("restic")
    repo, src = base / "repo", base / "src"
    src.mkdir()
    (src / "f").write_text("x")
    env = {**os.environ, "RESTIC_PASSWORD": "pw", "RESTIC_REPOSITORY": str(repo), "TZ": "UTC"}
    subprocess.run(["restic", "init", "-q"], env=env, check=True, capture_output=True)

    def make(i: int, t: datetime) -> None:
        tags = ["--tag", "important"] if i % 17 == 3 else []
        when = t.strftime("%Y-%m-%d %H:%M:%S")
        cmd = ["restic", "backup", "-q", "--host", "h", "--time", when, *tags, str(src)]
        subprocess.run(cmd, env=env, check=True, capture_output=True)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(make, *zip(*enumerate(_times()), strict=True)))
    out = subprocess.run(
        ["restic", "snapshots", "--json"], env=env, check=True, capture_output=True
    )
    ids = {s["id"]: datetime.fromisoformat(s["time"]) for s in json.loads(out.stdout)}
    return repo, ids


COUNTED = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
# Where restic 0.16+ (and snapfs by default) keep one more snapshot than restic 0.14: the
# policies whose counted rules still have counts left when they reach the oldest snapshot.
# README's forget section names these two.
OLDEST_ALSO_KEPT = {"--keep-yearly 3 --keep-last 2", "--keep-monthly 100"}


def _restic_forget(repo: Path, flags: list[str]) -> dict[str, object]:
    env = {**os.environ, "RESTIC_PASSWORD": "pw", "RESTIC_REPOSITORY": str(repo), "TZ": "UTC"}
    out = subprocess.run(["restic", "forget", "--dry-run", "--json", *flags], env=env,
                         check=True, capture_output=True)  # fmt: skip
    (group,) = json.loads(out.stdout)
    return dict(group)


def _counts_left_at_oldest(group: dict[str, object], policy: Policy, oldest: datetime) -> bool:
    """From restic's own answer: whether a counted rule still had counts when it reached the
    oldest snapshot (the counters after the last snapshot kept before it; the policy's
    counts when none was)."""
    reasons = [
        r
        for r in group["reasons"] or []  # type: ignore[attr-defined]
        if datetime.fromisoformat(r["snapshot"]["time"]) != oldest
    ]
    if not reasons:
        return any(getattr(policy, name) for name in COUNTED)
    return any(reasons[-1]["counters"].get(name, 0) for name in COUNTED)


@pytest.mark.parametrize(("flags", "policy"), POLICIES, ids=[" ".join(f) for f, _ in POLICIES])
def test_same_decisions_as_restic(
    restic_repo: tuple[Path, dict[str, datetime]], flags: list[str], policy: Policy
) -> None:
    """restic 0.14 (Debian's, which ./scripts/test installs) decides the snapshots it keeps;
    restic 0.16 and later keep the oldest one as well when a counted rule has counts left
    there (restic's pull request 4366), which restic 0.14's counters tell. snapfs matches
    the later rule by default and restic 0.14's with ``keep_oldest=False``."""
    repo, times = restic_repo
    group = _restic_forget(repo, flags)
    restic_014 = sorted(times[s["id"]] for s in group.get("keep") or [])  # type: ignore[attr-defined]
    snaps = [
        Snapshot(time=t.isoformat(), host="h", user="u", paths=["/src"], tree="00", id=sid,
                 tags=["important"] if i % 17 == 3 else [])
        for i, (sid, t) in enumerate(sorted(times.items(), key=lambda kv: kv[1]))
    ]  # fmt: skip
    as_014 = dataclasses.replace(policy, keep_oldest=False)
    assert sorted(times[d.snapshot.id] for d in apply_policy(snaps, as_014) if d.keep) == restic_014
    oldest = min(times.values())
    left = _counts_left_at_oldest(group, policy, oldest)
    restic_016 = sorted(set(restic_014) | {oldest}) if left else restic_014
    assert sorted(times[d.snapshot.id] for d in apply_policy(snaps, policy) if d.keep) == restic_016
    assert (restic_016 != restic_014) == (" ".join(flags) in OLDEST_ALSO_KEPT)
