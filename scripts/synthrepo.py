"""A repository whose index names N data blobs, for measuring opening and lookups at scale.

    SNAPFS_PASSWORD=... .venv/bin/python scripts/synthrepo.py REPO --blobs 10000000

Writes a valid local repository (config, key, sealed index files in the v1 layout) whose index
files name N random data blobs in packs of 250, in files of --per-file blobs. The packs are
not written: `snapfs check` says they are missing, every command that only looks blobs up
(backup's dedup, stats) works. The index files' msgpack is laid out with numpy from a
template (fixed-width integers, which every msgpack reader accepts), so 100 million blobs
take minutes, not hours.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from snapfs.crypto import MasterKey, content_id
from snapfs.index import decode_index_file
from snapfs.pack import BlobKind
from snapfs.repository import BLOBS_PER_INDEX_FILE, Repository
from snapfs.store.local import LocalBackend

BLOBS_PER_PACK = 250
_ENTRY = 51  # 95 | c4 20 id(32) | kind 00 | ce offset | ce length | ce raw length
_PACK_HEAD = 70  # 92 | d9 40 pack id (64 hex) | dc count(2)


def _pack_template() -> np.ndarray:
    """One pack's msgpack with zero ids: 250 blobs of 65,536 raw bytes back to back."""
    head = b"\x92\xd9\x40" + b"0" * 64 + b"\xdc" + BLOBS_PER_PACK.to_bytes(2, "big")
    entries = b"".join(
        b"\x95\xc4\x20" + bytes(32) + b"\x00"
        + b"\xce" + (i * 65_600).to_bytes(4, "big")
        + b"\xce" + (65_600).to_bytes(4, "big")
        + b"\xce" + (65_536).to_bytes(4, "big")
        for i in range(BLOBS_PER_PACK)
    )  # fmt: skip
    return np.frombuffer(head + entries, np.uint8)


def index_file(packs: int, template: np.ndarray) -> bytes:
    """The plaintext of one index file naming ``packs`` packs of random blobs."""
    body = np.tile(template, (packs, 1))
    pack_ids = np.frombuffer(os.urandom(32 * packs).hex().encode(), np.uint8)
    body[:, 3:67] = pack_ids.reshape(packs, 64)
    ids = np.frombuffer(os.urandom(32 * packs * BLOBS_PER_PACK), np.uint8)
    entries = body[:, _PACK_HEAD:].reshape(packs, BLOBS_PER_PACK, _ENTRY)
    entries[:, :, 3:35] = ids.reshape(packs, BLOBS_PER_PACK, 32)
    return b"\xdd" + packs.to_bytes(4, "big") + body.tobytes()


def check_layout(plain: bytes, packs: int) -> None:
    """The repository's own decoder must read the hand-laid msgpack as meant: ``packs``
    packs of BLOBS_PER_PACK data blobs at 65,600-byte steps (run on the first file, so a
    drift of the template stops the script instead of making a repository that lies)."""
    listing = decode_index_file(plain)
    ok = len(listing) == packs and all(
        len(pack_id) == 64 and [tuple(e)[1:] for e in entries] == _EXPECTED
        for pack_id, entries in listing
    )
    if not ok:
        sys.exit("synthrepo: the index file layout does not decode as intended")


_EXPECTED = [(BlobKind.DATA, i * 65_600, 65_600, 65_536) for i in range(BLOBS_PER_PACK)]


def write(repo: Repository, key: MasterKey, blobs: int, per_file: int) -> int:
    template = _pack_template()
    packs = -(-blobs // BLOBS_PER_PACK)
    per_file_packs = max(1, per_file // BLOBS_PER_PACK)
    files = 0
    while packs > 0:
        n = min(per_file_packs, packs)
        plain = index_file(n, template)
        if files == 0:
            check_layout(plain, n)
        sealed = key.seal(plain)
        repo.backend.put(f"index/{content_id(sealed)}", sealed)
        packs -= n
        files += 1
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--blobs", type=int, required=True)
    parser.add_argument(
        "--per-file", type=int, default=BLOBS_PER_INDEX_FILE,
        help="blobs an index file names (backups write ~16,000; prune up to 262,144)",
    )  # fmt: skip
    args = parser.parse_args()
    password = os.environ.get("SNAPFS_PASSWORD")
    if not password:
        sys.exit("synthrepo: set SNAPFS_PASSWORD")
    started = time.perf_counter()
    with Repository.init(LocalBackend(str(args.repo)), password) as repo:
        files = write(repo, repo.key, args.blobs, args.per_file)
    seconds = time.perf_counter() - started
    print(f"{args.repo}: {files} index files, {args.blobs} blobs, {seconds:.1f} s")


if __name__ == "__main__":
    main()
