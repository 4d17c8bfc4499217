"""The attributes of the entry under the cursor in the browser."""

from __future__ import annotations

import stat
from datetime import UTC, datetime

from rich.table import Table
from textual.widgets import Static

from snapfs.tree import Node
from tui.units import size
from tui.widgets.snapshot_tree import Entry

# Trees keep permission bits only; the type is its own field.
_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK,
              "fifo": stat.S_IFIFO, "char": stat.S_IFCHR, "block": stat.S_IFBLK,
              "socket": stat.S_IFSOCK}  # fmt: skip


def _time(ns: int) -> str:
    # UTC, so a screen (and its snapshot test) reads the same in every time zone.
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class NodeDetails(Static):
    def show(self, entry: Entry | None) -> None:
        if entry is None or entry.node is None:
            self.update("")
            return
        self.update(self._table(entry.shown_path, entry.node))

    @staticmethod
    def _table(path: str, node: Node) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("path", path)
        table.add_row("type", node.type)
        if node.type == "file":
            chunks = len(node.content)
            counts = f"{node.size:,} bytes, {chunks} chunk{'' if chunks == 1 else 's'}"
            table.add_row("size", f"{size(node.size)} ({counts})")
        if node.target:
            table.add_row("target", node.target.decode("utf-8", "surrogateescape"))
        table.add_row("mode", stat.filemode(_TYPE_BITS.get(node.type, 0) | stat.S_IMODE(node.mode)))
        table.add_row("owner", f"{node.user or node.uid}:{node.group or node.gid}")
        table.add_row("modified", _time(node.mtime_ns))
        if node.links > 1:
            table.add_row("links", str(node.links))
        if node.xattrs:
            names = ", ".join(n.decode("utf-8", "replace") for n, _v in node.xattrs)
            table.add_row("xattrs", names)
        return table
