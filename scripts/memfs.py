"""The ceiling of a Python FUSE filesystem on this machine: one file served from memory by a
bare pyfuse3 filesystem, with the same kernel settings as a snapfs mount (1 MiB read-ahead).

    python scripts/memfs.py MOUNTPOINT SIZE_MB     # serves MOUNTPOINT/data until unmounted
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pyfuse3
import trio

_FILE_INODE = pyfuse3.ROOT_INODE + 1
_NAME = b"data"


class MemoryFile(pyfuse3.Operations):
    def __init__(self, size: int) -> None:
        super().__init__()
        block = os.urandom(1 << 20)
        self.data = block * (size >> 20)

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        if inode == pyfuse3.ROOT_INODE:
            attr.st_mode, attr.st_size = stat.S_IFDIR | 0o555, 0
        else:
            attr.st_mode, attr.st_size = stat.S_IFREG | 0o444, len(self.data)
        attr.entry_timeout = attr.attr_timeout = 3600
        return attr

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        if name != _NAME:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return await self.getattr(_FILE_INODE, ctx)

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        if start_id == 0:
            attr = await self.getattr(_FILE_INODE, None)  # type: ignore[arg-type]
            pyfuse3.readdir_reply(token, _NAME, attr, 1)

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return self.data[off : off + size]


async def _raise_read_ahead(mountpoint: str) -> None:
    """As snapfs does: set after the kernel has handled INIT, which lowers it."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        devices = [line.split()[2] for line in f if line.split()[4] == mountpoint]
    for _ in range(5):
        await trio.sleep(0.05)
        for device in devices:
            try:
                Path(f"/sys/class/bdi/{device}/read_ahead_kb").write_text("1024\n")
            except OSError:
                return


async def _serve(mountpoint: str) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_raise_read_ahead, mountpoint)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def main() -> None:
    mountpoint, size_mb = os.path.realpath(sys.argv[1]), int(sys.argv[2])
    ops = MemoryFile(size_mb << 20)
    pyfuse3.init(ops, mountpoint, set(pyfuse3.default_options) | {"fsname=memfs", "ro"})
    try:
        trio.run(_serve, mountpoint)
    finally:
        pyfuse3.close(unmount=False)


if __name__ == "__main__":
    main()
