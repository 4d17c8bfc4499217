"""A real PostgreSQL dumped through ``snapfs backup --stdin-from-command -- pg_dump``: the
dump restores into a new database with the same rows, the next night's dump after a pgbench
run adds little, and a failing pg_dump saves nothing and says why. The password reaches
pg_dump in its environment (PGPASSWORD), never in an argv."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import SNAPFS, Cli
from tests.postgres import Postgres, server_bin

# Per table: the rows and the sum of the column pgbench's transactions change.
CHECKS = {
    "pgbench_accounts": "abalance",
    "pgbench_branches": "bbalance",
    "pgbench_tellers": "tbalance",
    "pgbench_history": "delta",
}


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    bindir = server_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server (Debian's postgresql; ./scripts/test installs it)")
    server = Postgres(bindir)
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def bench_db(pg: Postgres, name: str, scale: int = 2) -> str:
    """A new database ``name`` with pgbench's tables (100,000 accounts a unit of scale)."""
    pg.psql("postgres", f"CREATE DATABASE {name}")
    subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), name], check=True,
                   capture_output=True, env={**os.environ, **pg.env()})  # fmt: skip
    return name


def pgbench_run(pg: Postgres, db: str, transactions: int) -> None:
    subprocess.run(["pgbench", "-n", "--random-seed=1", "-t", str(transactions), db],
                   check=True, capture_output=True, env={**os.environ, **pg.env()})  # fmt: skip


def figures(pg: Postgres, db: str) -> dict[str, str]:
    return {t: pg.psql(db, f"SELECT count(*), sum({c}) FROM {t}") for t, c in CHECKS.items()}


def dump(cli: Cli, pg: Postgres, db: str, *pg_dump_args: str) -> dict[str, int]:
    """``pg_dump DB`` backed up as /db.sql; the --json summary."""
    result = cli.run(
        "backup", "--json", "--stdin-from-command", "--stdin-filename", "db.sql",
        "--", "pg_dump", *pg_dump_args, "-d", db, env=pg.env(), check=True,
    )  # fmt: skip
    last: dict[str, int] = json.loads(result.stdout.splitlines()[-1])
    return last


def test_dump_restores_into_a_new_database(cli: Cli, pg: Postgres) -> None:
    db = bench_db(pg, "shop")
    pgbench_run(pg, db, 200)  # history rows, balances that are not all zero
    dump(cli, pg, db)
    pg.psql("postgres", "CREATE DATABASE restored")
    reader = subprocess.Popen([*SNAPFS, "-r", str(cli.repo), "dump", "latest", "/db.sql"],
                              stdout=subprocess.PIPE, env=cli.env)  # fmt: skip
    psql = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "restored"], stdin=reader.stdout,
        capture_output=True, env={**os.environ, **pg.env()},
    )  # fmt: skip
    assert reader.stdout is not None
    reader.stdout.close()
    assert reader.wait() == 0
    assert psql.returncode == 0, psql.stderr
    before = figures(pg, db)
    assert before["pgbench_accounts"] != "200000|0\n" and before["pgbench_history"] != "0|\n"
    assert figures(pg, "restored") == before


def test_next_nights_dump_adds_little(cli: Cli, pg: Postgres) -> None:
    """After a pgbench run, the plain dump adds less than a quarter of its size. A changed
    row costs two to three chunks (where it was, where COPY now finds it, the cut points
    finding their way back), so the run is small beside the dump's ~1,200 chunks
    (docs/DATABASES.md has the figures: 100 transactions add 22%, 1,000 add 84%)."""
    db = bench_db(pg, "nightly", scale=10)
    first = dump(cli, pg, db)
    pgbench_run(pg, db, 50)
    second = dump(cli, pg, db)
    assert first["bytes_added"] == first["bytes"] > 90_000_000
    assert second["bytes_added"] < 0.25 * second["bytes"], second


def test_failing_pg_dump_saves_nothing_and_says_why(cli: Cli, pg: Postgres) -> None:
    result = cli.run("backup", "--stdin-from-command", "--", "pg_dump", "-d", "nope",
                     env=pg.env())  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "snapfs: pg_dump exited with status 1: no snapshot saved\n"
        f'pg_dump: error: connection to server at "127.0.0.1", port {pg.port} failed: '
        'FATAL:  database "nope" does not exist\n'
    )
    assert json.loads(cli.run("snapshots", "--json", check=True).stdout) == []


def test_wrong_password_in_the_environment_is_refused(cli: Cli, pg: Postgres) -> None:
    """The password pg_dump uses is the one in its environment."""
    result = cli.run("backup", "--stdin-from-command", "--", "pg_dump", "-d", "postgres",
                     env={**pg.env(), "PGPASSWORD": "wrong"})  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert lines[0] == "snapfs: pg_dump exited with status 1: no snapshot saved"
    assert lines[1].endswith('FATAL:  password authentication failed for user "postgres"')
