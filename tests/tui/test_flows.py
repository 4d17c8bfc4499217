"""Every TUI flow driven with Pilot against real repositories on disk, checking what the
flow did to the repository or the file system, not only what the screen says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

import snapfs
from snapfs.snapshot import Snapshot
from tests.conftest import PASSWORD
from tests.tui.conftest import SIZE, open_repo, run, settle, wait_for
from tui.app import SnapfsApp
from tui.screens.browser import BrowserScreen
from tui.screens.create import CreateScreen
from tui.screens.diff import DiffScreen
from tui.screens.forget import ForgetScreen
from tui.screens.help import HelpScreen
from tui.screens.mount import MountScreen
from tui.screens.password import PasswordScreen
from tui.screens.restore import RestoreScreen
from tui.widgets.snapshot_tree import PAGE, Entry, More, SnapshotTree


def backup_of(repo_path: Path, source: Path, tags: list[str] | None = None) -> Snapshot:
    with open_repo(repo_path) as repo:
        return snapfs.backup(repo, [str(source)], tags=tags)


async def started(pilot: Pilot[Any]) -> SnapfsApp:
    await settle(pilot)
    app = pilot.app
    assert isinstance(app, SnapfsApp)
    return app


@asynccontextmanager
async def opened(app: SnapfsApp) -> AsyncIterator[Pilot[Any]]:
    """The app running in a test terminal, past its opening (repository opened or failed)."""
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        yield pilot


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*[{" ": "space", ",": "comma", "/": "slash"}.get(c, c) for c in text])


# -- opening --------------------------------------------------------------------------
def test_snapshot_columns_fit_their_cells_before_any_idle(fixed_repo: list[Snapshot]) -> None:
    """The widths are set with the rows, not when the table is next idle: a frame drawn in
    between (a loaded machine) would otherwise stay cached at the labels' widths."""

    async def flow() -> None:
        app = SnapfsApp("repo", PASSWORD)
        async with opened(app):
            table = app.home.table
            table.show(list(reversed(fixed_repo)))  # no await: no idle since
            widths = {c.key.value: c.get_render_width(table) for c in table.ordered_columns}
            padding = 2 * table.cell_padding
            assert widths["id"] == len(fixed_repo[0].short_id) + padding
            assert widths["tags"] == len("nightly,release") + padding

    run(flow())


def test_wrong_password_asks_again(fixed_repo: list[Snapshot]) -> None:
    async def flow() -> None:
        app = SnapfsApp("repo", "not the password")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, PasswordScreen))
            await settle(pilot)
            assert "wrong password" in str(app.screen.query_one("#password-error").render())
            await type_text(pilot, "still wrong")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, PasswordScreen))
            await settle(pilot)
            await type_text(pilot, PASSWORD)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.home.table.row_count == 3)

    run(flow())


def test_missing_repository_does_not_crash(tmp_path: Path) -> None:
    async def flow() -> None:
        app = SnapfsApp(str(tmp_path / "nothing"), PASSWORD)
        async with opened(app) as pilot:
            assert "no repository" in str(app.home.query_one("#status").render())
            await pilot.press("c")  # acting without a repository only warns
            await settle(pilot)
            assert app.screen is app.home
        assert app.return_code in (0, None)

    run(flow())


# -- the snapshot list ----------------------------------------------------------------
def test_sort_and_filter(fixed_repo: list[Snapshot]) -> None:
    oldest, middle, newest = fixed_repo

    async def flow() -> None:
        app = SnapfsApp("repo", PASSWORD)
        async with opened(app) as pilot:
            table = app.home.table
            assert [s.id for s in table.rows_shown] == [newest.id, middle.id, oldest.id]
            await pilot.press("2")  # time again: oldest first
            assert [s.id for s in table.rows_shown] == [oldest.id, middle.id, newest.id]
            await pilot.press("7")  # bytes added: largest first
            assert table.sort_column == "added"
            await pilot.press("slash")
            await type_text(pilot, "release")
            assert [s.id for s in table.rows_shown] == [newest.id]
            await pilot.press("escape")
            assert len(table.rows_shown) == 3
            # restic's filters as words; "tag:nightly" is no substring of any row
            await pilot.press("slash")
            await type_text(pilot, "tag:nightly")
            assert {s.id for s in table.rows_shown} == {oldest.id, middle.id, newest.id}
            await type_text(pilot, ",release host:lake-01 path:/data/lake")
            assert [s.id for s in table.rows_shown] == [newest.id]
            await type_text(pilot, " host:db1")  # hosts are alternatives, as --host
            assert [s.id for s in table.rows_shown] == [newest.id]
            await type_text(pilot, " path:/elsewhere")  # paths must all be there
            assert table.rows_shown == []
            await pilot.press("escape")
            assert len(table.rows_shown) == 3
            await pilot.click("#snapshots", offset=(20, 0))  # the Time header
            assert table.sort_column == "time"

    run(flow())


