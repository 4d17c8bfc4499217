"""Text from a crafted repository (a lock's host, a snapshot's host and paths, a file name)
on the terminal: every command line prints it escaped as ``ls -b`` does, never as the
escape sequences or rich markup it holds."""

from __future__ import annotations

import os
import time

import msgspec

from snapfs.locks import LockRecord
from snapfs.repository import Repository
from snapfs.snapshot import Snapshot
from snapfs.tree import FILE
from tests.conftest import Cli
from tests.crafted import node

HOST = "evil\x1b]0;pwned\x07[blink]x"
SHOWN = "evil\\033]0;pwned\\a[blink]x"


def _plant_lock(repo: Repository) -> None:
    now = time.time()
    record = LockRecord("f" * 16, HOST, 4242, "prune", now, now)
    repo.backend.put(f"locks/{os.urandom(16).hex()}", repo.key.seal(msgspec.msgpack.encode(record)))


def test_a_lock_holders_host_is_printed_escaped(cli: Cli, repo: Repository) -> None:
    _plant_lock(repo)
    since = "(pid 4242 on " + SHOWN + ", since "
    locked = cli.run("prune")
    assert locked.returncode == 11
    assert locked.stderr.decode().startswith("snapfs: repository is locked by prune " + since)
    waited = cli.run("prune", "--retry-lock", "0.3")
    assert waited.returncode == 11
    first = waited.stderr.decode().splitlines()[0]
    assert first.startswith("snapfs: waiting for the lock held by prune " + since)
    removed = cli.run("unlock", "--remove-all", check=True)
    assert removed.stdout.decode().startswith("removed lock prune " + since)
    for out in (locked.stderr, waited.stderr, removed.stdout):
        assert b"\x1b" not in out and b"\x07" not in out


def test_a_snapshots_host_and_paths_are_printed_escaped_not_as_markup(
    cli: Cli, repo: Repository
) -> None:
    with repo.writer() as w:
        root = w.save_tree([])
        w.save_snapshot(Snapshot(time="2026-11-30T10:00:00+00:00", host=HOST, user="mallory",
                                 paths=["/\x1b[2Jwiped"], tree=root.hex()))  # fmt: skip
    out = cli.run("snapshots", check=True).stdout.decode()
    assert SHOWN in out and "/\\033[2Jwiped" in out
    assert "\x1b" not in out


def test_check_prints_a_damaged_files_name_escaped(cli: Cli, repo: Repository) -> None:
    with repo.writer() as w:
        missing = node(b"\x1b[31mred", FILE, size=3, content=[b"\x01" * 32])
        tree = w.save_tree([missing]).hex()
        snap = w.save_snapshot(Snapshot(time="2026-11-30T10:00:00+00:00", host="h", user="u",
                                        paths=["/"], tree=tree))  # fmt: skip
    checked = cli.run("check")
    assert checked.returncode == 1
    lines = checked.stderr.decode().splitlines()
    assert lines == [f"error: snapshot {snap.short_id}: /\\033[31mred: data missing"]
