"""The password KDFs (Argon2id, and scrypt for older key files) and the key files that
hold their parameters.

Light to import on purpose (msgspec and the store's interface; the KDFs' libraries load only
on the thread that derives): unlocking a repository spends tens of milliseconds in its KDF,
which releases the GIL, so the command line starts it on a thread (``derive_ahead``) while
the modules a verb needs load, and the unlock then takes the result from ``derive`` instead
of deriving again.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeAlias

import msgspec

from snapfs.errors import UnsupportedFormat
from snapfs.store.base import Backend


@dataclass(frozen=True, slots=True)
class _Derivation:
    salt: bytes = b""

    def derive(self, password: bytes) -> bytes:
        """The 32-byte key for ``password``: started ahead by ``derive_ahead``, or now."""
        with _lock:
            ahead = _ahead.pop((password, self), None)
        if ahead is not None:
            return ahead.result()
        return self.compute(password)

    def compute(self, password: bytes) -> bytes:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Argon2Params(_Derivation):
    """Argon2id (RFC 9106). The default, 46 MiB and one pass, is the first setting of OWASP's
    password-storage cheat sheet; it takes about 55 ms here."""

    memory_kib: int = 47104
    iterations: int = 1
    lanes: int = 1

    def compute(self, password: bytes) -> bytes:
        # Loaded here, on the deriving thread: cryptography takes ~20 ms to import cold, and
        # that thread can only start once this module has loaded.
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        return Argon2id(
            salt=self.salt, length=32, iterations=self.iterations, lanes=self.lanes,
            memory_cost=self.memory_kib,
        ).derive(password)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScryptParams(_Derivation):
    """scrypt (RFC 7914), which key files written before Argon2id became the default use."""

    n: int = 2**16
    r: int = 8
    p: int = 1

    def compute(self, password: bytes) -> bytes:
        import hashlib  # loads OpenSSL's libcrypto, ~15 ms cold: only older key files need it

        need = 128 * self.r * (self.n + self.p + 2)  # OpenSSL's own bound, plus a margin
        return hashlib.scrypt(
            password, salt=self.salt, n=self.n, r=self.r, p=self.p, maxmem=need + (1 << 20),
            dklen=32,
        )  # fmt: skip


KdfParams: TypeAlias = "Argon2Params | ScryptParams"


def new_salt() -> bytes:
    return os.urandom(32)


class KeyFile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``keys/<id>``: the master key wrapped under a password, in clear JSON. The cost fields
    present are those of ``kdf``: memory (KiB), iterations, lanes; or n, r, p."""

    kdf: str
    memory: int = 0
    iterations: int = 0
    lanes: int = 0
    n: int = 0
    r: int = 0
    p: int = 0
    salt: str
    wrapped: str
    created: str
    host: str
    user: str

    def params(self) -> KdfParams:
        salt = base64.b64decode(self.salt)
        if self.kdf == "argon2id":
            return Argon2Params(salt, self.memory, self.iterations, self.lanes)
        if self.kdf == "scrypt":
            return ScryptParams(salt, self.n, self.r, self.p)
        raise UnsupportedFormat(f"key derivation {self.kdf!r} is not supported")


def cost_fields(params: KdfParams) -> dict[str, Any]:
    """The key file fields that name ``params``' KDF and its cost."""
    if isinstance(params, Argon2Params):
        return {"kdf": "argon2id", "memory": params.memory_kib,
                "iterations": params.iterations, "lanes": params.lanes}  # fmt: skip
    return {"kdf": "scrypt", "n": params.n, "r": params.r, "p": params.p}


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One ``keys/<id>`` object as read: ``record`` is None when it does not parse, ``params``
    when it does not parse or names a KDF this version does not know; ``problem`` says which."""

    id: str
    data: bytes
    record: KeyFile | None
    params: KdfParams | None
    problem: str


def read_key_files(backend: Backend) -> list[StoredKey]:
    """Every key file, damaged ones too: one that is damaged, or names an unknown KDF, must
    not lock out the passwords of the others."""
    return [_stored_key(backend, info.key) for info in backend.list("keys/")]


def _stored_key(backend: Backend, key: str) -> StoredKey:
    name, data = key.removeprefix("keys/"), backend.get(key)
    try:
        record = msgspec.json.decode(data, type=KeyFile)
    except msgspec.MsgspecError:
        return StoredKey(name, data, None, None, "unreadable")
    try:
        return StoredKey(name, data, record, record.params(), "")
    except UnsupportedFormat as e:
        return StoredKey(name, data, record, None, str(e))


_lock = threading.Lock()
_ahead: dict[tuple[bytes, _Derivation], Future[bytes]] = {}


def derive_ahead(open_backend: Callable[[], Backend], password: bytes) -> None:
    """Derive ``password``'s key for every key file of a repository, on a daemon thread
    (a command that fails first exits at once). Failures are left to the real unlock, which
    meets them again and reports them."""

    def run() -> None:
        try:
            params = [k.params for k in read_key_files(open_backend()) if k.params]
        except Exception:  # no repository, a store that fails: the unlock says so
            return
        futures: list[tuple[KdfParams, Future[bytes]]] = []
        with _lock:  # all promised before any is derived: the unlock waits, never repeats
            for p in params:
                futures.append((p, _ahead.setdefault((password, p), Future())))
        for p, future in futures:
            try:
                future.set_result(p.compute(password))
            except Exception as e:  # raised again in the unlock that waits for it
                future.set_exception(e)

    threading.Thread(target=run, name="snapfs-kdf", daemon=True).start()
