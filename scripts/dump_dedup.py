"""How much a second night's database dump adds, for docs/DATABASES.md: a MariaDB table of
a million rows dumped through ``snapfs backup --stdin-from-command``, 50 scattered updates
and an insert, dumped again; printed per mariadb-dump mode as bytes_added / bytes.

    .venv/bin/python scripts/dump_dedup.py        (needs Debian's mariadb-server)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import SNAPFS
from tests.mariadb import MariaDB

TABLE = (
    "CREATE DATABASE shop; USE shop; CREATE TABLE orders (id INT PRIMARY KEY, region "
    "VARCHAR(8), amount DECIMAL(10,2), note VARCHAR(64)); INSERT INTO orders SELECT seq, "
    "ELT(1 + seq % 4, 'north', 'south', 'east', 'west'), seq * 1.25, MD5(seq) "
    "FROM seq_1_to_1000000;"
)


def night(repo: str, server: MariaDB, mode: list[str], env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(
        [*SNAPFS, "-r", repo, "backup", "--json", "--stdin-from-command", "--stdin-filename",
         "shop.sql", "--", "mariadb-dump", "--single-transaction", *mode, *server.args(), "shop"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    summary: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    return summary


def main() -> None:
    server = MariaDB()
    server.start()
    try:
        server.sql(TABLE)
        for n, mode in enumerate(([], ["--skip-extended-insert"])):
            repo = tempfile.mkdtemp(prefix="snapfs-dedup-")
            env = {**os.environ, "SNAPFS_PASSWORD": "dump-dedup-password", **server.env()}
            subprocess.run([*SNAPFS, "-r", repo, "init"], env=env, check=True, capture_output=True)
            first = night(repo, server, mode, env)
            server.sql("UPDATE orders SET amount = amount + 1 WHERE MOD(id, 20011) = 7; "
                       f"INSERT INTO orders VALUES ({2_000_001 + n}, 'north', 1.00, 'new')",
                       "shop")  # fmt: skip
            second = night(repo, server, mode, env)
            added = second["bytes_added"] / second["bytes"]
            print(f"{' '.join(mode) or 'default'}: dump {first['bytes']:,} B, "
                  f"the next night added {second['bytes_added']:,} B ({added:.1%})")  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
