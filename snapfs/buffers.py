"""Byte-buffer types. Sealing and opening avoid copies, so plaintext and sealed data may be
``bytearray`` where a caller might expect ``bytes``; both are read-only by convention."""

Buffer = bytes | bytearray | memoryview
Data = bytes | bytearray
