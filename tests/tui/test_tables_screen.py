"""The Tables screen over a real snapshot of a Delta table (deltalake) and an Iceberg table
(pyiceberg, SQL catalog on SQLite): each listed with its pinned version, and its schema,
row count and first rows as the libraries themselves read the table."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from pyiceberg.catalog.sql import SqlCatalog
from textual.widgets import DataTable

from tests.conftest import PASSWORD
from tests.tui.conftest import run, wait_for
from tests.tui.test_flows import backup_of, opened
from tui.app import SnapfsApp
from tui.content import TablePreview
from tui.screens.tables import TablesScreen


def _rows(start: int, n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "region": [("north", "south")[i % 2] for i in range(n)]})  # fmt: skip


def _lake(root: Path) -> tuple[Path, Path]:
    delta = root / "sales"
    for v in range(3):
        write_deltalake(delta, _rows(v * 10, 10), mode="append")
    DeltaTable(delta).delete("id % 4 = 0")  # rewritten files: the rows are gone for real
    catalog = SqlCatalog("t", uri=f"sqlite:///{root / 'catalog.db'}",
                         warehouse=f"file://{root}")  # fmt: skip
    catalog.create_namespace("shop")
    orders = catalog.create_table("shop.orders", schema=_rows(0, 1).schema)
    orders.append(_rows(100, 7))
    orders.append(_rows(200, 5))
    return delta, Path(orders.location().removeprefix("file://"))


def _showing(screen: TablesScreen, path: str) -> bool:
    shown = screen._shown
    return screen.peeked is not None and shown is not None and shown.path == path


def test_each_pinned_table_shows_its_version_schema_and_rows(
    repo_path: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    delta, iceberg = _lake(lake)
    backup_of(repo_path, lake)

    async def flow() -> None:
        app = SnapfsApp(str(repo_path), PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("t")
            screen = app.screen
            assert isinstance(screen, TablesScreen)
            table = screen.query_one("#tables", DataTable)
            listed = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            assert [(r[0], r[1], r[6]) for r in listed] == [
                (str(delta), "delta", "whole"), (str(iceberg), "iceberg", "whole")
            ]  # fmt: skip
            assert listed[0][2] == str(DeltaTable(delta).version())
            expected = [(delta, 22, None), (iceberg, 12, ("100", "200"))]
            for row, (path, rows, first) in enumerate(expected):
                table.move_cursor(row=row)
                await wait_for(pilot, partial(_showing, screen, str(path)))
                assert screen.peeked is not None
                shown = screen.peeked.preview
                assert isinstance(shown, TablePreview), shown
                assert [(n, t.removesuffix("_view")) for n, t in shown.schema] == [
                    ("id", "int64"), ("region", "string")
                ]  # fmt: skip
                assert shown.rows == rows
                if first is not None:
                    # the first rows of one data file (they sort by their random names)
                    assert tuple(shown.first_rows[0]) in {(f, "north") for f in first}
                screen.peeked = None

    assert DeltaTable(delta).to_pyarrow_table().num_rows == 22  # 30 less ids 0, 4, ..., 28
    run(flow())


def test_rows_a_position_delete_file_removes_are_not_counted(
    repo_path: Path, tmp_path: Path
) -> None:
    from tests.iceberg_deletes import DELETED, table_with_position_deletes

    made = table_with_position_deletes(tmp_path)
    path = Path(made.location().removeprefix("file://"))
    backup_of(repo_path, path)

    async def flow() -> None:
        app = SnapfsApp(str(repo_path), PASSWORD)
        async with opened(app) as pilot:
            await pilot.press("t")
            screen = app.screen
            assert isinstance(screen, TablesScreen)
            await wait_for(pilot, partial(_showing, screen, str(path)))
            assert screen.peeked is not None
            shown = screen.peeked.preview
            assert isinstance(shown, TablePreview) and shown.rows == 10 - len(DELETED)
            assert screen.peeked.note == (
                "rows counted in 1 data file, less 2 rows its position delete files remove"
            )

    run(flow())
