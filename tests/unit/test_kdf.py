"""The password KDF: the same keys as before it moved to hashlib, and derivations started
ahead of an unlock are used by it, not repeated."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from snapfs import kdf
from snapfs.errors import RepositoryNotFound, WrongPassword
from snapfs.kdf import KdfParams, derive_ahead, new_salt
from snapfs.repository import Repository
from snapfs.store.local import LocalBackend
from tests.conftest import CHEAP_KDF, PASSWORD


def test_keys_match_those_of_repositories_made_with_cryptography_scrypt() -> None:
    params = KdfParams(n=2**12, r=8, p=2, salt=new_salt())
    before = Scrypt(salt=params.salt, length=32, n=2**12, r=8, p=2).derive(b"pw")
    assert params.derive(b"pw") == before


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = KdfParams._scrypt

    def counted(self: KdfParams, password: bytes) -> bytes:
        calls.append(password)
        return real(self, password)

    monkeypatch.setattr(KdfParams, "_scrypt", counted)
    return calls


def _wait_until_promised() -> None:
    deadline = time.monotonic() + 10
    while not kdf._ahead:
        assert time.monotonic() < deadline, "derive_ahead promised nothing"
        time.sleep(0.001)


def test_an_unlock_takes_the_key_derived_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Repository.init(LocalBackend(tmp_path), PASSWORD, kdf=CHEAP_KDF).close()
    calls = _counting(monkeypatch)
    derive_ahead(lambda: LocalBackend(tmp_path), PASSWORD.encode())
    _wait_until_promised()
    Repository.open(LocalBackend(tmp_path), PASSWORD).close()
    assert calls == [PASSWORD.encode()]
    assert not kdf._ahead


def test_a_wrong_password_derived_ahead_is_still_refused(tmp_path: Path) -> None:
    Repository.init(LocalBackend(tmp_path), PASSWORD, kdf=CHEAP_KDF).close()
    derive_ahead(lambda: LocalBackend(tmp_path), b"wrong")
    _wait_until_promised()
    with pytest.raises(WrongPassword, match=r"^wrong password or no key found for it$"):
        Repository.open(LocalBackend(tmp_path), "wrong")


def test_no_repository_leaves_the_error_to_the_unlock(tmp_path: Path) -> None:
    derive_ahead(lambda: LocalBackend(tmp_path / "none"), PASSWORD.encode())
    with pytest.raises(RepositoryNotFound):
        Repository.open(LocalBackend(tmp_path / "none"), PASSWORD)
