"""File metadata to and from Nodes: lstat, owner names, xattrs; restored in the right order."""

from __future__ import annotations

import errno
import functools
import grp
import os
import pwd
import stat
from typing import Any

from snapfs.tree import BLOCK, CHAR, DIR, FIFO, FILE, SOCKET, SYMLINK, Node

_TYPES = {
    stat.S_IFREG: FILE,
    stat.S_IFDIR: DIR,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFIFO: FIFO,
    stat.S_IFCHR: CHAR,
    stat.S_IFBLK: BLOCK,
    stat.S_IFSOCK: SOCKET,
}
_MODE_BITS = {FILE: stat.S_IFREG, DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK, FIFO: stat.S_IFIFO,
              CHAR: stat.S_IFCHR, BLOCK: stat.S_IFBLK, SOCKET: stat.S_IFSOCK}  # fmt: skip


@functools.lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def full_mode(node: Node) -> int:
    """st_mode as the kernel reports it: type bits and permission bits."""
    return _MODE_BITS[node.type] | node.mode


def read_xattrs(entry: bytes | int) -> list[tuple[bytes, bytes]]:
    """The extended attributes of ``entry``: a path (never followed) or an open descriptor
    (a backup's, which spares the kernel a second walk of the path)."""
    where: dict[str, bool] = {} if isinstance(entry, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(entry, **where)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        try:
            out.append((name.encode(), os.getxattr(entry, name, **where)))
        except OSError:
            continue
    return out


def node_from_stat(
    name: bytes,
    path: bytes,
    st: os.stat_result,
    *,
    content: list[bytes] | None = None,
    size: int | None = None,
    target: bytes = b"",
    subtree: bytes | None = None,
    xattrs: list[tuple[bytes, bytes]] | None = None,
) -> Node:
    """A node for ``path`` as ``st`` describes it, with its contents, link target or
    subtree, and ``xattrs`` (else read from ``path``). Built in one call: the node of every
    file of a backup passes through here."""
    kind = _TYPES.get(stat.S_IFMT(st.st_mode), FILE)
    return Node(
        name,
        kind,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        user_name(st.st_uid),
        group_name(st.st_gid),
        st.st_mtime_ns,
        st.st_ctime_ns,
        (st.st_size if size is None else size) if kind == FILE else 0,
        st.st_ino,
        st.st_dev,
        st.st_nlink,
        st.st_rdev if kind in (CHAR, BLOCK) else 0,
        target,
        xattrs if xattrs is not None else read_xattrs(path) if kind != SYMLINK else [],
        [] if content is None else content,
        subtree,
    )


def apply_metadata(entry: int | bytes, node: Node, warn: list[str]) -> None:
    """Owner, then mode (chown clears set-id bits), xattrs, then times, on ``entry``: an
    open descriptor of the entry itself, or a ``/proc/self/fd/N`` link to one (which leads
    to exactly that inode, never along a path). Owner changes need root: without it they
    are skipped silently, as restic does. Symlinks go to ``apply_link_metadata``."""
    _set_owner(warn, node, entry)
    try:
        os.chmod(entry, node.mode & 0o7777)
    except (OSError, ValueError) as e:
        warn.append(f"chmod: {reason(e)}")
    for name, value in node.xattrs:
        try:
            os.setxattr(entry, name, value)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                warn.append(f"xattr {name.decode(errors='replace')}: {e.strerror}")
        except ValueError as e:
            warn.append(f"xattr {name.decode(errors='replace')}: {e}")
    _set_times(warn, node, entry)


def apply_link_metadata(dir_fd: int, name: bytes, node: Node, warn: list[str]) -> None:
    """Owner and times of the symlink ``name`` in the directory ``dir_fd``, never of what
    it names. Its mode means nothing on Linux; extended attributes on a symlink have no
    no-follow form by descriptor, and a backup records none, so they are not set."""
    _set_owner(warn, node, name, dir_fd=dir_fd, follow_symlinks=False)
    if node.xattrs:
        warn.append("xattrs of a symlink are not restored")
    _set_times(warn, node, name, dir_fd=dir_fd, follow_symlinks=False)


def _set_owner(warn: list[str], node: Node, entry: int | bytes, **where: Any) -> None:
    try:
        os.chown(entry, node.uid, node.gid, **where)
    except PermissionError:
        pass
    except (OSError, ValueError, OverflowError) as e:
        warn.append(f"chown: {reason(e)}")


def _set_times(warn: list[str], node: Node, entry: int | bytes, **where: Any) -> None:
    try:
        os.utime(entry, ns=(node.mtime_ns, node.mtime_ns), **where)
    except (OSError, ValueError, OverflowError) as e:
        warn.append(f"utime: {reason(e)}")


def reason(e: Exception) -> str:
    """The operating system's words for ``e`` (its strerror), else its message."""
    return (e.strerror if isinstance(e, OSError) else None) or str(e)
