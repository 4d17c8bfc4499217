"""Node and Tree records and their canonical encoding.

One tree blob per directory, nodes sorted by name as bytes (so names that are not UTF-8
survive). The encoding is deterministic, so an unchanged directory encodes to the same bytes,
hence the same blob id: a re-backup writes nothing for it and a diff skips it.
"""

from __future__ import annotations

import msgspec

from snapfs.buffers import Data

FILE, DIR, SYMLINK, FIFO, CHAR, BLOCK, SOCKET = (
    "file", "dir", "symlink", "fifo", "char", "block", "socket",
)  # fmt: skip


class Node(msgspec.Struct, array_like=True, frozen=True, omit_defaults=True):
    """One directory entry. Access times are not kept: reading a file changes its atime, and
    a tree must stay byte-identical while its files are unchanged."""

    name: bytes
    type: str
    mode: int
    uid: int
    gid: int
    user: str
    group: str
    mtime_ns: int
    ctime_ns: int
    size: int = 0
    inode: int = 0
    device: int = 0
    links: int = 1
    rdev: int = 0
    target: bytes = b""
    xattrs: list[tuple[bytes, bytes]] = []
    content: list[bytes] = []
    subtree: bytes | None = None

    @property
    def display_name(self) -> str:
        return self.name.decode("utf-8", "surrogateescape")


class Tree(msgspec.Struct, array_like=True, frozen=True):
    nodes: list[Node]

    def find(self, name: bytes) -> Node | None:
        lo, hi = 0, len(self.nodes)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.nodes[mid].name < name:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.nodes) and self.nodes[lo].name == name:
            return self.nodes[lo]
        return None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Tree)


def encode_tree(nodes: list[Node]) -> bytes:
    return _encoder.encode(Tree(sorted(nodes, key=lambda n: n.name)))


def decode_tree(data: Data) -> Tree:
    return _decoder.decode(data)
