"""A repository config that authenticates but does not decode as one (written by a newer
version, or by someone holding a password) is refused with one clear error, not an
exception no face expects."""

from __future__ import annotations

import msgspec
import pytest

from snapfs.errors import UnsupportedFormat
from snapfs.repository import Repository
from snapfs.store.memory import MemoryBackend
from tests.conftest import CHEAP_KDF, PASSWORD


@pytest.mark.parametrize("plain", [b"\xc1", msgspec.msgpack.encode({"version": "one"})])
def test_a_config_that_does_not_decode_is_unsupported(plain: bytes) -> None:
    backend = MemoryBackend()
    repo = Repository.init(backend, PASSWORD, kdf=CHEAP_KDF)
    backend.delete("config")
    backend.put("config", repo.key.seal(plain))
    repo.close()
    with pytest.raises(UnsupportedFormat, match=r"^the repository config does not decode \("):
        Repository.open(backend, PASSWORD)
