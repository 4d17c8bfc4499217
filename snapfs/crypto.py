"""Keys, key wrapping, sealing and keyed blob ids.

A repository has one random master key: 32 bytes for AES-256-GCM and 32 bytes for the keyed
BLAKE3 that names blobs (so the store cannot confirm guessed content). A password unwraps the
master key through Argon2id (scrypt in older key files), whose parameters are stored in the
clear beside the wrapped key.

Sealed bytes are ``flag (1) || nonce (12) || AES-256-GCM(body)`` with the flag as associated
data (so it is authenticated): flag 1 means the body is zstd-compressed, 0 that it is stored
raw because compression did not pay. Sealing and opening encrypt into one preallocated
buffer, so a 128 KiB chunk is not copied on the way.
"""

from __future__ import annotations

import os
import threading

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snapfs.buffers import Buffer, Data
from snapfs.errors import IntegrityError, WrongPassword
from snapfs.kdf import KdfParams

NONCE_SIZE = 12
TAG_SIZE = 16
HEADER_SIZE = 1 + NONCE_SIZE
SEAL_OVERHEAD = HEADER_SIZE + TAG_SIZE
_RAW, _ZSTD = b"\x00", b"\x01"
# What any sealed object may decompress to unless its reader knows better (a blob's recorded
# raw length): a planted zstd frame of a few KiB must not claim gigabytes of memory.
MAX_SEALED_PLAIN = 1 << 30


_NONCES_AT_ONCE = 4096
_forks = [0]  # a forked child must never reuse nonces its parent drew
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


class _ThreadLocalCodecs(threading.local):
    """zstd (de)compressor objects are not thread-safe: one pair per thread. Nonces are
    drawn from the OS's CSPRNG many at a time: a system call per small blob cost more
    than encrypting it."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=1)
        self.decompressor = zstandard.ZstdDecompressor()
        self.nonces = b""
        self.at = 0
        self.fork = _forks[0]

    def nonce(self) -> bytes:
        if self.at >= len(self.nonces) or self.fork != _forks[0]:
            self.nonces, self.at = os.urandom(NONCE_SIZE * _NONCES_AT_ONCE), 0
            self.fork = _forks[0]
        self.at += NONCE_SIZE
        return self.nonces[self.at - NONCE_SIZE : self.at]


_codecs = _ThreadLocalCodecs()


class MasterKey:
    """The repository's secret. Thread-safe: seal/open/blob_id may run on many threads."""

    SIZE = 64

    def __init__(self, material: bytes) -> None:
        if len(material) != self.SIZE:
            raise ValueError("master key must be 64 bytes")
        self.material = material
        self._aead = AESGCM(material[:32])
        self._id_key = material[32:]

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(cls.SIZE))

    def blob_id(self, data: Buffer) -> bytes:
        """Keyed BLAKE3-256 of the plaintext: the blob's name."""
        return blake3.blake3(data, key=self._id_key).digest()

    def seal(self, data: Buffer, *, compress: bool = True) -> bytearray:
        """Compress (when it pays), then encrypt and authenticate."""
        flag, body = _RAW, data
        if compress and len(data) > 64:
            packed = _codecs.compressor.compress(data)
            if len(packed) < len(data) - len(data) // 64:
                flag, body = _ZSTD, packed
        out = bytearray(HEADER_SIZE + len(body) + TAG_SIZE)
        out[0:1] = flag
        nonce = _codecs.nonce()
        out[1:HEADER_SIZE] = nonce
        self._aead.encrypt_into(nonce, body, flag, memoryview(out)[HEADER_SIZE:])
        return out

    def open(self, sealed: Buffer, limit: int = MAX_SEALED_PLAIN) -> Data:
        """Authenticate, decrypt and decompress; IntegrityError when the bytes were altered
        or the plaintext would exceed ``limit`` bytes (checked before anything is allocated:
        the frame's stated size first, then zstd's own bound for frames that state none)."""
        view = memoryview(sealed)
        if len(view) < SEAL_OVERHEAD:
            raise IntegrityError("sealed data too short")
        flag = bytes(view[:1])
        try:
            body = self._aead.decrypt(view[1:HEADER_SIZE], view[HEADER_SIZE:], flag)
        except InvalidTag:
            raise IntegrityError("authentication failed") from None
        if flag == _ZSTD:
            return _decompress(body, limit)
        if flag != _RAW:
            raise IntegrityError("unknown compression flag")
        if len(body) > limit:
            raise IntegrityError(f"sealed data larger than its limit of {limit} bytes")
        return body

    def wrap(self, password: bytes, params: KdfParams) -> bytes:
        """The master key sealed under a password-derived key."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce + AESGCM(params.derive(password)).encrypt(nonce, self.material, None)

    @classmethod
    def unwrap(cls, wrapped: bytes, password: bytes, params: KdfParams) -> MasterKey:
        try:
            plain = AESGCM(params.derive(password)).decrypt(
                wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], None
            )
        except InvalidTag:
            raise WrongPassword("wrong password or no key found for it") from None
        return cls(plain)


def _decompress(body: bytes, limit: int) -> bytes:
    try:
        stated = zstandard.frame_content_size(body)
    except zstandard.ZstdError:
        raise IntegrityError("damaged compressed data") from None
    if stated > limit:  # -1: not stated; then max_output_size bounds the output
        raise IntegrityError(f"compressed data expands past its limit of {limit} bytes")
    try:
        # 0 would mean "no bound" to zstd: an empty blob never needs a frame anyway
        plain = _codecs.decompressor.decompress(body, max_output_size=max(limit, 1))
    except zstandard.ZstdError:
        raise IntegrityError(
            f"damaged compressed data, or it expands past its limit of {limit} bytes"
        ) from None
    if len(plain) > limit:
        raise IntegrityError(f"compressed data expands past its limit of {limit} bytes")
    return plain


def content_id(data: Buffer) -> str:
    """Unkeyed BLAKE3 hex of stored bytes (a pack's or file's name: anyone may verify it)."""
    return blake3.blake3(data).hexdigest()
