"""Key files planted in ``keys/`` (clear JSON anyone with write access may add): a cost
outside the bounds is passed over, and a costly one inside them waits behind cheaper ones."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
import pytest

from snapfs.crypto import content_id
from snapfs.errors import UnsupportedFormat, WrongPassword
from snapfs.kdf import KeyFile, read_key_files
from snapfs.repository import Repository
from snapfs.store.local import LocalBackend
from tests.conftest import CHEAP_KDF, PASSWORD

B64_16 = base64.b64encode(bytes(16)).decode()
WRAPPED = base64.b64encode(bytes(92)).decode()


def _key(**fields: object) -> KeyFile:
    values: dict[str, object] = {
        "kdf": "argon2id", "memory": 64, "iterations": 1, "lanes": 1, "salt": B64_16,
        "wrapped": WRAPPED, "created": "2026-01-01T00:00:00+00:00", "host": "h", "user": "u",
    }  # fmt: skip
    values.update(fields)
    return KeyFile(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"memory": 16 * 1024 * 1024}, "argon2id with 16777216 KiB of memory and 1 iterations"),
        ({"iterations": 2**32 - 1}, "argon2id with 4294967295 iterations and 1 lanes"),
        ({"memory": 2 * 1024 * 1024, "iterations": 3}, "argon2id with 2097152 KiB of memory and "
         "3 iterations"),
        ({"lanes": 0}, "argon2id with 1 iterations and 0 lanes"),
        ({"memory": 7}, "argon2id with 7 KiB of memory and 1 iterations"),
        ({"kdf": "scrypt", "n": 3, "r": 8, "p": 1}, "scrypt with n=3, r=8"),
        ({"kdf": "scrypt", "n": 2**30, "r": 8, "p": 1}, "scrypt with n=1073741824, r=8"),
        ({"kdf": "scrypt", "n": 2**20, "r": 32, "p": 1}, "scrypt with n=1048576, r=32, p=1"),
        ({"kdf": "scrypt", "n": 2**16, "r": 8, "p": 2**20}, "scrypt with n=65536, r=8, "
         "p=1048576"),
        ({"salt": "not base64!"}, "a field that is not base64"),
        ({"salt": base64.b64encode(b"short").decode()}, "a salt of 5 bytes"),
        ({"wrapped": B64_16}, "a wrapped key of the wrong size"),
    ],
)  # fmt: skip
def test_a_key_file_outside_the_bounds_is_unsupported(fields: dict[str, object], why: str) -> None:
    with pytest.raises(UnsupportedFormat, match=f"^unsupported key file: {why}$"):
        _key(**fields).params()


def _plant(root: Path, record: KeyFile) -> str:
    """Store ``record`` where the store lists it before every other key file, under its own
    BLAKE3 as the format says: other salts until one is listed first."""
    for i in range(1000):
        salt = base64.b64encode(i.to_bytes(16, "big")).decode()
        data = json.dumps({**json.loads(msgspec.json.encode(record)), "salt": salt}).encode()
        path = root / "keys" / content_id(data)
        path.write_bytes(data)
        if next(iter(LocalBackend(root).list("keys/"))).key == f"keys/{path.name}":
            return path.name
        path.unlink()
    raise AssertionError("no key file was listed first")


def test_a_planted_key_file_locks_no_one_out(tmp_path: Path) -> None:
    real = Repository.init(LocalBackend(tmp_path), PASSWORD, kdf=CHEAP_KDF)
    real.close()
    planted = _plant(tmp_path, _key(memory=16 * 1024 * 1024))
    with Repository.open(LocalBackend(tmp_path), PASSWORD) as repo:
        assert repo.key_id == real.key_id
        assert f"key file {planted[:8]}: unsupported key file: argon2id with 16777216 KiB of " \
               "memory and 1 iterations" in repo.key_problems()  # fmt: skip
    with pytest.raises(WrongPassword, match=r"^wrong password or no key found for it$"):
        Repository.open(LocalBackend(tmp_path), "wrong")


def test_a_costly_key_file_inside_the_bounds_is_tried_after_cheaper_ones(tmp_path: Path) -> None:
    real = Repository.init(LocalBackend(tmp_path), PASSWORD, kdf=CHEAP_KDF)
    real.close()
    costly = _plant(tmp_path, _key(memory=1024 * 1024, iterations=2))
    order = [k.id for k in read_key_files(LocalBackend(tmp_path))]
    assert order == [real.key_id, costly]
