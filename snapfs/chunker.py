"""Content-defined chunking (FastCDC 2020 via pyfastcdc), seeded per repository so that chunk
boundaries do not reveal to the store which well-known files a repository holds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    """Chosen by measurement on lake data (docs/FORMAT.md, "Chunk size"). pyfastcdc's
    effective average is about avg_size + min_size (cut-point skipping)."""

    min_size: int = 16 * 1024
    avg_size: int = 64 * 1024
    max_size: int = 512 * 1024
    seed: int = 0


class Chunker:
    """Not thread-safe: one per thread (pyfastcdc keeps state per instance)."""

    def __init__(self, params: ChunkerParams) -> None:
        # Loaded by the first chunker: restore, mount and ls never chunk (~7 ms, cold).
        from pyfastcdc.cy import FastCDC

        self._cdc = FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            seed=params.seed,
        )

    def chunks(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Chunks of ``stream`` in order. Each view is valid only until the next is taken."""
        for chunk in self._cdc.cut_stream(stream):
            yield chunk.data

    def chunk_buffer(self, buf: bytes | memoryview) -> Iterator[memoryview]:
        for chunk in self._cdc.cut_buf(buf):
            yield chunk.data
