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


@pytest.mark.parametrize(("flags", "policy"), POLICIES, ids=[" ".join(f) for f, _ in POLICIES])
def test_same_decisions_as_restic(
    restic_repo: tuple[Path, dict[str, datetime]], flags: list[str], policy: Policy
) -> None:
    repo, times = restic_repo
    env = {**os.environ, "RESTIC_PASSWORD": "pw", "RESTIC_REPOSITORY": str(repo), "TZ": "UTC"}
    out = subprocess.run(["restic", "forget", "--dry-run", "--json", *flags], env=env,
                         check=True, capture_output=True)  # fmt: skip
    groups = json.loads(out.stdout)
    restic_keep = {s["id"] for g in groups for s in (g.get("keep") or [])}
    snaps = [
        Snapshot(time=t.isoformat(), host="h", user="u", paths=["/src"], tree="00", id=sid,
                 tags=["important"] if i % 17 == 3 else [])
        for i, (sid, t) in enumerate(sorted(times.items(), key=lambda kv: kv[1]))
    ]  # fmt: skip
    as_014 = dataclasses.replace(policy, keep_oldest=False)
    ours = {d.snapshot.id for d in apply_policy(snaps, as_014) if d.keep}
    assert sorted(times[i] for i in ours) == sorted(times[i] for i in restic_keep)
    # restic 0.15+ also keeps the oldest snapshot while a counted rule has counts left
    modern = {d.snapshot.id for d in apply_policy(snaps, policy) if d.keep}
    oldest = min(times, key=times.__getitem__)
    counts_left = any(
        _left(policy, snaps, name)
        for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly")
    )
    assert modern == (ours | {oldest} if counts_left else ours)


def _left(policy: Policy, snaps: list[Snapshot], name: str) -> bool:
    """Whether rule ``name`` still has counts left when it reaches the oldest snapshot."""
    count = getattr(policy, name)
    if not count:
        return False
    kept = [d for d in apply_policy(snaps, Policy(**{name: count}, keep_oldest=False)) if d.keep]
    return bool(count == -1 or len(kept) < count)
