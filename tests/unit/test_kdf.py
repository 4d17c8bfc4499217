"""The password KDFs: Argon2id gives the reference implementation's keys, scrypt key files
written before it became the default still open, an unknown KDF is refused by name, and
derivations started ahead of an unlock are used by it, not repeated."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from snapfs import kdf
from snapfs.errors import RepositoryNotFound, UnsupportedFormat, WrongPassword
from snapfs.kdf import Argon2Params, ScryptParams, derive_ahead, new_salt
from snapfs.repository import Repository
from snapfs.store.local import LocalBackend
from tests.conftest import CHEAP_KDF, PASSWORD


@pytest.mark.parametrize(
    ("params", "password", "expected"),
    [
        (
            Argon2Params(b"snapfs-test-salt-0123456789abcdef"),
            b"correct horse",
            "992518426c80137ebc05e47fbaffd49e696486538dd63d846ab72ca4053ed03d",
        ),
        (
            Argon2Params(b"0123456789abcdef", memory_kib=64, iterations=2, lanes=2),
            b"pw",
            "414f52d8bda4893149f5c76411027dad7d7c9f7e86f25770ac7b55faa2ea553b",
        ),
    ],
)
def test_argon2id_keys_are_those_of_the_reference_implementation(
    params: Argon2Params, password: bytes, expected: str
) -> None:
    """The expected keys come from argon2-cffi (the PHC reference C code), not from the
    library snapfs calls."""
    assert params.derive(password).hex() == expected


def test_scrypt_keys_match_those_of_repositories_made_with_cryptography_scrypt() -> None:
    params = ScryptParams(n=2**12, r=8, p=2, salt=new_salt())
    before = Scrypt(salt=params.salt, length=32, n=2**12, r=8, p=2).derive(b"pw")
    assert params.derive(b"pw") == before


def _key_file(repo: Path) -> tuple[Path, dict[str, object]]:
    (path,) = (repo / "keys").iterdir()
    return path, json.loads(path.read_bytes())


def test_a_new_repository_wraps_its_key_with_argon2id(tmp_path: Path) -> None:
    Repository.init(LocalBackend(tmp_path), PASSWORD).close()
    _path, record = _key_file(tmp_path)
    costs = {k: record[k] for k in ("kdf", "memory", "iterations", "lanes")}
    assert costs == {"kdf": "argon2id", "memory": 47104, "iterations": 1, "lanes": 1}
    assert not {"n", "r", "p"} & record.keys()
    Repository.open(LocalBackend(tmp_path), PASSWORD).close()


def test_a_repository_whose_key_file_uses_scrypt_still_opens(tmp_path: Path) -> None:
    Repository.init(LocalBackend(tmp_path), PASSWORD, kdf=ScryptParams(n=2**10)).close()
    _path, record = _key_file(tmp_path)
    assert (record["kdf"], record["n"], record["r"], record["p"]) == ("scrypt", 1024, 8, 1)
    assert not {"memory", "iterations", "lanes"} & record.keys()
    Repository.open(LocalBackend(tmp_path), PASSWORD).close()
    with pytest.raises(WrongPassword, match=r"^wrong password or no key found for it$"):
        Repository.open(LocalBackend(tmp_path), "wrong")


def test_an_unknown_key_derivation_is_named(tmp_path: Path) -> None:
    Repository.init(LocalBackend(tmp_path), PASSWORD, kdf=CHEAP_KDF).close()
    path, record = _key_file(tmp_path)
    path.write_text(json.dumps({**record, "kdf": "balloon"}))
    with pytest.raises(UnsupportedFormat, match=r"^key derivation 'balloon' is not supported$"):
        Repository.open(LocalBackend(tmp_path), PASSWORD)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = Argon2Params.compute

    def counted(self: Argon2Params, password: bytes) -> bytes:
        calls.append(password)
        return real(self, password)

    monkeypatch.setattr(Argon2Params, "compute", counted)
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


def test_derivations_ahead_stop_once_the_repository_is_unlocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three key files of one password: the first derivation is held until the repository
    is unlocked (as by the first key), then the other two are never computed; an unlock
    leaves no derivation waiting."""
    repo = Repository.init(LocalBackend(tmp_path), PASSWORD, kdf=CHEAP_KDF)
    repo.add_key(PASSWORD, CHEAP_KDF)
    repo.add_key(PASSWORD, CHEAP_KDF)
    repo.close()
    gate, calls = threading.Event(), []
    real = Argon2Params.compute

    def held(self: Argon2Params, password: bytes) -> bytes:
        calls.append(password)
        gate.wait(10)
        return real(self, password)

    monkeypatch.setattr(Argon2Params, "compute", held)
    derive_ahead(lambda: LocalBackend(tmp_path), PASSWORD.encode())
    _wait_until_promised()
    kdf.unlocked(PASSWORD.encode())
    gate.set()
    for t in [t for t in threading.enumerate() if t.name == "snapfs-kdf"]:
        t.join(10)
    assert (len(calls), kdf._ahead) == (1, {})  # the first began before the unlock
    derive_ahead(lambda: LocalBackend(tmp_path), PASSWORD.encode())
    _wait_until_promised()
    Repository.open(LocalBackend(tmp_path), PASSWORD).close()
    assert not kdf._ahead  # the unlock dropped the two it did not need


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
