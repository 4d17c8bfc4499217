"""Delta Lake tables: which directories are tables, which version to pin, which files make it.

A Delta table is a directory holding ``_delta_log/``: commits ``N.json`` (one action a line),
checkpoints ``N.checkpoint.parquet`` (or ``N.checkpoint.K.M.parquet``, M parts) folding the
actions up to N, and ``_last_checkpoint`` naming the newest checkpoint as a hint. ``pin``
chooses the newest committed version: the newest complete checkpoint that reads (falling
back to older ones, then to version 0), then every ``N.json`` contiguous after it. When the
log still holds every commit from 0 to there, they are all replayed and no checkpoint is
read (the same state, one kind of file, no pyarrow). Replaying gives the files version N
reads (``live``: data files and their deletion vectors, and the log a reader opens: the
newest checkpoint, the commits after it); the commits before it that are still in the log, and the
checkpoint's tombstones, give the files older versions read (``history``), so time travel
inside a snapshot works as far as the log and VACUUM allow. Paths in actions are relative
URIs (percent-encoded); absolute ones (shallow clones) lie outside the table's directory
and are not part of its file set.

Everything here reads through ``Files`` and holds no state: the same pin is computed from a
local directory, an S3 prefix or a snapshot's tree. Memory: the file set of one table (its
paths), and one commit or checkpoint at a time.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from snapfs.errors import TableUnreadable
from snapfs.sources.files import FileInfo, Files
from snapfs.tables.base import Pin
from snapfs.tables.base import join as _join

DELTA_LOG = "_delta_log"
LAST_CHECKPOINT = "_last_checkpoint"
LAST_CHECKPOINT_PATH = f"{DELTA_LOG}/{LAST_CHECKPOINT}"

_COMMIT = re.compile(r"(\d{20})\.json")
_CRC = re.compile(r"(\d{20})\.crc")
_CHECKPOINT = re.compile(r"(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet")
_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_VALUE = {c: i for i, c in enumerate(_Z85)}


@dataclass(frozen=True, kw_only=True)
class DeltaPin(Pin):
    """A Delta table pinned at log ``version``. ``log``: the ``_delta_log/`` entries of
    versions up to it (commits, the complete checkpoints, checksums), as listed at the pin.
    ``checkpoint``: the checkpoint the replay started from (None: from version 0).
    ``last_checkpoint``: ``_last_checkpoint``'s bytes as read at the pin when they name a
    checkpoint in ``log``, else None (a reader then lists the log, as it must anyway); kept
    as ``fixed``. ``live``: its data files and deletion vectors, the checkpoint and commits
    of the log it is read from. ``commit_time_ns``: N.json's modification time, which
    Delta's TIMESTAMP AS OF reads."""

    checkpoint: int | None
    last_checkpoint: bytes | None


def pin(files: Files, table: str, *, history: bool = True) -> DeltaPin:
    """The newest committed version of the table at ``table`` and its file set (with
    ``history``, the files of older versions still in the log too). TableUnreadable when
    no version can be pinned: no checkpoint reads and the log does not start at 0, or a
    commit after the start does not parse."""
    log_dir = _join(table, DELTA_LOG)
    listing = {e.name: e for e in files.list(log_dir) if not e.is_dir}
    commits = _versions(listing, _COMMIT)
    checkpoints = _checkpoints(listing)
    hint = _read_hint(files, log_dir) if LAST_CHECKPOINT in listing else None
    if history and _whole_log(commits, checkpoints):
        # Every commit is read for history anyway: replaying them all from 0 gives the
        # checkpoint's state without opening it (nor loading pyarrow).
        state, start = _Replay(), None
    else:
        state, start = _start(files, log_dir, checkpoints, commits)
    version = start if start is not None else -1
    while version + 1 in commits:
        version += 1
        state.commit(_read_actions(files, log_dir, commits[version].name))
    if version < 0:
        where = f"{table}: " if table else ""
        raise TableUnreadable(f"{where}the Delta log has no version 0 and no checkpoint")
    if history:
        for old in sorted(v for v in commits if start is not None and v <= start):
            state.past(_read_actions(files, log_dir, commits[old].name, strict=False))
    kept = _kept_log(listing, commits, checkpoints, version)
    when = commits[version] if version in commits else listing[checkpoints[version][0]]
    # What a reader of version N opens in the log: the newest checkpoint, the commits after.
    if start is None:
        start_read = max((v for v in checkpoints if v <= version), default=None)
    else:
        start_read = start
    first = start_read + 1 if start_read is not None else 0
    read_log = list(checkpoints[start_read]) if start_read is not None else []
    read_log += [commits[v].name for v in range(first, version + 1)]
    live = state.live_files().union(_join(DELTA_LOG, name) for name in read_log)
    last = hint[1] if hint is not None and hint[0] in checkpoints and hint[0] <= version else None
    return DeltaPin(
        format="delta",
        path=table,
        version=version,
        commit_time_ns=when.mtime_ns,
        checkpoint=start,
        log=frozenset(_join(DELTA_LOG, name) for name in kept),
        last_checkpoint=last,
        fixed={LAST_CHECKPOINT_PATH: last} if last is not None else {},
        live=live,
        history=frozenset(state.history - live) if history else frozenset(),
        files=len(state.live),
        bytes=sum(size for size, _dv in state.live.values()),
    )


