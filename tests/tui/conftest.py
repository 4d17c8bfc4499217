"""Repositories for the TUI tests: real ones on disk, and a synthetic one whose every id,
time and size is fixed, so SVG snapshots of the screens are the same on every run."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from textual.pilot import Pilot

from snapfs.crypto import MasterKey
from snapfs.pack import BlobKind
from snapfs.repository import Repository, Writer
from snapfs.snapshot import Snapshot, Summary
from snapfs.store.local import LocalBackend
from snapfs.tree import DIR, FILE, SYMLINK, Node
from tests.conftest import CHEAP_KDF, PASSWORD

T = TypeVar("T")
SIZE = (120, 40)
MTIME = 1_714_521_600_000_000_000  # 2024-05-01 00:00:00 UTC


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Pilot tests are coroutines; pytest here has no asyncio plugin, so run each in a loop
    of its own."""
    return asyncio.run(coro)


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 30) -> None:
    """Let workers and messages run until ``condition`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)


async def settle(pilot: Pilot[Any]) -> None:
    """Wait for every worker, then for the messages they posted."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _node(name: str, kind: str, *, size: int = 0, content: list[bytes] | None = None,
          subtree: bytes | None = None, target: bytes = b"") -> Node:  # fmt: skip
    mode = 0o755 if kind == DIR else 0o644
    return Node(name=name.encode(), type=kind, mode=mode, uid=1000, gid=1000, user="lake",
                group="lake", mtime_ns=MTIME, ctime_ns=MTIME, size=size,
                content=content or [], subtree=subtree, target=target)  # fmt: skip


def parquet_bytes(rows: int, offset: int = 0) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "id": list(range(offset, offset + rows)),
        "region": [("north", "south", "east", "west")[i % 4] for i in range(rows)],
        "amount": [round(i * 1.25, 2) for i in range(rows)],
    })  # fmt: skip
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="none")
    return sink.getvalue()


Tree = dict[str, "bytes | str | Tree"]  # file contents, a symlink target ("->x"), a subtree


def _save(writer: Writer, spec: Tree) -> bytes:
    nodes = []
    for name, value in spec.items():
        if isinstance(value, dict):
            nodes.append(_node(name, DIR, subtree=_save(writer, value)))
        elif isinstance(value, str):
            nodes.append(_node(name, SYMLINK, target=value.encode()))
        else:
            ids = [writer.add_blob(BlobKind.DATA, value)[0]] if value else []
            nodes.append(_node(name, FILE, size=len(value), content=ids))
    return writer.save_tree(nodes)


def _files(spec: Tree) -> tuple[int, int]:
    count = total = 0
    for value in spec.values():
        if isinstance(value, dict):
            c, t = _files(value)
            count, total = count + c, total + t
        elif isinstance(value, bytes):
            count, total = count + 1, total + len(value)
    return count, total


def lake(day: int) -> Tree:
    """The lake on day ``day``: a CSV that grows, one more Parquet partition a day."""
    sales: Tree = {f"part-{i}.parquet": parquet_bytes(50, i * 50) for i in range(day)}
    return {
        "data": {
            "lake": {
                "README.md": b"# Lake\n\nSales partitions and an event log.\n",
                "events.csv": b"time,event\n"
                + b"".join(f"2024-05-0{d}T00:00:00,load\n".encode() for d in range(1, day + 1)),
                "latest": "sales",
                "sales": sales,
            }
        }
    }


def build_fixed_repo(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Snapshot]:
    """Three daily snapshots of ``lake``; a fixed master key makes every id the same on
    every run (blob and snapshot ids are keyed hashes)."""
    with monkeypatch.context() as m:
        m.setattr(MasterKey, "generate", classmethod(lambda cls: cls(bytes(range(64)))))
        repo = Repository.init(LocalBackend(path), PASSWORD, kdf=CHEAP_KDF)
    snaps: list[Snapshot] = []
    with repo:
        for day, tags in ((1, ["nightly"]), (2, ["nightly"]), (3, ["nightly", "release"])):
            spec = lake(day)
            files, total = _files(spec)
            with repo.writer() as writer:
                root = _save(writer, spec)
                snap = Snapshot(
                    time=f"2024-05-0{day}T02:00:00+00:00", host="lake-01", user="etl",
                    paths=["/data/lake"], tags=tags, tree=root.hex(),
                    parent=snaps[-1].id if snaps else None,
                    summary=Summary(files=files, dirs=3, bytes=total, bytes_added=total // day),
                    program_version="0.1.0",
                )  # fmt: skip
                snaps.append(writer.save_snapshot(snap))
    return snaps


@pytest.fixture
def fixed_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Snapshot]:
    """The fixed repository at ./repo (the tests run in tmp_path, so screens showing the
    location show "repo", not a random temporary path)."""
    monkeypatch.chdir(tmp_path)
    return build_fixed_repo(tmp_path / "repo", monkeypatch)


def open_repo(path: Path) -> Repository:
    return Repository.open(LocalBackend(path), PASSWORD)


def build_wide_repo(path: Path, entries: int) -> Snapshot:
    """One snapshot whose root directory holds ``entries`` empty files."""
    repo = Repository.init(LocalBackend(path), PASSWORD, kdf=CHEAP_KDF)
    with repo, repo.writer() as writer:
        root = writer.save_tree([_node(f"f{i:06d}.csv", FILE) for i in range(entries)])
        snap = Snapshot(time="2024-05-01T02:00:00+00:00", host="lake-01", user="etl",
                        paths=["/wide"], tree=root.hex())  # fmt: skip
        return writer.save_snapshot(snap)
