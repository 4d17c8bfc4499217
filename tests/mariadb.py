"""A real MariaDB for tests: Debian's server, a data directory made by mariadb-install-db in
a temporary directory, listening on a free loopback port, with a ``snapfs`` user that must
give its password (MYSQL_PWD, in the client's environment, never an argv). Run as the
``mysql`` user when we are root."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.postgres import free_port

PASSWORD = "maria-test-password-4c1d"
USER = "snapfs"
_SYSTEM_USER = "mysql"


class MariaDB:
    """One server; ``env()`` is what a client needs (MYSQL_PWD), ``args()`` where it is."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="snapfs-maria-"))
        self.data = self.dir / "data"
        self.socket = self.dir / "sock"
        self._proc: subprocess.Popen[bytes] | None = None
        self._user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam(_SYSTEM_USER)
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._user = [f"--user={_SYSTEM_USER}"]

    def start(self) -> None:
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.data}",
                        "--auth-root-authentication-method=socket", "--skip-test-db",
                        *self._user], check=True, capture_output=True, timeout=120)  # fmt: skip
        self._proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}", "--skip-name-resolve",
             "--innodb-flush-log-at-trx-commit=0", f"--log-error={self.dir / 'log'}",
             *self._user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_ready()
        self.sql(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
                 f"GRANT ALL ON *.* TO '{USER}'@'127.0.0.1'", admin=True)  # fmt: skip

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            assert self._proc is not None
            if self._proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"MariaDB did not start:\n{log}")
            time.sleep(0.1)

    def stop(self) -> None:
        try:
            if self._proc is not None:
                self._proc.terminate()
                self._proc.wait(timeout=60)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def args(self) -> list[str]:
        """Where a client connects, and as whom: by TCP, so the password is asked for."""
        return ["-h", "127.0.0.1", "-P", str(self.port), "-u", USER]

    def env(self) -> dict[str, str]:
        return {"MYSQL_PWD": PASSWORD}

    def sql(self, statements: str, database: str = "", *, admin: bool = False) -> str:
        """The rows ``statements`` give, tab-separated, no headers."""
        where = ["--socket", str(self.socket), "-u", "root"] if admin else self.args()
        result = subprocess.run(
            ["mariadb", "--no-defaults", *where, "-N", "-B", "-e", statements, database],
            check=True, capture_output=True, text=True, env={**os.environ, **self.env()},
        )  # fmt: skip
        return result.stdout