class _Replay:
    """The fold of add and remove actions: live data files (path -> size, deletion vector
    file), and the files older versions read."""

    def __init__(self) -> None:
        self.live: dict[str, tuple[int, str | None]] = {}
        self.history: set[str] = set()

    def commit(self, actions: list[dict[str, Any]]) -> None:
        for action in actions:
            if (add := action.get("add")) is not None:
                path = _relative(add.get("path"))
                if path is not None:
                    old = self.live.get(path)
                    if old is not None and old[1] is not None:
                        self.history.add(old[1])  # the vector the previous version read
                    self.live[path] = (int(add.get("size") or 0), _dv_file(add))
            elif (remove := action.get("remove")) is not None:
                path = _relative(remove.get("path"))
                if path is not None:
                    gone = self.live.pop(path, None)
                    self.history.add(path)
                    for dv in (gone[1] if gone else None, _dv_file(remove)):
                        if dv is not None:
                            self.history.add(dv)
            elif (cdc := action.get("cdc")) is not None:
                path = _relative(cdc.get("path"))
                if path is not None:
                    self.history.add(path)

    def past(self, actions: list[dict[str, Any]]) -> None:
        """A commit before the start: every file it names was read by some older version."""
        for action in actions:
            for kind in ("add", "remove", "cdc"):
                if (item := action.get(kind)) is not None:
                    for path in (_relative(item.get("path")), _dv_file(item)):
                        if path is not None:
                            self.history.add(path)

    def live_files(self) -> frozenset[str]:
        dvs = (dv for _size, dv in self.live.values() if dv is not None)
        return frozenset(self.live).union(dvs)


def _whole_log(commits: dict[int, FileInfo], checkpoints: dict[int, list[str]]) -> bool:
    """Whether every commit from 0 to the end of the log after the newest checkpoint is
    there (no log cleanup yet), so the version can be replayed from 0."""
    end = max(checkpoints, default=-1)
    while end + 1 in commits:
        end += 1
    return end >= 0 and all(v in commits for v in range(end + 1))


def _start(
    files: Files, log_dir: str, checkpoints: dict[int, list[str]], commits: dict[int, FileInfo]
) -> tuple[_Replay, int | None]:
    """The replay's start: the newest complete checkpoint that reads (newer ones than
    ``_last_checkpoint`` names count: it is only a hint), else an empty table before 0."""
    for version in sorted(checkpoints, reverse=True):
        state = _Replay()
        try:
            for name in checkpoints[version]:
                state.commit(_checkpoint_actions(files.read(_join(log_dir, name))))
        except FileNotFoundError:
            continue  # removed by log cleanup since the listing
        except Exception:  # pyarrow's errors for a torn or foreign file: try an older one
            continue
        return state, version
    return _Replay(), None


def _checkpoint_actions(data: bytes) -> list[dict[str, Any]]:
    """The add and remove actions of a checkpoint part, as commits spell them."""
    import pyarrow.parquet as pq  # loaded only when a table has a checkpoint

    schema = pq.read_schema(io.BytesIO(data))
    wanted = [kind for kind in ("add", "remove") if kind in schema.names]
    table = pq.read_table(io.BytesIO(data), columns=wanted)
    actions: list[dict[str, Any]] = []
    for kind in wanted:
        column = table.column(kind).combine_chunks()
        present = column.filter(column.is_valid())
        names = {present.type.field(i).name for i in range(present.type.num_fields)}
        paths = present.field("path").to_pylist()
        sizes = present.field("size").to_pylist() if "size" in names else [0] * len(paths)
        dvs = (
            present.field("deletionVector").to_pylist()
            if "deletionVector" in names
            else [None] * len(paths)
        )
        for path, size, dv in zip(paths, sizes, dvs, strict=True):
            actions.append({kind: {"path": path, "size": size, "deletionVector": dv}})
    return actions


