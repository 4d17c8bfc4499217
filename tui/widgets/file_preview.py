"""The contents of a file in the browser: text as it is, Parquet as schema and first rows."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.content import NoPreview, Preview, TablePreview, TextPreview


class FilePreview(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static(id="preview-body")

    def show(self, preview: Preview | None, *, loading: bool = False) -> None:
        body = self.query_one("#preview-body", Static)
        body.update(Text("loading…", style="italic") if loading else _render(preview))
        self.scroll_home(animate=False)


def _render(preview: Preview | None) -> RenderableType:
    if preview is None:
        return ""
    if isinstance(preview, NoPreview):
        return Text(preview.reason, style="italic")
    if isinstance(preview, TextPreview):
        more = "\n… (first 64 KiB shown)" if preview.truncated else ""
        return Text(preview.text + more)
    return _parquet(preview)


def _parquet(preview: TablePreview) -> RenderableType:
    schema = Table(title="schema", title_justify="left", box=None, show_header=False)
    schema.add_column(style="bold")
    schema.add_column()
    for name, kind in preview.schema:
        schema.add_row(name, kind)
    rows = Table(
        title=f"first {len(preview.first_rows)} of {preview.rows:,} rows", title_justify="left"
    )
    for name in preview.columns:
        rows.add_column(name, no_wrap=True)
    for row in preview.first_rows:
        rows.add_row(*row)
    return Group(schema, Text(""), rows)
