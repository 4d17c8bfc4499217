"""Object keys <-> path names: an exact, reversible mapping (docs/FORMAT.md, "Trees of S3 sources").

A key below a source prefix is split at every ``/`` into segments; all but the last name
directories, the last names the file. Each segment becomes one path name:
- its UTF-8 bytes with ``%`` written ``%25`` and NUL written ``%00``;
- the whole segment ``""`` is ``%``, ``.`` is ``%2E`` and ``..`` is ``%2E%2E``;
- a name longer than PIECE bytes is cut (at a character boundary, never inside an escape,
  never leaving ``.`` or ``..`` behind) into pieces: each but the last gets ``%+`` appended
  and becomes a directory holding the next piece ("continues in the entry below");
- a file whose name equals a directory's in the same directory (the key ``a`` beside the
  keys ``a/...``) gets ``%=`` appended.
Every ``%`` a name holds is thus one of ``%25``, ``%00``, a whole-name form, or a marker at
its end, so decoding is unambiguous; ``decode_name`` refuses anything else. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from snapfs.tree import NAME_MAX as NAME_MAX  # re-exported: the limit every name here keeps

CONTINUES = b"%+"
BESIDE_DIR = b"%="
EMPTY_SEGMENT = b"%"  # the name of a key's empty segment: a folder marker's file (``a/``)
# A piece leaves room for a marker, so a name with one never passes NAME_MAX.
PIECE = NAME_MAX - len(CONTINUES)
_WHOLE = {"": EMPTY_SEGMENT, ".": b"%2E", "..": b"%2E%2E"}
_WHOLE_BACK = {v: k for k, v in _WHOLE.items()}
_INNER = {b"25": b"%", b"00": b"\0"}

T = TypeVar("T")


def encode_segment(segment: str) -> bytes:
    """One key segment (no ``/``) as a name, before cutting and collision marking: possibly
    longer than NAME_MAX."""
    if segment in _WHOLE:
        return _WHOLE[segment]
    return segment.encode("utf-8").replace(b"%", b"%25").replace(b"\0", b"%00")


def decode_segment(encoded: bytes) -> str:
    """The segment ``encode_segment`` made ``encoded`` from. ValueError when no segment
    encodes to it."""
    if encoded in _WHOLE_BACK:
        return _WHOLE_BACK[encoded]
    parts = encoded.split(b"%")
    out = bytearray(parts[0])
    for part in parts[1:]:
        escaped = _INNER.get(part[:2])
        if escaped is None:
            raise ValueError(f"{encoded!r} is no encoded key segment")
        out += escaped
        out += part[2:]
    segment = out.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if encode_segment(segment) != encoded:  # "." written plainly, say
        raise ValueError(f"{encoded!r} is no encoded key segment")
    return segment


def decode_names(names: Iterable[bytes]) -> str:
    """The key (below the source prefix) of the file at path ``names`` (its path names
    below the prefix's directory, in order). A directory's key prefix is this plus ``/``.
    ValueError when some name is none this mapping makes."""
    segments: list[str] = []
    pending = b""
    for name in names:
        if name.endswith(CONTINUES):
            pending += name[: -len(CONTINUES)]
            continue
        whole = pending + name
        pending = b""
        segments.append(decode_segment(whole.removesuffix(BESIDE_DIR)))
    if pending:
        raise ValueError("a path ends inside a continued name")
    return "/".join(segments)


def encode_key(key: str) -> list[bytes]:
    """The path names of ``key`` when no file in it stands beside a same-named directory
    (``plan_level`` marks those, since that depends on the other keys)."""
    names: list[bytes] = []
    for segment in key.split("/"):
        names += cut(encode_segment(segment))
    return names


def cut(encoded: bytes) -> list[bytes]:
    """``encoded`` as names of at most NAME_MAX bytes: pieces ending in ``%+`` (directories),
    then the rest."""
    names: list[bytes] = []
    while len(encoded) > PIECE:
        at = _cut_point(encoded)
        names.append(encoded[:at] + CONTINUES)
        encoded = encoded[at:]
    names.append(encoded)
    return names


def _cut_point(encoded: bytes) -> int:
    """The largest cut at most PIECE bytes in that splits no character and no escape and
    leaves neither ``.`` nor ``..`` as the rest (a rest of PIECE+1 bytes or more is neither)."""
    at = PIECE
    while True:
        splits_char = 0x80 <= encoded[at] < 0xC0  # a UTF-8 continuation byte
        splits_escape = b"%" in encoded[max(0, at - 2) : at]
        rest = encoded[at:]
        if not (splits_char or splits_escape or rest in (b".", b"..")):
            return at
        at -= 1


@dataclass(frozen=True, slots=True)
class Item(Generic[T]):
    """One entry of a listing level: its encoded segment, or the rest of one not yet placed,
    whether it is a directory, and what the caller needs to find it again."""

    encoded: bytes
    is_dir: bool
    payload: T


@dataclass(frozen=True, slots=True)
class Placed(Generic[T]):
    """An entry of a directory as the mapping names it: a listed file or directory
    (``payload``), or a directory made to continue a long name (``continued``: its items)."""

    name: bytes
    is_dir: bool
    payload: T | None
    continued: tuple[Item[T], ...] = ()


def plan_level(items: Iterable[Item[T]]) -> list[Placed[T]]:
    """The entries of one directory, sorted by name, for the items of one listing level (or
    of one continuation directory). Names are unique, valid path names of at most NAME_MAX
    bytes, provided the items' encoded segments are distinct for each kind, as a listing's
    are."""
    whole: list[Item[T]] = []
    long: dict[bytes, list[Item[T]]] = {}
    for item in items:
        if len(item.encoded) <= PIECE:
            whole.append(item)
        else:
            at = _cut_point(item.encoded)
            rest = Item(item.encoded[at:], item.is_dir, item.payload)
            long.setdefault(item.encoded[:at] + CONTINUES, []).append(rest)
    dirs = {item.encoded for item in whole if item.is_dir}
    placed = [
        Placed(
            item.encoded + BESIDE_DIR if not item.is_dir and item.encoded in dirs else item.encoded,
            item.is_dir,
            item.payload,
        )
        for item in whole
    ]
    placed += [Placed(name, True, None, tuple(rest)) for name, rest in long.items()]
    placed.sort(key=lambda p: p.name)
    return placed