# -- create ---------------------------------------------------------------------------
def test_create_makes_a_tagged_snapshot(repo_path: Path, lake_tree: Path) -> None:
    async def flow() -> None:
        app = SnapfsApp(str(repo_path), PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("c")
            screen = app.screen
            assert isinstance(screen, CreateScreen)
            await type_text(pilot, str(lake_tree))
            await pilot.press("enter", "tab", "tab")
            await type_text(pilot, "nightly, lake")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: not screen.running, timeout=120)
            await wait_for(pilot, lambda: app.home.table.row_count == 1)
            line = str(screen.query_one("#progress-line").render())
            assert "saved" in line

    run(flow())
    with open_repo(repo_path) as repo:
        (snap,) = repo.snapshots()
    assert snap.tags == ["lake", "nightly"]
    assert snap.paths == [str(lake_tree)]
    assert snap.summary.files == 7  # the regular files of make_every_kind


def test_cancel_saves_no_snapshot(repo_path: Path, lake_tree: Path) -> None:
    async def flow() -> None:
        app = SnapfsApp(str(repo_path), PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("c")
            screen = app.screen
            assert isinstance(screen, CreateScreen)
            screen.add_path(str(lake_tree))
            # Cancelled before the worker's first event: the first file stops the backup.
            screen.action_start()
            screen.action_cancel()
            await wait_for(pilot, lambda: not screen.running, timeout=120)
            assert "cancelled" in str(screen.query_one("#progress-line").render())

    run(flow())
    with open_repo(repo_path) as repo:
        assert repo.snapshots() == []


# -- browse and restore ---------------------------------------------------------------
def find(tree: SnapshotTree, path: bytes) -> Any:
    """The tree node showing ``path`` (searched from the root through loaded children)."""
    stack = [tree.root]
    while stack:
        node = stack.pop()
        if isinstance(node.data, Entry) and node.data.path == path:
            return node
        stack.extend(node.children)
    return None


def test_restore_marked_entries(repo_path: Path, lake_tree: Path, tmp_path: Path) -> None:
    backup_of(repo_path, lake_tree)
    rel = os.fsencode(lake_tree).lstrip(b"/")
    target = tmp_path / "restored"

    async def flow() -> None:
        app = SnapfsApp(str(repo_path), PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("enter")
            browser = app.screen
            assert isinstance(browser, BrowserScreen)
            tree = browser.snapshot_tree
            await wait_for(pilot, lambda: find(tree, rel + b"/small.txt") is not None)
            # The chain of single directories down to the source opened by itself.
            first = rel + b"/caf\xe9-\xff.bin"  # names sort as bytes
            await wait_for(pilot, lambda: tree.cursor_node is find(tree, first))
            for path in (rel + b"/small.txt", rel + b"/dir"):
                tree.move_cursor(find(tree, path))
                await pilot.press("space")
            assert set(tree.marked) == {rel + b"/small.txt", rel + b"/dir"}
            await pilot.press("r")
            screen = app.screen
            assert isinstance(screen, RestoreScreen)
            await pilot.click("#target")
            await type_text(pilot, str(target))
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: not screen.running, timeout=120)
            assert "restored" in str(screen.query_one("#progress-line").render())

    run(flow())
    out = target / lake_tree.relative_to("/")
    assert (out / "small.txt").read_bytes() == (lake_tree / "small.txt").read_bytes()
    leaf = Path("dir/nested/deeper/leaf.csv")
    assert (out / leaf).read_bytes() == (lake_tree / leaf).read_bytes()
    assert (out / "dir/hardlink.txt").read_bytes() == b"hello lake\n"
    assert not (out / "random.bin").exists()


def test_restore_whole_snapshot(repo_path: Path, lake_tree: Path, tmp_path: Path) -> None:
    backup_of(repo_path, lake_tree)
    target = tmp_path / "all"

    async def flow() -> None:
        app = SnapfsApp(str(repo_path), PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("r")
            screen = app.screen
            assert isinstance(screen, RestoreScreen)
            screen.query_one("#target").focus()
            await type_text(pilot, str(target))
            await pilot.press("enter")
            await wait_for(pilot, lambda: not screen.running, timeout=120)

    run(flow())
    out = target / lake_tree.relative_to("/")
    for name in ("random.bin", "sparse.img", "small.txt", "empty"):
        assert (out / name).read_bytes() == (lake_tree / name).read_bytes(), name


def test_large_directory_opens_a_page_at_a_time(tmp_path: Path, monkeypatch: Any) -> None:
    from tests.tui.conftest import build_wide_repo

    build_wide_repo(tmp_path / "wide", entries=PAGE * 2 + 5)

    async def flow() -> None:
        app = SnapfsApp(str(tmp_path / "wide"), PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("enter")
            browser = app.screen
            assert isinstance(browser, BrowserScreen)
            tree = browser.snapshot_tree
            await wait_for(pilot, lambda: len(tree.root.children) == PAGE + 1)
            more = tree.root.children[-1]
            assert isinstance(more.data, More)
            tree.move_cursor(more)
            await pilot.press("enter")
            assert len(tree.root.children) == 2 * PAGE + 1
            tree.move_cursor(tree.root.children[-1])
            await pilot.press("enter")
            assert len(tree.root.children) == 2 * PAGE + 5
            assert not isinstance(tree.root.children[-1].data, More)

    run(flow())


# -- forget and prune -----------------------------------------------------------------
def test_prune_removes_what_the_preview_said(fixed_repo: list[Snapshot]) -> None:
    oldest, middle, newest = fixed_repo
    with open_repo(Path("repo")) as repo:
        packs_before = repo.list_packs()

    async def flow() -> tuple[int, int]:
        app = SnapfsApp("repo", PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("f")
            screen = app.screen
            assert isinstance(screen, ForgetScreen)
            await pilot.press("1", "ctrl+s")
            await wait_for(pilot, lambda: screen.preview is not None)
            preview = screen.preview
            assert preview is not None
            assert preview.remove == {oldest.id, middle.id}
            await pilot.press("ctrl+f")
            await wait_for(pilot, lambda: app.screen is not screen)
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.report is not None)
            first = screen.report
            assert first is not None
            assert first.condemned_bytes == preview.report.condemned_bytes
            assert first.condemned_packs == preview.report.condemned_packs
            await wait_for(pilot, lambda: app.home.table.row_count == 1)
            screen.report = None
            await pilot.click("#prune")  # phase 2: delete what the first run condemned
            await wait_for(pilot, lambda: screen.report is not None)
            second = screen.report
            assert second is not None
            return (
                preview.report.condemned_bytes + preview.report.repacked_bytes,
                second.deleted_bytes,
            )

    promised, deleted = run(flow())
    assert promised == deleted > 0
    with open_repo(Path("repo")) as repo:
        assert [s.id for s in repo.snapshots()] == [newest.id]
        freed = sum(packs_before.values()) - sum(repo.list_packs().values())
        assert freed == promised
        tree = bytes.fromhex(newest.tree)
        # What is left is whole: every file of the kept snapshot still reads back.
        for _path, node in __import__("snapfs.walk", fromlist=["walk"]).walk(repo, tree):
            for blob in node.content:
                repo.read_blob(blob)


# -- diff -----------------------------------------------------------------------------
def _changes(screen: DiffScreen) -> set[tuple[str, str]]:
    table = screen.query_one("#changes")
    rows = [table.get_row_at(i) for i in range(table.row_count)]  # type: ignore[attr-defined]
    return {(str(kind), str(path)) for kind, path, *_ in rows}


def test_diff_of_two_marked_snapshots(fixed_repo: list[Snapshot]) -> None:
    async def flow() -> None:
        app = SnapfsApp("repo", PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("space", "down", "down", "space", "d")
            screen = app.screen
            assert isinstance(screen, DiffScreen)
            await settle(pilot)
            assert _changes(screen) == {
                ("modified", "/data/lake/events.csv"),
                ("added", "/data/lake/sales/part-1.parquet"),
                ("added", "/data/lake/sales/part-2.parquet"),
            }
            await pilot.press("escape")
            await pilot.press("space", "up", "up", "space")  # unmark both
            await pilot.press("d")  # the newest against its parent
            screen = app.screen
            assert isinstance(screen, DiffScreen)
            await settle(pilot)
            assert _changes(screen) == {
                ("modified", "/data/lake/events.csv"),
                ("added", "/data/lake/sales/part-2.parquet"),
            }

    run(flow())


# -- mount ----------------------------------------------------------------------------
FAKE_SNAPFS = """\
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    call = {"argv": sys.argv[1:], "password": os.environ.get("SNAPFS_PASSWORD")}
    f.write(json.dumps(call) + "\\n")
if "busy" in sys.argv[-2]:
    sys.stderr.write("snapfs: mountpoint is busy\\n")
    sys.exit(1)
"""


def test_mount_and_unmount_run_the_cli(
    fixed_repo: list[Snapshot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake_snapfs.py"
    fake.write_text(FAKE_SNAPFS)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))
    newest = fixed_repo[-1]
    where = str(tmp_path / "mnt")

    async def flow() -> None:
        app = SnapfsApp("repo", PASSWORD, snapfs_command=[sys.executable, str(fake)])
        async with opened(app) as pilot:
            await pilot.press("m")
            screen = app.screen
            assert isinstance(screen, MountScreen)
            await type_text(pilot, str(tmp_path / "busy"))
            await pilot.press("ctrl+s")
            await wait_for(
                pilot, lambda: "cannot mount" in str(screen.query_one("#mount-status").render())
            )
            assert "mountpoint is busy" in str(screen.query_one("#mount-status").render())
            screen.query_one("#mountpoint").value = where  # type: ignore[attr-defined]
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: where in app.session.mounts.active)  # type: ignore[union-attr]
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: not app.session.mounts.active)  # type: ignore[union-attr]
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: where in app.session.mounts.active)  # type: ignore[union-attr]
            await pilot.press("ctrl+q")  # quitting unmounts what was mounted here

    run(flow())
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["argv"] for c in calls[1:]] == [
        ["-r", "repo", "mount", where, newest.id],
        ["umount", where],
        ["-r", "repo", "mount", where, newest.id],
        ["umount", where],
    ]
    assert all(c["password"] == PASSWORD and PASSWORD not in c["argv"] for c in calls)


