"""SVG snapshots of every screen on the fixed repository (fixed key, times and contents, at
./repo), at 120x40. Regenerate after a deliberate change with
``python -m pytest tests/tui --snapshot-update`` and look at the SVGs before committing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from snapfs.snapshot import Snapshot
from tests.conftest import PASSWORD
from tests.tui.conftest import SIZE, settle, wait_for
from tui.app import SnapfsApp
from tui.screens.forget import ForgetScreen

SnapCompare = Callable[..., bool]


def keys(*pressed: str) -> Callable[[Pilot[Any]], Any]:
    """Press keys one at a time, letting workers finish after each."""

    async def steps(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in pressed:
            await pilot.press(key)
            await settle(pilot)
        await pilot.pause(0.2)
        await settle(pilot)
        await steady(pilot)

    return steps


async def steady(pilot: Pilot[Any]) -> None:
    """A blinking text cursor would be on in one screenshot and off in the next."""
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()


def test_snapshots_screen(snap_compare: SnapCompare, fixed_repo: list[Snapshot]) -> None:
    app = SnapfsApp("repo", PASSWORD)
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("space"))


def test_browser_with_parquet_preview(
    snap_compare: SnapCompare, fixed_repo: list[Snapshot]
) -> None:
    app = SnapfsApp("repo", PASSWORD)
    # down to sales/, open it, then its second partition
    steps = keys("enter", "down", "down", "down", "enter", "down", "down", "space")
    assert snap_compare(app, terminal_size=SIZE, run_before=steps)


def test_browser_with_text_preview(snap_compare: SnapCompare, fixed_repo: list[Snapshot]) -> None:
    app = SnapfsApp("repo", PASSWORD)
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("enter", "down"))


def test_create_screen(snap_compare: SnapCompare, fixed_repo: list[Snapshot]) -> None:
    app = SnapfsApp("repo", PASSWORD)
    steps = keys("c", "tab", "tab", "n", "i", "g", "h", "t", "l", "y")  # the tags box
    assert snap_compare(app, terminal_size=SIZE, run_before=steps)


def test_restore_screen(snap_compare: SnapCompare, fixed_repo: list[Snapshot]) -> None:
    app = SnapfsApp("repo", PASSWORD)
    steps = keys("enter", "space", "down", "space", "r")
    assert snap_compare(app, terminal_size=SIZE, run_before=steps)


def test_forget_preview(snap_compare: SnapCompare, fixed_repo: list[Snapshot]) -> None:
    app = SnapfsApp("repo", PASSWORD)

    async def steps(pilot: Pilot[Any]) -> None:
        await keys("f", "1", "ctrl+s")(pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, ForgetScreen)
                       and app.screen.preview is not None)  # fmt: skip
        await settle(pilot)
        await steady(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=steps)


def test_diff_screen(snap_compare: SnapCompare, fixed_repo: list[Snapshot]) -> None:
    app = SnapfsApp("repo", PASSWORD)
    steps = keys("space", "down", "down", "space", "d")
    assert snap_compare(app, terminal_size=SIZE, run_before=steps)


def test_mount_screen(snap_compare: SnapCompare, fixed_repo: list[Snapshot]) -> None:
    app = SnapfsApp("repo", PASSWORD)
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("m"))


def test_help_screen(snap_compare: SnapCompare, fixed_repo: list[Snapshot]) -> None:
    app = SnapfsApp("repo", PASSWORD)
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("f1"))


def test_password_screen_after_a_wrong_password(
    snap_compare: SnapCompare, fixed_repo: list[Snapshot]
) -> None:
    app = SnapfsApp("repo", "wrong")
    assert snap_compare(app, terminal_size=SIZE, run_before=keys())
