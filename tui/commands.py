"""The command palette (ctrl+p): every action of the app, by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (title, help, app action)
ACTIONS: list[tuple[str, str, str]] = [
    ("Browse snapshot", "Open the highlighted snapshot's tree", "browse"),
    ("Create snapshot", "Back up paths into a new snapshot", "create"),
    ("Restore snapshot", "Restore the highlighted snapshot into a directory", "restore"),
    ("Forget and prune", "Apply a retention policy and free space", "forget"),
    ("Diff snapshots", "Compare the two marked snapshots", "diff"),
    ("Mount snapshot", "Mount or unmount the highlighted snapshot", "mount"),
    ("Snapshot tables", "The highlighted snapshot's pinned tables: schema, rows", "tables"),
    ("Jobs", "The config file's jobs: last results, history, run now", "jobs"),
    ("Reload snapshots", "Read the list of snapshots again", "reload"),
    ("Help", "Keys of every screen", "help"),
    ("Quit", "Leave snapfs (unmounting mounts made here)", "quit"),
]


class ActionsProvider(Provider):
    async def discover(self) -> Hits:
        for title, help_text, action in ACTIONS:
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action),
                          text=title, help=help_text)  # fmt: skip
