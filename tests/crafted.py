"""Repositories as an attacker holding a password would write them: through the project's
own Writer, with raw msgpack where ``save_tree`` would sort or refuse, and sealed bytes made
by hand where ``seal`` would compress honestly."""

from __future__ import annotations

import os

import msgspec
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snapfs.buffers import Buffer
from snapfs.pack import BlobKind, PackWriter, pack_key
from snapfs.repository import Repository, Writer
from snapfs.snapshot import Snapshot
from snapfs.tree import DIR, FILE, Node

ZSTD_FLAG = b"\x01"


def node(name: bytes, type: str = FILE, **fields: object) -> Node:
    values: dict[str, object] = {
        "name": name, "type": type, "mode": 0o755 if type == DIR else 0o644, "uid": 0,
        "gid": 0, "user": "", "group": "", "mtime_ns": 1_700_000_000_000_000_000,
        "ctime_ns": 1_700_000_000_000_000_000,
    }  # fmt: skip
    values.update(fields)
    return Node(**values)  # type: ignore[arg-type]


def file(w: Writer, name: bytes, data: bytes) -> Node:
    blob_id, _ = w.add_blob(BlobKind.DATA, data)
    return node(name, FILE, size=len(data), content=[blob_id])


def directory(name: bytes, subtree: bytes) -> Node:
    return node(name, DIR, subtree=subtree)


def raw_tree(w: Writer, nodes: list[Node]) -> bytes:
    """A tree blob of ``nodes`` exactly as given: unsorted, duplicated, whatever they are."""
    return w.add_blob(BlobKind.TREE, msgspec.msgpack.encode([nodes]))[0]


def snapshot(w: Writer, root: bytes, paths: list[str] | None = None) -> Snapshot:
    snap = Snapshot(
        time="2026-11-30T10:00:00+00:00", host="attacker", user="mallory",
        paths=paths or ["/"], tree=root.hex(),
    )  # fmt: skip
    return w.save_snapshot(snap)


def zeros_frame(size: int) -> bytes:
    """A zstd frame of ``size`` zero bytes that states no content size (so only a bound on
    the output stops its decompression), compressed in slices: the zeros never exist at once."""
    out = zstandard.ZstdCompressor(level=1, write_content_size=False).compressobj()
    piece, parts = bytes(1 << 24), []
    for _ in range(size // len(piece)):
        parts.append(out.compress(piece))
    parts.append(out.flush())
    return b"".join(parts)


def seal_as_is(repo: Repository, body: bytes, flag: bytes = ZSTD_FLAG) -> bytes:
    """Sealed bytes whose body is ``body`` exactly (``seal`` would compress it itself)."""
    nonce = os.urandom(12)
    return flag + nonce + AESGCM(repo.key.material[:32]).encrypt(nonce, body, flag)


def store_pack(repo: Repository, blobs: list[tuple[bytes, BlobKind, Buffer, int]]) -> str:
    """A pack and an index file naming it, of (id, kind, sealed bytes, recorded raw length)."""
    pack = PackWriter()
    for blob_id, kind, sealed, raw_length in blobs:
        pack.add(blob_id, kind, sealed, raw_length)
    pack_id, data = pack.finish(repo.key)
    repo.backend.put(pack_key(pack_id), data)
    repo.write_index([(pack_id, pack.entries)])
    repo.index.add_pack(pack_id, pack.entries)
    return pack_id


def shared_levels(w: Writer, levels: int) -> bytes:
    """A tree of ``levels`` directories, each holding ``a`` and ``b`` that name the same
    subtree: a few hundred stored bytes, 2**levels paths."""
    tree = w.save_tree([file(w, b"leaf", b"bottom\n")])
    for _ in range(levels):
        tree = w.save_tree([directory(b"a", tree), directory(b"b", tree)])
    return tree


def nested(w: Writer, depth: int, leaf: list[Node]) -> bytes:
    """``depth`` directories ``d`` inside each other, ``leaf`` at the bottom."""
    tree = w.save_tree(leaf)
    for _ in range(depth):
        tree = w.save_tree([directory(b"d", tree)])
    return tree
