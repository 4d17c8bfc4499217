"""tables.delta on hand-made logs in memory: which version is pinned, which files make it."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from snapfs.errors import TableUnreadable
from snapfs.sources.files import FileInfo
from snapfs.tables import find_tables
from snapfs.tables.delta import pin

DV = {"storageType": "u", "pathOrInlineDv": "ab^-aqEH.-t@S}K{vb[*k^", "sizeInBytes": 40,
      "cardinality": 2}  # fmt: skip
DV_FILE = "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"  # the protocol's example


class MemoryFiles:
    """Files over a dict of path -> bytes; directories are implied by the paths."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def list(self, path: str) -> list[FileInfo]:
        prefix = f"{path}/" if path else ""
        seen: dict[str, FileInfo] = {}
        for key, data in self.files.items():
            if key.startswith(prefix):
                name, _, rest = key[len(prefix) :].partition("/")
                seen[name] = FileInfo(name, bool(rest), len(data), 0)
        return list(seen.values())

    def stat(self, path: str) -> FileInfo | None:
        return None

    def read(self, path: str) -> bytes:
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(path) from None


def commit(*actions: dict[str, object]) -> bytes:
    return b"".join(json.dumps(a).encode() + b"\n" for a in actions)


def add(path: str, size: int = 10, dv: dict[str, object] | None = None) -> dict[str, object]:
    return {"add": {"path": path, "size": size, "dataChange": True, "deletionVector": dv}}


def remove(path: str) -> dict[str, object]:
    return {"remove": {"path": path, "dataChange": True}}


def log(version: int, suffix: str = "json") -> str:
    return f"t/_delta_log/{version:020d}.{suffix}"


def checkpoint(*paths: str) -> bytes:
    dv_type = pa.struct([("storageType", pa.string()), ("pathOrInlineDv", pa.string())])
    adds = pa.array(
        [{"path": p, "size": 10, "deletionVector": None} for p in paths] + [None],
        pa.struct([("path", pa.string()), ("size", pa.int64()), ("deletionVector", dv_type)]),
    )
    removes = pa.array([None] * len(paths) + [{"path": "gone.parquet"}],
                       pa.struct([("path", pa.string())]))  # fmt: skip
    out = io.BytesIO()
    pq.write_table(pa.table({"add": adds, "remove": removes}), out)
    return out.getvalue()


def test_replay_gives_the_live_files_their_vectors_and_the_history() -> None:
    files = MemoryFiles({
        log(0): commit({"protocol": {}}, add("p=1/a%20b.parquet"), add("b.parquet")),
        log(1): commit(remove("b.parquet"), add("c.parquet", 5, DV)),
        log(2): commit(add("d.parquet"), add("s3://elsewhere/x.parquet"), add("../up.parquet")),
        log(3): commit(add("e.parquet")),
        "t/p=1/a b.parquet": b"", "t/c.parquet": b"", "t/d.parquet": b"", "t/b.parquet": b"",
    })  # fmt: skip
    files.files.pop(log(3))  # not committed: 4 is never looked at either
    pinned = pin(files, "t")
    assert pinned.version == 2
    assert pinned.checkpoint is None
    assert pinned.live == {"p=1/a b.parquet", "c.parquet", DV_FILE, "d.parquet",
                           "_delta_log/" + log(0)[13:], "_delta_log/" + log(1)[13:],
                           "_delta_log/" + log(2)[13:]}  # fmt: skip
    assert pinned.history == {"b.parquet"}
    assert (pinned.files, pinned.bytes) == (3, 10 + 5 + 10)


def test_the_newest_complete_checkpoint_starts_and_a_gap_ends_the_log() -> None:
    files = MemoryFiles({
        log(3, "checkpoint.parquet"): checkpoint("a.parquet", "b.parquet"),
        log(5, "checkpoint.0000000001.0000000002.parquet"): checkpoint("x.parquet"),  # a part
        log(2): commit(add("old.parquet")),  # before the checkpoint: history only
        log(3): commit(add("b.parquet")),
        log(4): commit(remove("a.parquet")),
        log(5): commit(add("c.parquet")),
        log(7): commit(add("after-a-gap.parquet")),
        "t/_delta_log/_last_checkpoint": b'{"version": 3, "size": 3}',
    })  # fmt: skip
    pinned = pin(files, "t")
    assert (pinned.version, pinned.checkpoint) == (5, 3)
    assert {p for p in pinned.live if p.endswith(".parquet") and "/" not in p} == {
        "b.parquet", "c.parquet"}  # fmt: skip
    assert pinned.history == {"a.parquet", "gone.parquet", "old.parquet"}
    assert pinned.last_checkpoint == b'{"version": 3, "size": 3}'
    kept = {p.rsplit("/", 1)[1] for p in pinned.log}
    assert kept == {f"{v:020d}.json" for v in (2, 3, 4, 5)} | {f"{3:020d}.checkpoint.parquet"}


def test_a_hint_naming_a_checkpoint_not_there_is_not_kept_and_a_torn_one_is_passed() -> None:
    files = MemoryFiles({
        log(0): commit(add("a.parquet")),
        log(1): commit(add("b.parquet")),
        log(1, "checkpoint.parquet"): b"PAR1 torn",
        "t/_delta_log/_last_checkpoint": b'{"version": 9, "size": 1}',
    })  # fmt: skip
    pinned = pin(files, "t")
    assert (pinned.version, pinned.checkpoint, pinned.last_checkpoint) == (1, None, None)
    assert {"a.parquet", "b.parquet"} <= pinned.live


def test_a_log_without_version_0_or_a_checkpoint_cannot_be_pinned() -> None:
    files = MemoryFiles({log(4): commit(add("a.parquet"))})
    message = r"^t: the Delta log has no version 0 and no checkpoint$"
    with pytest.raises(TableUnreadable, match=message):
        pin(files, "t")


def test_tables_are_found_below_a_path_and_not_inside_a_table() -> None:
    files = MemoryFiles({
        "lake/x/_delta_log/" + log(0)[13:]: b"", "lake/x/inner/_delta_log/a": b"",
        "lake/y/z/_delta_log/b": b"", "lake/plain/file": b"",
    })  # fmt: skip
    assert list(find_tables(files, "lake")) == [("lake/x", "delta"), ("lake/y/z", "delta")]
