"""pinning.py: which entries of a pinned table directory a backup keeps, and which losses
make the table torn, on a hand-made log in a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

from snapfs.pinning import TablePins


def _table(root: Path) -> Path:
    table = root / "lake" / "t"
    (table / "_delta_log").mkdir(parents=True)
    actions: list[list[dict[str, object]]] = [
        [{"add": {"path": "p=1/a.parquet", "size": 3}}, {"add": {"path": "b.parquet", "size": 4}}],
        [{"remove": {"path": "b.parquet"}}, {"add": {"path": "p=2/c.parquet", "size": 5}}],
    ]
    for version, commit in enumerate(actions):
        lines = "".join(json.dumps(a) + "\n" for a in commit)
        (table / "_delta_log" / f"{version:020d}.json").write_text(lines)
    return table


def test_a_pinned_directory_keeps_its_version_its_history_and_nothing_else(
    tmp_path: Path,
) -> None:
    table = _table(tmp_path)
    pinned = TablePins().pin(str(table).encode(), str(table), "delta")
    assert pinned.pin.version == 1
    assert [r for r in ("p=1", "p=2", "p=3", "_delta_log", "_delta_log/_commits")
            if pinned.wanted(r, True)] == ["p=1", "p=2", "_delta_log"]  # fmt: skip
    assert [r for r in ("p=1/a.parquet", "b.parquet", "p=2/c.parquet", "p=2/stray.parquet",
                        f"_delta_log/{1:020d}.json", f"_delta_log/{2:020d}.json",
                        "_delta_log/_last_checkpoint")
            if pinned.wanted(r, False)] == [
        "p=1/a.parquet", "b.parquet", "p=2/c.parquet", f"_delta_log/{1:020d}.json"]  # fmt: skip


def test_a_live_file_lost_or_never_listed_tears_the_table_and_history_does_not(
    tmp_path: Path,
) -> None:
    table = _table(tmp_path)
    pins = TablePins()
    pinned = pins.pin(str(table).encode(), str(table), "delta")
    owner = pins.owner(str(table / "p=1" / "a.parquet").encode())
    assert owner == (pinned, "p=1/a.parquet")
    assert pins.owner(str(tmp_path / "lake" / "other.parquet").encode()) is None
    assert pinned.lost("b.parquet") is None  # only version 0 read it: VACUUM may delete it
    assert pinned.lost("p=1/a.parquet") == (
        "Delta table torn: version 1 needs p=1/a.parquet, which is gone (deleted during the "
        "backup?)"
    )
    for rel in ("_delta_log/" + f"{v:020d}.json" for v in (0, 1)):
        pinned.wanted(rel, False)
    assert pinned.unseen() == [
        "Delta table torn: version 1 needs p=2/c.parquet, which is gone (deleted during the "
        "backup?)"
    ]
    [record] = pins.records()
    assert (record.path, record.version, record.files, record.bytes, record.torn) == (
        str(table), 1, 2, 8, True)  # fmt: skip


def test_a_finished_table_keeps_its_record_and_drops_its_file_set(tmp_path: Path) -> None:
    table = _table(tmp_path)
    pins = TablePins()
    pins.pin(str(table).encode(), str(table), "delta")
    before = pins.records()
    pins.finish(str(table).encode())
    assert pins.records() == before
    assert pins.owner(str(table / "p=1" / "a.parquet").encode()) is None  # its set is gone


def test_an_excluded_directory_names_the_live_files_it_holds(tmp_path: Path) -> None:
    table = _table(tmp_path)
    pinned = TablePins().pin(str(table).encode(), str(table), "delta")
    assert pinned.excluded("b.parquet", False) == []  # history only
    assert pinned.excluded("p=2", True) == [
        "Delta table incomplete: version 1 needs p=2/c.parquet, which --exclude leaves out"
    ]
    assert pinned.unseen() == [
        "Delta table torn: version 1 needs " + p + ", which is gone (deleted during the backup?)"
        for p in sorted(pinned.pin.live - {"p=2/c.parquet"})
    ]
    assert pinned.record().torn
