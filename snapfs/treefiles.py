"""Files (sources.files) over a snapshot's trees: the table code reads a stored table
through it as it reads a local directory (the mount's moved Iceberg metadata, restore)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol

from snapfs.buffers import Data
from snapfs.errors import PathNotFound
from snapfs.sources.files import FileInfo
from snapfs.tree import DIR, FILE, Node, Tree
from snapfs.walk import resolve


class TreeReader(Protocol):
    def load_tree(self, tree_id: bytes) -> Tree: ...
    def read_blob_group(self, ids: Iterable[bytes]) -> dict[bytes, Data]: ...


class TreeFiles:
    """The files below the directory whose tree is ``tree_id``. Thread-safe as the
    repository's reads are."""

    def __init__(self, repo: TreeReader, tree_id: bytes) -> None:
        self._repo = repo
        self._tree = tree_id

    def _node(self, path: str) -> Node | None:
        try:
            return resolve(self._repo, self._tree, path) if path else None
        except PathNotFound:
            return None

    def list(self, path: str) -> list[FileInfo]:
        node = self._node(path)
        subtree = self._tree if not path else node.subtree if node is not None else None
        if subtree is None:
            return []
        return [_info(n) for n in self._repo.load_tree(subtree).nodes]

    def stat(self, path: str) -> FileInfo | None:
        node = self._node(path)
        return None if node is None else _info(node)

    def read(self, path: str) -> bytes:
        node = self._node(path)
        if node is None or node.type != FILE:
            raise FileNotFoundError(path)
        return read_node(self._repo, node)


def read_node(repo: TreeReader, node: Node) -> bytes:
    """A file node's whole contents."""
    chunks = repo.read_blob_group(node.content)
    return b"".join(chunks[blob_id] for blob_id in node.content)


def _info(node: Node) -> FileInfo:
    return FileInfo(os.fsdecode(node.name), node.type == DIR, node.size, node.mtime_ns)
