"""The faces against crafted names and failing objects: names printed escaped (and exact in
JSON), and mount handlers that answer EIO instead of ending the mount. Handlers are called
without a kernel; the real mounts are in tests/integration/test_hostile_repo.py."""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Iterable

import pyfuse3
import pytest
import trio

from snapfs.buffers import Data
from snapfs.cli.render import emit_json, escaped
from snapfs.fuse.inodes import ROOT_INODE
from snapfs.fuse.ops import SnapshotOperations
from snapfs.fuse.reader import ChunkCache
from snapfs.index import IndexEntry
from snapfs.snapshot import Snapshot
from snapfs.tree import Tree
from snapfs.view import View


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        (b"\x1b[31mred", "\\033[31mred"),
        (b"line\nbreak\ttab", "line\\nbreak\\ttab"),
        (b"caf\xe9-\xff", "caf\\351-\\377"),
        (b"back\\slash", "back\\\\slash"),
        ("café über".encode(), "café über"),
        ("rtl\u202eoverride".encode(), "rtl\\342\\200\\256override"),
    ],
)
def test_names_are_escaped_as_ls_b_does(name: bytes, shown: str) -> None:
    assert escaped(name) == shown


def test_json_carries_a_name_that_is_not_utf8_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    name = b"caf\xe9-\x1b[31m"
    emit_json({"name": name.decode("utf-8", "surrogateescape")})
    line = capsys.readouterr().out
    assert "\x1b" not in line and "\\udce9" in line  # valid UTF-8, terminal-safe
    assert json.loads(line)["name"].encode("utf-8", "surrogateescape") == name


class _Failing:
    """A repository whose every tree read fails with what no handler expects."""

    def snapshots(self) -> list[Snapshot]:
        return []

    def load_tree(self, tree_id: bytes) -> Tree:
        raise RuntimeError("a bug met a crafted object")

    def tree_if_cached(self, tree_id: bytes) -> Tree | None:
        return None

    def blob_entry(self, blob_id: bytes) -> IndexEntry:
        raise RuntimeError("unused")

    def tree_entry(self, tree_id: bytes) -> IndexEntry:
        raise RuntimeError("unused")

    def read_blob_group(self, ids: Iterable[bytes], on_damaged: object = None) -> dict[bytes, Data]:
        raise RuntimeError("unused")


def test_a_handler_that_fails_answers_eio_once_and_the_next_request_is_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snap = Snapshot(time="2026-11-30T10:00:00+00:00", host="h", user="u", paths=["/"],
                    tree="00" * 32, id="ab" * 32)  # fmt: skip
    view = View(_Failing(), snap)
    ops = SnapshotOperations(view, ChunkCache(view.read_chunks, 1 << 20))
    ctx = pyfuse3.RequestContext()
    with caplog.at_level(logging.WARNING, logger="snapfs.fuse"):
        with pytest.raises(pyfuse3.FUSEError) as failed:
            trio.run(ops.lookup, ROOT_INODE, b"anything", ctx)
        assert failed.value.errno == errno.EIO
        with pytest.raises(pyfuse3.FUSEError) as failed:
            trio.run(ops.opendir, ROOT_INODE, ctx)
        assert failed.value.errno == errno.EIO
    assert [r.getMessage() for r in caplog.records] == [
        "lookup failed: RuntimeError: a bug met a crafted object",
        "opendir failed: RuntimeError: a bug met a crafted object",
    ]
    attr = trio.run(ops.getattr, ROOT_INODE, ctx)  # still serving
    assert attr.st_ino == ROOT_INODE
    with pytest.raises(pyfuse3.FUSEError) as refused:
        trio.run(ops.open, ROOT_INODE, os.O_RDONLY, ctx)
    assert refused.value.errno == errno.EISDIR  # FUSEErrors pass as they are
