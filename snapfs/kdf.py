"""The password KDF (scrypt) and the key files that hold its parameters.

Light to import on purpose (hashlib, msgspec, the store's interface): unlocking a repository
spends about a fifth of a second in scrypt, which releases the GIL, so the command line
starts it on a thread (``derive_ahead``) while the modules a verb needs load, and the unlock
then takes the result from ``derive`` instead of deriving again.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import msgspec

from snapfs.store.base import Backend


@dataclass(frozen=True, slots=True)
class KdfParams:
    """scrypt cost; the default takes about 0.2 s and 64 MiB, as a password KDF should."""

    n: int = 2**16
    r: int = 8
    p: int = 1
    salt: bytes = b""

    def derive(self, password: bytes) -> bytes:
        """The 32-byte key for ``password``: started ahead by ``derive_ahead``, or now."""
        with _lock:
            ahead = _ahead.pop((password, self), None)
        if ahead is not None:
            return ahead.result()
        return self._scrypt(password)

    def _scrypt(self, password: bytes) -> bytes:
        need = 128 * self.r * (self.n + self.p + 2)  # OpenSSL's own bound, plus a margin
        return hashlib.scrypt(
            password, salt=self.salt, n=self.n, r=self.r, p=self.p, maxmem=need + (1 << 20),
            dklen=32,
        )  # fmt: skip


def new_salt() -> bytes:
    return os.urandom(32)


class KeyFile(msgspec.Struct, frozen=True):
    """``keys/<id>``: the master key wrapped under a password, in clear JSON."""

    kdf: str
    n: int
    r: int
    p: int
    salt: str
    wrapped: str
    created: str
    host: str
    user: str

    def params(self) -> KdfParams:
        return KdfParams(self.n, self.r, self.p, base64.b64decode(self.salt))


def read_key_files(backend: Backend) -> list[KeyFile]:
    return [
        msgspec.json.decode(backend.get(info.key), type=KeyFile) for info in backend.list("keys/")
    ]


_lock = threading.Lock()
_ahead: dict[tuple[bytes, KdfParams], Future[bytes]] = {}


def derive_ahead(open_backend: Callable[[], Backend], password: bytes) -> None:
    """Derive ``password``'s key for every key file of a repository, on a daemon thread
    (a command that fails first exits at once). Failures are left to the real unlock, which
    meets them again and reports them."""

    def run() -> None:
        try:
            params = [record.params() for record in read_key_files(open_backend())]
        except Exception:  # no repository, a store that fails: the unlock says so
            return
        futures: list[tuple[KdfParams, Future[bytes]]] = []
        with _lock:  # all promised before any is derived: the unlock waits, never repeats
            for p in params:
                futures.append((p, _ahead.setdefault((password, p), Future())))
        for p, future in futures:
            try:
                future.set_result(p._scrypt(password))
            except Exception as e:  # raised again in the unlock that waits for it
                future.set_exception(e)

    threading.Thread(target=run, name="snapfs-kdf", daemon=True).start()
