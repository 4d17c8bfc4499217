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

# Key files are clear text anyone with write access to ``keys/`` can plant: a cost outside
# these bounds would lock every password out (16 GiB of memory) or hang the open (2^32 - 1
# passes), so such a file is passed over as unsupported. RFC 9106's first recommendation
# (2 GiB, one pass) is inside; the worst a key file may cost is about 4 GiB-passes.
ARGON2_MAX_MEMORY_KIB = 2 * 1024 * 1024
ARGON2_MAX_ITERATIONS = 16
ARGON2_MAX_LANES = 64
ARGON2_MAX_WORK_KIB = 4 * 1024 * 1024  # memory times iterations
SCRYPT_MAX_N = 2**22
SCRYPT_MAX_R = 32
SCRYPT_MAX_P = 16
SCRYPT_MAX_MEMORY = 2 << 30  # 128 * r * n bytes
SCRYPT_MAX_WORK = 4 << 30  # 128 * r * n * p
SALT_SIZES = range(8, 1025)
KEY_FILE_MAX_BYTES = 64 * 1024
KNOWN_KDFS = ("argon2id", "scrypt")
WRAPPED_SIZE = 12 + 64 + 16  # nonce, master key, tag


def _bounds_problem(record: KeyFile, salt: bytes) -> str:
    """Why ``record``'s cost is refused, or "" when it is inside the bounds."""
    if len(salt) not in SALT_SIZES:
        return f"a salt of {len(salt)} bytes"
    if record.kdf == "argon2id":
        m, t, lanes = record.memory, record.iterations, record.lanes
        if not 1 <= lanes <= ARGON2_MAX_LANES or not 1 <= t <= ARGON2_MAX_ITERATIONS:
            return f"argon2id with {t} iterations and {lanes} lanes"
        if not 8 * lanes <= m <= ARGON2_MAX_MEMORY_KIB or m * t > ARGON2_MAX_WORK_KIB:
            return f"argon2id with {m} KiB of memory and {t} iterations"
        return ""
    n, r, p = record.n, record.r, record.p
    if n < 2 or n & (n - 1) or n > SCRYPT_MAX_N or not 1 <= r <= SCRYPT_MAX_R:
        return f"scrypt with n={n}, r={r}"
    if not 1 <= p <= SCRYPT_MAX_P or 128 * r * n > SCRYPT_MAX_MEMORY:
        return f"scrypt with n={n}, r={r}, p={p}"
    if 128 * r * n * p > SCRYPT_MAX_WORK:
        return f"scrypt with n={n}, r={r}, p={p}"
    return ""


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
        """The KDF and its cost; UnsupportedFormat for an unknown KDF, or a cost, salt or
        wrapped key outside the bounds (so the open passes over this file)."""
        if self.kdf not in KNOWN_KDFS:
            raise UnsupportedFormat(f"key derivation {self.kdf!r} is not supported")
        salt = _base64(self.salt)
        why = _bounds_problem(self, salt)
        if not why and len(_base64(self.wrapped)) != WRAPPED_SIZE:
            why = "a wrapped key of the wrong size"
        if why:
            raise UnsupportedFormat(f"unsupported key file: {why}")
        if self.kdf == "argon2id":
            return Argon2Params(salt, self.memory, self.iterations, self.lanes)
        return ScryptParams(salt, self.n, self.r, self.p)

    def cost(self) -> int:
        """About how much work deriving this key takes (KiB-passes), to try cheap ones first."""
        if self.kdf == "argon2id":
            return self.memory * self.iterations
        return self.n * self.r * self.p // 8


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise UnsupportedFormat("unsupported key file: a field that is not base64") from None


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
    """Every key file, damaged ones too: one that is damaged, names an unknown KDF or costs
    more than the bounds must not lock out the passwords of the others. Cheapest first, so
    a planted costly key file (still inside the bounds) delays no cheaper one."""
    keys = [_stored_key(backend, info.key, info.size) for info in backend.list("keys/")]
    return sorted(keys, key=lambda k: (k.record.cost() if k.params and k.record else 0, k.id))


def _stored_key(backend: Backend, key: str, size: int) -> StoredKey:
    name = key.removeprefix("keys/")
    if size > KEY_FILE_MAX_BYTES:
        return StoredKey(name, b"", None, None, f"unsupported key file: {size} bytes")
    data = backend.get(key)
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
            if not future.set_running_or_notify_cancel():  # the repository is unlocked
                continue
            try:
                future.set_result(p.compute(password))
            except Exception as e:  # raised again in the unlock that waits for it
                future.set_exception(e)

    threading.Thread(target=run, name="snapfs-kdf", daemon=True).start()


def unlocked(password: bytes) -> None:
    """The key was found: the derivations for ``password`` not yet begun are dropped, so the
    thread of ``derive_ahead`` stops instead of spending a core on keys nobody will use."""
    with _lock:
        for k in [k for k in _ahead if k[0] == password]:
            _ahead.pop(k).cancel()
