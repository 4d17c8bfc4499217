"""F1: what each key does, on every screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# snapfs

**Everywhere** — `F1` this help · `ctrl+p` command palette · `escape` back · `ctrl+q` quit

**Snapshots** — `enter` browse · `c` create · `r` restore all · `f` forget/prune ·
`space` mark · `d` diff the two marked (or the highlighted one and its parent) ·
`m` mount/unmount · `/` filter · `1`–`7` sort by column (again: reverse), or click a header ·
`t` tables · `j` jobs · `ctrl+r` reload

**Jobs** — the config file's jobs: `n` run the highlighted job now (in the background:
the screen stays live) · `ctrl+r` reload; below, the highlighted job's history, and what
every machine's jobs last did in this repository

**Tables** — the Delta and Iceberg tables the snapshot pinned (version, commit time,
files, whole or torn); the highlighted one's schema, row count and first rows

**Browser** — `enter`/`→` open a folder · `space` mark for restore · `r` restore the marked
entries (or everything)

**Create** — `enter` in the path box adds a path · `ctrl+s` start · `escape` cancel, then back

**Restore** — choose a target directory · `ctrl+s` start

**Forget/prune** — set the policy · `ctrl+s` preview (nothing changes) · `ctrl+f` forget
the snapshots shown as *remove*, then prune · *Prune only* deletes what earlier prunes
condemned (prune works in two runs)

**Mount** — a mountpoint, then `ctrl+s` mount or `ctrl+t` unmount; mounts made here are
unmounted when you quit.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "close", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-box"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
