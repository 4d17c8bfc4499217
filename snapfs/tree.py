"""Node and Tree records and their canonical encoding.

One tree blob per directory, nodes sorted by name as bytes (so names that are not UTF-8
survive). The encoding is deterministic, so an unchanged directory encodes to the same bytes,
hence the same blob id: a re-backup writes nothing for it and a diff skips it.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from operator import attrgetter
from typing import Annotated

import msgspec

from snapfs.buffers import Data
from snapfs.errors import IntegrityError

FILE, DIR, SYMLINK, FIFO, CHAR, BLOCK, SOCKET = (
    "file", "dir", "symlink", "fifo", "char", "block", "socket",
)  # fmt: skip
TYPES = frozenset((FILE, DIR, SYMLINK, FIFO, CHAR, BLOCK, SOCKET))
MAX_TREE_ENTRIES = 4 * 1024 * 1024  # bounds the decoded tree (~300 bytes a node) at ~1.2 GB

# Checked by the decoder, in C: a number no file system holds fails the whole tree, before
# restore or the mount hands it to a system call that would raise OverflowError.
_Mode = Annotated[int, msgspec.Meta(ge=0, le=0o7777)]
_U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
_U64 = Annotated[int, msgspec.Meta(ge=0)]  # msgspec bounds only int64: rdev is checked below
_I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Size = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_BlobId = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class Node(msgspec.Struct, array_like=True, frozen=True, omit_defaults=True):
    """One directory entry. Access times are not kept: reading a file changes its atime, and
    a tree must stay byte-identical while its files are unchanged."""

    name: bytes
    type: str
    mode: _Mode
    uid: _U32
    gid: _U32
    user: str
    group: str
    mtime_ns: _I64
    ctime_ns: _I64
    size: _Size = 0
    inode: _U64 = 0
    device: _U64 = 0
    links: _U32 = 1
    rdev: _U64 = 0
    target: bytes = b""
    xattrs: list[tuple[bytes, bytes]] = []
    content: list[_BlobId] = []
    subtree: _BlobId | None = None

    @property
    def display_name(self) -> str:
        return self.name.decode("utf-8", "surrogateescape")


class TreeProblem(msgspec.Struct, frozen=True):
    """An entry ``validate`` refused (``name``), or the whole directory (``name`` None)."""

    name: bytes | None
    message: str


class _Stored(msgspec.Struct, array_like=True, frozen=True):
    """A tree blob as stored: the canonical encoding is this, never ``Tree``."""

    nodes: list[Node]


class Tree(msgspec.Struct, frozen=True):
    """A directory as read: the entries that passed ``validate``, and what it refused."""

    nodes: list[Node]
    problems: tuple[TreeProblem, ...] = ()

    def index_of(self, name: bytes) -> int:
        """Where the entry called ``name`` stands in ``nodes`` (sorted), or -1."""
        at = bisect.bisect_left(self.nodes, name, key=_NAME)
        return at if at < len(self.nodes) and self.nodes[at].name == name else -1

    def find(self, name: bytes) -> Node | None:
        at = self.index_of(name)
        return None if at < 0 else self.nodes[at]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Stored)


def encode_tree(nodes: list[Node]) -> bytes:
    return _encoder.encode(_Stored(sorted(nodes, key=lambda n: n.name)))


def decode_tree(data: Data) -> Tree:
    """The tree's entries, as stored: unchecked (``validate`` judges them). IntegrityError
    when the bytes are no tree, or hold more entries than MAX_TREE_ENTRIES."""
    if _entry_count(data) > MAX_TREE_ENTRIES:
        raise IntegrityError(f"tree of more than {MAX_TREE_ENTRIES} entries")
    try:
        return Tree(_decoder.decode(data).nodes)
    except msgspec.MsgspecError as e:
        raise IntegrityError(f"not a valid tree ({e})") from None


def _entry_count(data: Data) -> int:
    """The count in the msgpack array header of the node list (``[[node, ...]]``), read
    before decoding: a few KiB of identical tiny nodes must not become millions of objects."""
    head = bytes(memoryview(data)[:6])
    if len(head) < 2 or head[0] != 0x91:
        return 0  # not this shape: the decoder says what is wrong
    kind = head[1]
    if 0x90 <= kind <= 0x9F:
        return kind & 0x0F
    if kind == 0xDC and len(head) >= 4:
        return int.from_bytes(head[2:4], "big")
    if kind == 0xDD and len(head) >= 6:
        return int.from_bytes(head[2:6], "big")
    return 0


_BAD_NAMES = frozenset((b"", b".", b".."))
NAME_MAX = 255  # bytes in a name: Linux file systems hold no longer one (open: ENAMETOOLONG)


def validate(tree: Tree) -> Tree:
    """``tree`` without the entries no file system could hold, with a TreeProblem for each:
    a name that is empty, ``.``, ``..``, holds ``/`` or NUL or is longer than NAME_MAX
    bytes; a name met twice (the first stays); an unknown type; a directory without a
    subtree, or a subtree on anything else; a symlink target or xattr name holding NUL.
    Entries out of name order are put in order (``Tree.find`` searches by bisection) and
    the directory is named as damaged. Pure, and one pass in C over the common case: a
    backup reads every tree of its parent."""
    return tree if _plain(tree.nodes) else _slow_validate(tree)


def _plain(nodes: list[Node]) -> bool:
    """Whether every entry passes, each test one call in C over all of them (a Python loop
    over the nodes cost as much as decoding them)."""
    names = list(map(_NAME, nodes))
    joined = b"\0".join(names)
    types = list(map(_TYPE, nodes))
    unique = set(names)
    return (
        joined.count(0) == max(len(names) - 1, 0)  # no NUL inside a name
        and b"/" not in joined
        and not _BAD_NAMES & unique
        and max(map(len, names), default=0) <= NAME_MAX
        and len(unique) == len(names)
        and names == sorted(names)  # no two alike (above), so strictly increasing
        and set(types) <= TYPES
        and list(map(DIR.__eq__, types)) == list(map(operator.is_not, map(_SUBTREE, nodes), _NONES))
        and 0 not in b"".join(map(_TARGET, nodes))
        and max(map(_RDEV, nodes), default=0) < 2**64
        and all(map(_xattrs_ok, filter(None, map(_XATTRS, nodes))))
    )


_NAME, _TYPE, _SUBTREE = attrgetter("name"), attrgetter("type"), attrgetter("subtree")
_TARGET, _RDEV, _XATTRS = attrgetter("target"), attrgetter("rdev"), attrgetter("xattrs")
_NONES = itertools.repeat(None)


def _xattrs_ok(xattrs: list[tuple[bytes, bytes]]) -> bool:
    return all(name and 0 not in name for name, _v in xattrs)


def _shape_ok(node: Node) -> bool:
    if (node.type == DIR) != (node.subtree is not None):
        return False
    if node.type == SYMLINK and 0 in node.target:
        return False
    if node.rdev >= 2**64:
        return False
    return _xattrs_ok(node.xattrs)


def name_problem(name: bytes) -> str:
    """Why ``name`` cannot be a directory entry (empty, ``.``, ``..``, holding ``/`` or
    NUL: it could lead out of its directory; longer than NAME_MAX), or "" when it can."""
    if name in _BAD_NAMES or b"/" in name or 0 in name or len(name) > NAME_MAX:
        return "a name no file system allows"
    return ""


def _entry_problem(node: Node) -> str:
    if why := name_problem(node.name):
        return why
    if node.type not in TYPES:
        return f"an unknown type {node.type!r}"
    if node.type == DIR and node.subtree is None:
        return "a directory without a subtree"
    if node.type != DIR and node.subtree is not None:
        return f"a {node.type} with a subtree"
    if not _shape_ok(node):
        return "a symlink target or xattr name holding NUL, or a device number past 64 bits"
    return ""


def _slow_validate(tree: Tree) -> Tree:
    problems = list(tree.problems)
    names = [n.name for n in tree.nodes]
    nodes = tree.nodes
    if names != sorted(names):
        problems.append(TreeProblem(None, "entries out of name order"))
        nodes = sorted(nodes, key=lambda n: n.name)
    kept: list[Node] = []
    for node in nodes:
        why = _entry_problem(node)
        if not why and kept and kept[-1].name == node.name:
            why = "a name that appears twice"
        if why:
            problems.append(TreeProblem(node.name, why))
        else:
            kept.append(node)
    return Tree(kept, tuple(problems))
