from __future__ import annotations

import os

import pytest

from snapfs.crypto import SEAL_OVERHEAD, MasterKey
from snapfs.errors import IntegrityError, WrongPassword
from snapfs.kdf import Argon2Params, new_salt


def test_seal_round_trips_and_compresses_when_it_pays() -> None:
    key = MasterKey.generate()
    text = b"date,customer,amount\n" * 10_000
    sealed = key.seal(text)
    assert len(sealed) < len(text) // 10
    assert key.open(sealed) == text
    noise = os.urandom(100_000)
    sealed_noise = key.seal(noise)
    assert len(sealed_noise) == len(noise) + SEAL_OVERHEAD  # stored raw
    assert key.open(sealed_noise) == noise


def test_flipped_bit_fails_authentication() -> None:
    key = MasterKey.generate()
    sealed = bytearray(key.seal(b"payload" * 100))
    sealed[20] ^= 1
    with pytest.raises(IntegrityError, match="authentication failed"):
        key.open(bytes(sealed))


def test_blob_ids_are_keyed() -> None:
    a, b = MasterKey.generate(), MasterKey.generate()
    assert a.blob_id(b"same") == a.blob_id(b"same") != b.blob_id(b"same")


def test_wrong_password_is_reported() -> None:
    key = MasterKey.generate()
    params = Argon2Params(memory_kib=64, salt=new_salt())
    wrapped = key.wrap(b"right", params)
    assert MasterKey.unwrap(wrapped, b"right", params).material == key.material
    with pytest.raises(WrongPassword):
        MasterKey.unwrap(wrapped, b"wrong", params)
