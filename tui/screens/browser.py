"""One snapshot: its tree on the left; the highlighted entry's details and contents on the
right. Space marks entries; ``r`` restores the marked ones (or everything)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Tree
from textual.worker import get_current_worker

from snapfs import Snapshot
from tui.content import NoPreview, Preview, preview
from tui.screens.restore import RestoreScreen
from tui.session import Session
from tui.widgets.file_preview import FilePreview
from tui.widgets.node_details import NodeDetails
from tui.widgets.snapshot_tree import Data, Entry, SnapshotTree


class BrowserScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="browser.back"),
        Binding("r", "restore", "Restore marked", id="browser.restore"),
    ]

    class PreviewReady(Message):
        def __init__(self, entry: Entry, preview: Preview) -> None:
            super().__init__()
            self.entry = entry
            self.preview = preview

    def __init__(self, session: Session, snapshot: Snapshot) -> None:
        super().__init__()
        self.session = session
        self.snapshot = snapshot
        self.sub_title = f"browse {snapshot.short_id}"
        self._shown: Entry | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield SnapshotTree(self.session.repository, self.snapshot, id="tree")
            with Vertical(id="side"):
                yield NodeDetails(id="details")
                yield FilePreview(id="preview")
        yield Footer()

    @property
    def snapshot_tree(self) -> SnapshotTree:
        return self.query_one(SnapshotTree)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Data]) -> None:
        entry = event.node.data
        if not isinstance(entry, Entry) or entry == self._shown:
            return
        self._shown = entry
        self.query_one(NodeDetails).show(entry)
        shown = self.query_one(FilePreview)
        if entry.node is None or entry.is_dir:
            shown.show(None)
            return
        shown.show(None, loading=True)
        self._preview(entry)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _preview(self, entry: Entry) -> None:
        assert entry.node is not None
        try:
            result = preview(self.session.repository, entry.node)
        except Exception as e:  # a damaged blob: say so in place of the contents
            result = NoPreview(f"cannot read: {e}")
        if not get_current_worker().is_cancelled:
            self.post_message(self.PreviewReady(entry, result))

    def on_browser_screen_preview_ready(self, event: PreviewReady) -> None:
        if event.entry == self._shown:
            self.query_one(FilePreview).show(event.preview)

    def action_restore(self) -> None:
        marked = sorted(self.snapshot_tree.marked)
        self.app.push_screen(RestoreScreen(self.session, self.snapshot, marked))