def _read_actions(files: Files, log_dir: str, name: str, *, strict: bool = True) -> list[Any]:
    """A commit's actions. A commit that does not parse: TableUnreadable (``strict``), or
    none (an old commit only feeds history)."""
    try:
        data = files.read(_join(log_dir, name))
        return [json.loads(line) for line in data.splitlines() if line.strip()]
    except FileNotFoundError:
        if strict:
            raise TableUnreadable(f"{log_dir}/{name}: removed while the log was read") from None
        return []
    except ValueError as e:
        if strict:
            raise TableUnreadable(f"{log_dir}/{name}: not a Delta commit: {e}") from None
        return []


def _read_hint(files: Files, log_dir: str) -> tuple[int, bytes] | None:
    """``_last_checkpoint``: the version it names and its bytes; None if unreadable."""
    try:
        data = files.read(_join(log_dir, LAST_CHECKPOINT))
        return int(json.loads(data)["version"]), data
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _versions(listing: dict[str, FileInfo], pattern: re.Pattern[str]) -> dict[int, FileInfo]:
    found = {}
    for name, info in listing.items():
        if (m := pattern.fullmatch(name)) is not None:
            found[int(m.group(1))] = info
    return found


def _checkpoints(listing: dict[str, FileInfo]) -> dict[int, list[str]]:
    """Complete checkpoints: version -> its part names in order (a multi-part checkpoint
    missing a part is still being written, or half removed: not one)."""
    parts: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for name in listing:
        if (m := _CHECKPOINT.fullmatch(name)) is not None:
            version, part, count = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
            parts.setdefault((version, count), []).append((part, name))
    complete: dict[int, list[str]] = {}
    for (version, count), found in sorted(parts.items()):
        if sorted(p for p, _n in found) == list(range(1, count + 1)):
            complete[version] = [n for _p, n in sorted(found)]
    return complete


def _kept_log(
    listing: dict[str, FileInfo],
    commits: dict[int, FileInfo],
    checkpoints: dict[int, list[str]],
    version: int,
) -> list[str]:
    """The log entries of versions up to ``version``: what a reader of any of them opens."""
    kept = [info.name for v, info in commits.items() if v <= version]
    kept += [name for v, names in checkpoints.items() if v <= version for name in names]
    kept += [info.name for v, info in _versions(listing, _CRC).items() if v <= version]
    return kept


def _relative(path: object) -> str | None:
    """An action's path as a path inside the table; None when it lies outside (an
    absolute URI, or one climbing out with ``..``)."""
    if not isinstance(path, str) or not path or "://" in path or path.startswith("/"):
        return None
    if "%" in path:
        from urllib.parse import unquote  # 9 ms to import: only for paths that need it

        path = unquote(path)
    decoded = posixpath.normpath(path)
    if decoded.startswith("../") or decoded in ("..", "."):
        return None
    return decoded


def _dv_file(action: dict[str, Any]) -> str | None:
    """The file of an action's deletion vector: storage type "u" is a prefix and a Z85
    UUID relative to the table; "p" a path; "i" is inline (no file)."""
    dv = action.get("deletionVector")
    if not isinstance(dv, dict):
        return None
    kind, where = dv.get("storageType"), dv.get("pathOrInlineDv")
    if not isinstance(where, str):
        return None
    if kind == "p":
        return _relative(where)
    if kind != "u" or len(where) < 20:
        return None
    prefix, encoded = where[:-20], where[-20:]
    import uuid  # 7 ms to import: only for a table with deletion vectors

    try:
        name = f"deletion_vector_{uuid.UUID(bytes=_z85_decode(encoded))}.bin"
    except (KeyError, ValueError):
        return None
    return _join(prefix, name)


def _z85_decode(text: str) -> bytes:
    """ZeroMQ's Z85 (base64.z85decode from Python 3.13): 5 characters, 4 bytes."""
    if len(text) % 5:
        raise ValueError("Z85 text must be a multiple of 5 characters")
    out = bytearray()
    for at in range(0, len(text), 5):
        value = 0
        for char in text[at : at + 5]:
            value = value * 85 + _Z85_VALUE[char]
        out += value.to_bytes(4, "big")
    return bytes(out)
