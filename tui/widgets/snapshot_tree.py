"""One snapshot as a tree, loaded lazily: a directory's tree blob is read when it is first
expanded, on a worker thread. Large directories show their entries a page at a time (a
"more" row loads the next page), so a 100,000-entry directory opens as fast as a small one.
Space marks entries for a restore; a marked directory brings everything below it."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from snapfs import Repository, Snapshot
from snapfs.tree import DIR, SYMLINK, Node
from tui.units import size, when

PAGE = 1000


@dataclass(frozen=True)
class Entry:
    """A node of the snapshot and its path relative to the snapshot's root (``b""`` for the
    root itself, whose ``node`` is None)."""

    path: bytes
    node: Node | None
    tree_id: bytes | None

    @property
    def is_dir(self) -> bool:
        return self.node is None or self.node.type == DIR

    @property
    def shown_path(self) -> str:
        return "/" + self.path.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class More:
    """Stands for the entries of a directory after ``offset`` that are not shown yet."""

    parent: Entry
    offset: int


Data = Entry | More


class SnapshotTree(Tree[Data]):
    BINDINGS = [Binding("space", "toggle_mark", "Mark", id="browser.mark")]

    class Loaded(Message):
        """A directory's entries arrived from the repository."""

        def __init__(self, tree_node: TreeNode[Data], nodes: list[Node]) -> None:
            super().__init__()
            self.tree_node = tree_node
            self.nodes = nodes

    class LoadFailed(Message):
        def __init__(self, tree_node: TreeNode[Data], error: BaseException) -> None:
            super().__init__()
            self.tree_node = tree_node
            self.error = error

    def __init__(self, repo: Repository, snapshot: Snapshot, *, id: str | None = None) -> None:
        root = Entry(b"", None, bytes.fromhex(snapshot.tree))
        self._root_label = f"{snapshot.short_id}  {when(snapshot)}"
        super().__init__(self._root_label, data=root, id=id)
        self.repo = repo
        self.marked: dict[bytes, Entry] = {}
        self._entries: dict[bytes, list[Node]] = {}  # directory path -> all its nodes
        self.guide_depth = 3
        self._auto_opened: TreeNode[Data] | None = None  # expanded for the user, not by them

    def on_mount(self) -> None:
        self.root.expand()

    # -- loading ----------------------------------------------------------------------
    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Data]) -> None:
        data = event.node.data
        if isinstance(data, Entry) and data.is_dir and data.path not in self._entries:
            event.node.set_label(self._label(data, loading=True))
            self._load(event.node, data)

    @work(thread=True, group="tree", exit_on_error=False)
    def _load(self, tree_node: TreeNode[Data], entry: Entry) -> None:
        try:
            nodes = self.repo.load_tree(entry.tree_id).nodes if entry.tree_id else []
        except Exception as e:  # shown as a notification; the tree stays usable
            self.post_message(self.LoadFailed(tree_node, e))
            return
        self.post_message(self.Loaded(tree_node, nodes))

    def on_snapshot_tree_loaded(self, event: Loaded) -> None:
        data = event.tree_node.data
        assert isinstance(data, Entry)
        self._entries[data.path] = event.nodes
        event.tree_node.set_label(self._label(data))
        self._add_page(event.tree_node, data, 0)
        # Snapshot roots hold whole absolute paths (tmp/x/src/...): open single-directory
        # chains so the data shows at once.
        children = event.tree_node.children
        opened_here = event.tree_node is self.root or event.tree_node is self._auto_opened
        if not opened_here:
            return
        if len(children) == 1 and isinstance(children[0].data, Entry) and children[0].data.is_dir:
            self._auto_opened = children[0]
            children[0].expand()
        elif children:
            self._auto_opened = None
            # The new lines exist once the tree has been laid out again.
            self.call_after_refresh(self.move_cursor, children[0])

    def on_snapshot_tree_load_failed(self, event: LoadFailed) -> None:
        data = event.tree_node.data
        assert isinstance(data, Entry)
        event.tree_node.set_label(self._label(data))
        event.tree_node.collapse()
        self.notify(f"cannot read {data.shown_path}: {event.error}", severity="error")

    def _add_page(self, parent: TreeNode[Data], entry: Entry, offset: int) -> None:
        nodes = self._entries[entry.path]
        for node in nodes[offset : offset + PAGE]:
            child = self._child(entry, node)
            if child.is_dir:
                parent.add(self._label(child), data=child)
            else:
                parent.add_leaf(self._label(child), data=child)
        rest = len(nodes) - offset - PAGE
        if rest > 0:
            label = Text(
                f"… {rest:,} more entries (enter shows {min(rest, PAGE):,} more)", "italic"
            )
            parent.add_leaf(label, data=More(entry, offset + PAGE))

    @staticmethod
    def _child(parent: Entry, node: Node) -> Entry:
        path = node.name if not parent.path else parent.path + b"/" + node.name
        return Entry(path, node, node.subtree if node.type == DIR else None)

    def on_tree_node_selected(self, event: Tree.NodeSelected[Data]) -> None:
        more = event.node.data
        if not isinstance(more, More) or event.node.parent is None:
            return
        parent = event.node.parent
        event.node.remove()
        self._add_page(parent, more.parent, more.offset)

    # -- marks ------------------------------------------------------------------------
    def action_toggle_mark(self) -> None:
        tree_node = self.cursor_node
        if tree_node is None or not isinstance(tree_node.data, Entry) or tree_node.is_root:
            return
        entry = tree_node.data
        if entry.path in self.marked:
            del self.marked[entry.path]
        else:
            self.marked[entry.path] = entry
        tree_node.set_label(self._label(entry))

    def _label(self, entry: Entry, *, loading: bool = False) -> Text:
        node = entry.node
        if node is None:
            return Text(self._root_label, style="bold")
        label = Text("● " if entry.path in self.marked else "", style="bold")
        name = node.display_name
        if entry.is_dir:
            label.append(name + "/", style="bold")
        elif node.type == SYMLINK:
            label.append(f"{name} → {node.target.decode('utf-8', 'surrogateescape')}")
        else:
            label.append(name)
            label.append(f"  {size(node.size)}", style="dim")
        if loading:
            label.append("  loading…", style="italic")
        return label
