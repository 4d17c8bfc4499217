"""A real MariaDB dumped through ``snapfs backup --stdin-from-command -- mariadb-dump``: the
dump restores into a new database with the same rows, and a failing dump saves nothing and
says why. The password reaches mariadb-dump in its environment (MYSQL_PWD), never an argv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import SNAPFS, Cli
from tests.mariadb import MariaDB

ORDERS = (
    "CREATE TABLE orders (id INT PRIMARY KEY, region VARCHAR(8), amount DECIMAL(10,2));"
    "INSERT INTO orders SELECT seq, ELT(1 + seq % 4, 'north', 'south', 'east', 'west'), "
    "seq * 1.25 FROM seq_1_to_20000;"
)
FIGURES = "SELECT count(*), sum(amount), count(DISTINCT region) FROM orders"


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaDB]:
    if shutil.which("mariadbd") is None:
        pytest.fail("no MariaDB server (Debian's mariadb-server; ./scripts/test installs it)")
    server = MariaDB()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_dump_restores_into_a_new_database(cli: Cli, maria: MariaDB) -> None:
    maria.sql(f"CREATE DATABASE shop; USE shop; {ORDERS}")
    before = maria.sql(FIGURES, "shop")
    cli.run("backup", "--stdin-from-command", "--stdin-filename", "shop.sql", "--",
            "mariadb-dump", "--single-transaction", *maria.args(), "shop",
            env=maria.env(), check=True)  # fmt: skip
    maria.sql("CREATE DATABASE shop_restored")
    env = {**os.environ, **cli.env, **maria.env()}
    with subprocess.Popen([*SNAPFS, "-r", str(cli.repo), "dump", "latest", "/shop.sql"],
                          stdout=subprocess.PIPE, env=env) as dumped:  # fmt: skip
        subprocess.run(["mariadb", "--no-defaults", *maria.args(), "shop_restored"],
                       stdin=dumped.stdout, check=True, env=env)  # fmt: skip
    assert dumped.returncode == 0
    assert maria.sql(FIGURES, "shop_restored") == before == "20000\t250012500.00\t4\n"


def test_failing_dump_saves_nothing_and_says_why(cli: Cli, maria: MariaDB) -> None:
    result = cli.run("backup", "--stdin-from-command", "--", "mariadb-dump", *maria.args(),
                     "nope", env=maria.env())  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "snapfs: mariadb-dump exited with status 2: no snapshot saved\n"
        "mariadb-dump: Got error: 1049: \"Unknown database 'nope'\" when selecting the database\n"
    )
    assert json.loads(cli.run("snapshots", "--json", check=True).stdout) == []


def test_wrong_password_in_the_environment_is_refused(cli: Cli, maria: MariaDB) -> None:
    result = cli.run("backup", "--stdin-from-command", "--", "mariadb-dump", *maria.args(),
                     "mysql", env={"MYSQL_PWD": "wrong"})  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert lines[0] == "snapfs: mariadb-dump exited with status 2: no snapshot saved"
    assert "Access denied for user 'snapfs'@'127.0.0.1'" in lines[1], lines