def test_mount_from_the_tui_is_a_real_mount(
    repo_path: Path, lake_tree: Path, tmp_path: Path
) -> None:
    backup_of(repo_path, lake_tree)
    where = tmp_path / "real-mnt"
    where.mkdir()
    inside = where / lake_tree.relative_to("/") / "small.txt"
    seen: list[bytes] = []

    def mounted() -> bool:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return any(line.split()[4] == str(where) for line in f)

    async def flow() -> None:
        app = SnapfsApp(str(repo_path), PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("m")
            screen = app.screen
            assert isinstance(screen, MountScreen)
            screen.query_one("#mountpoint").value = str(where)  # type: ignore[attr-defined]
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: str(where) in app.session.mounts.active, timeout=60)  # type: ignore[union-attr]
            seen.append(inside.read_bytes())  # read by this process, served by the child
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: not app.session.mounts.active, timeout=60)  # type: ignore[union-attr]

    try:
        run(flow())
    finally:
        if mounted():
            subprocess.run(["fusermount3", "-u", str(where)], check=False)
    assert seen == [(lake_tree / "small.txt").read_bytes()]
    assert not mounted()


# -- help and the palette -------------------------------------------------------------
def test_help_and_command_palette(fixed_repo: list[Snapshot]) -> None:
    async def flow() -> None:
        app = SnapfsApp("repo", PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("f1")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert app.screen is app.home  # type: ignore[comparison-overlap]  # it changed
            await pilot.press("ctrl+p")
            await settle(pilot)
            await type_text(pilot, "create snap")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, CreateScreen))
            await pilot.press("escape")
            await pilot.press("ctrl+q")
        assert app.return_code == 0

    run(flow())
