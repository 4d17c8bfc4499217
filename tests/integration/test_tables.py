"""Tables on a pipe: one line per row, whatever the length of the paths (rich would wrap
them at 80 columns, as for a narrow terminal)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli


def test_piped_snapshot_table_keeps_a_row_on_one_line(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "a-long-directory-name-for-the-warehouse" / "partitions-by-day"
    src.mkdir(parents=True)
    (src / "part-0.csv").write_text("id\n1\n")
    cli.run("backup", str(src), "--tag", "nightly", check=True)
    lines = cli.run("snapshots", check=True).stdout.decode().splitlines()
    header, row, count = lines
    assert header.split() == ["ID", "Time", "Host", "Tags", "Paths", "Files", "Size", "Added"]
    assert str(src) in row.split() and "nightly" in row.split()
    assert count == "1 snapshots"
