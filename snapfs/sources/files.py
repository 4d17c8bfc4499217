"""File access for readers of table logs (tables/): list a directory, stat, read a file.

Paths are ``/``-joined text relative to the access's root ("" is the root itself); names
that are not UTF-8 come through as os.fsdecode gives them. A local directory serves it here;
an S3 prefix and a snapshot's trees will serve it the same way, so the table code never
knows where the files are. Every method is safe to call from several threads at once.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One entry: its name in its directory, whether it is a directory, its size and its
    modification time (ns)."""

    name: str
    is_dir: bool
    size: int
    mtime_ns: int


class Files(Protocol):
    def list(self, path: str) -> list[FileInfo]:
        """The entries of directory ``path``, in no order; [] when it does not exist.
        OSError when it exists but cannot be read."""

    def stat(self, path: str) -> FileInfo | None:
        """The entry at ``path``; None when there is none."""

    def read(self, path: str) -> bytes:
        """The whole file. FileNotFoundError when it is gone, OSError otherwise."""


class LocalFiles:
    """Files below a local directory ``root``; symlinks are not followed (a backup stores
    them as links, so a table read through one would not be the table stored)."""

    def __init__(self, root: bytes | str) -> None:
        self.root = os.fsencode(root).rstrip(b"/") or b"/"

    def _path(self, path: str) -> bytes:
        return self.root + b"/" + os.fsencode(path) if path else self.root

    def list(self, path: str) -> list[FileInfo]:
        try:
            with os.scandir(self._path(path)) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return []
        infos = []
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            infos.append(_info(os.fsdecode(entry.name), st))
        return infos

    def stat(self, path: str) -> FileInfo | None:
        try:
            st = os.lstat(self._path(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _info(os.fsdecode(os.path.basename(self._path(path))), st)

    def read(self, path: str) -> bytes:
        with open(os.open(self._path(path), os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
            return f.read()


def _info(name: str, st: os.stat_result) -> FileInfo:
    return FileInfo(name, stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime_ns)
