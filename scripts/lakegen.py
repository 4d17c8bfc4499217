"""A deterministic synthetic data lake, and its day-to-day evolution.

    python scripts/lakegen.py generate DIR --scale 1000     # about 1000 MB
    python scripts/lakegen.py evolve DIR --day 1            # one day of changes

Layout: Parquet partitions of three tables (warehouse/sales, warehouse/events by date,
warehouse/customers), CSV exports, an append-only JSON-lines log and thousands of small
config files. The same seed and scale always give the same bytes.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

START = date(2024, 1, 1)
CITIES = [f"city-{i:03d}" for i in range(300)]
STATUSES = ["new", "paid", "shipped", "returned", "cancelled"]
WORDS = [
    "lake",
    "warehouse",
    "order",
    "parquet",
    "backup",
    "snapshot",
    "customer",
    "invoice",
    "shipment",
    "delta",
    "refund",
    "priority",
    "express",
    "standard",
    "gift",
    "bulk",
    "promo",
    "loyalty",
    "regional",
    "partner",
]
PHRASES = [" ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(1 + i % 6)) + f" #{i}"
           for i in range(4000)]  # fmt: skip
SALES_ROW_BYTES = 21  # compressed, measured: sizes the partitions to the scale asked for
EVENT_ROW_BYTES = 22


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _pick(r: np.random.Generator, values: list[str], rows: int) -> pa.DictionaryArray:
    """A dictionary-encoded column of ``rows`` values drawn from ``values``."""
    return pa.DictionaryArray.from_arrays(
        pa.array(r.integers(0, len(values), rows), pa.int32()), values
    )


def sales_table(rows: int, day: int, seed: int) -> pa.Table:
    r = _rng(seed, 1, day)
    start_ms = int((START + timedelta(days=day)).strftime("%s")) * 1000
    return pa.table({
        "order_id": pa.array(np.arange(rows, dtype=np.int64) + day * 10_000_000),
        "customer_id": pa.array(r.integers(1, 2_000_000, rows)),
        "amount": pa.array(np.round(r.lognormal(3.5, 1.0, rows), 2)),
        "ts": pa.array(start_ms + np.sort(r.integers(0, 86_400_000, rows)), pa.timestamp("ms")),
        "city": _pick(r, CITIES, rows),
        "status": _pick(r, STATUSES, rows),
        "note": _pick(r, PHRASES, rows),
    })  # fmt: skip


def events_table(rows: int, day: int, seed: int) -> pa.Table:
    r = _rng(seed, 2, day)
    return pa.table({
        "event_id": pa.array(r.integers(0, 2**62, rows)),
        "user_id": pa.array(r.integers(1, 500_000, rows)),
        "kind": _pick(r, STATUSES, rows),
        "value": pa.array(r.random(rows).astype(np.float32)),
    })  # fmt: skip


def customers_table(rows: int, part: int, seed: int) -> pa.Table:
    r = _rng(seed, 3, part)
    ids = np.arange(rows, dtype=np.int64) + part * rows
    return pa.table({
        "customer_id": pa.array(ids),
        "name": pa.array([f"customer {i}" for i in ids.tolist()]),
        "city": _pick(r, CITIES, rows),
        "lifetime_value": pa.array(np.round(r.lognormal(6, 1.2, rows), 2)),
    })  # fmt: skip


def _plan(scale_mb: float) -> dict[str, int]:
    total = scale_mb * 1_000_000
    days = max(4, int(scale_mb // 25))
    return {
        "days": days,
        "sales_rows": int(total * 0.50 / days / SALES_ROW_BYTES),
        "event_rows": int(total * 0.15 / days / EVENT_ROW_BYTES),
        "customer_parts": 4,
        "customer_rows": int(total * 0.08 / 4 / 18),
        "csv_rows": int(total * 0.12 / 4 / 60),
        "log_lines": int(total * 0.12 / 88),
        "small_files": max(200, int(scale_mb * 3)),
    }


def _partition(root: Path, table: str, day: int) -> Path:
    return root / "warehouse" / table / f"date={START + timedelta(days=day)}" / "part-0.parquet"


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _log_lines(first: int, count: int, seed: int) -> bytes:
    r = _rng(seed, 4, first)
    levels = r.integers(0, 3, count).tolist()
    ms = r.integers(1, 5000, count).tolist()
    return "".join(
        json.dumps({"seq": first + i, "level": ("INFO", "WARN", "ERROR")[levels[i]],
                    "msg": PHRASES[(first + i) % len(PHRASES)], "ms": ms[i]}) + "\n"
        for i in range(count)
    ).encode()  # fmt: skip


def _small_file(i: int, version: int, seed: int) -> bytes:
    r = _rng(seed, 5, i, version)
    settings = {f"k{j}": float(v) for j, v in enumerate(r.random(40).round(4))}
    doc = {"name": f"job-{i}", "version": version, "owner": WORDS[i % len(WORDS)]}
    doc["settings"] = settings
    return json.dumps(doc, indent=2).encode()


def generate(root: Path, scale_mb: float, seed: int = 1) -> None:
    """Write a lake of about ``scale_mb`` MB under ``root`` (which must not exist yet)."""
    plan = _plan(scale_mb)
    root.mkdir(parents=True)
    (root / ".lakegen.json").write_text(json.dumps({"scale": scale_mb, "seed": seed, **plan}))
    for day in range(plan["days"]):
        _write_parquet(_partition(root, "sales", day), sales_table(plan["sales_rows"], day, seed))
        _write_parquet(_partition(root, "events", day), events_table(plan["event_rows"], day, seed))
    for part in range(plan["customer_parts"]):
        path = root / "warehouse" / "customers" / f"part-{part}.parquet"
        _write_parquet(path, customers_table(plan["customer_rows"], part, seed))
    (root / "exports").mkdir()
    for n in range(4):
        csv = sales_table(plan["csv_rows"], 1000 + n, seed).drop_columns(["note"])
        pacsv.write_csv(csv, root / "exports" / f"sales-export-{n}.csv")
    (root / "logs").mkdir()
    (root / "logs" / "app.jsonl").write_bytes(_log_lines(0, plan["log_lines"], seed))
    for i in range(plan["small_files"]):
        path = root / "configs" / f"team-{i % 20:02d}" / f"job-{i:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_small_file(i, 0, seed))


def evolve_day(root: Path, day: int, seed: int = 1) -> None:
    """One day: new partitions (about 3% more data), two older sales partitions rewritten
    with about 1% of their rows deleted, log appends (about 1%), a few configs edited."""
    plan = json.loads((root / ".lakegen.json").read_text())
    new_day = plan["days"] + day - 1
    _write_parquet(
        _partition(root, "sales", new_day), sales_table(plan["sales_rows"], new_day, seed)
    )
    _write_parquet(
        _partition(root, "events", new_day), events_table(plan["event_rows"], new_day, seed)
    )
    r = _rng(seed, 6, day)
    for old in r.choice(plan["days"], size=2, replace=False).tolist():
        path = _partition(root, "sales", old)
        table = pq.read_table(path)
        keep = r.random(table.num_rows) >= 0.01
        _write_parquet(path, table.filter(pa.array(keep)))
    log = root / "logs" / "app.jsonl"
    first = sum(1 for _ in log.open("rb"))
    with log.open("ab") as f:
        f.write(_log_lines(first, max(1, plan["log_lines"] // 100), seed))
    for i in r.choice(plan["small_files"], size=5, replace=False).tolist():
        path = root / "configs" / f"team-{i % 20:02d}" / f"job-{i:05d}.json"
        path.write_bytes(_small_file(i, day, seed))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate", help="write a new lake")
    gen.add_argument("dir", type=Path)
    gen.add_argument("--scale", type=float, default=1000, help="size in MB (default 1000)")
    gen.add_argument("--seed", type=int, default=1)
    evo = sub.add_parser("evolve", help="apply one day of changes")
    evo.add_argument("dir", type=Path)
    evo.add_argument("--day", type=int, required=True)
    evo.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.cmd == "generate":
        generate(args.dir, args.scale, args.seed)
    else:
        evolve_day(args.dir, args.day, args.seed)


if __name__ == "__main__":
    main()
