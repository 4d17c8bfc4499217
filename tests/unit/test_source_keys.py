"""The key <-> path mapping of S3 sources (snapfs/sources/keys.py): every name it makes is a
valid path name, unique in its directory, and the keys come back exactly from the paths."""

from __future__ import annotations

import random
from typing import Any

import pytest

from snapfs.sources.keys import (
    NAME_MAX,
    Item,
    decode_names,
    decode_segment,
    encode_key,
    encode_segment,
    plan_level,
)

HOSTILE = [
    "a//b", "/lead", "trail/", "//", "/", ".", "..", "./x", "../x", "a/./b", "a/../b", "a/.",
    "a/..", "%", "%25", "%2E", "%2E%2E", "%+", "%=", "a%+", "a%=", "100%", "nul\0byte", "\0",
    "é/ü/日本", "x" * 600, "é" * 400, "%" * 300, "ab/" + "c" * 1000, "." * 254 + "/f",
    "y" * 253 + ".", "y" * 253 + "..", "z" * 252 + "é", "q" * 251 + "%", "dir", "dir/",
    "dir/file", "dir/file/more", "dir" + "/" * 5 + "end", "x" * 253, "x" * 254,
]  # fmt: skip


def tree_of(keys: list[str]) -> dict[str, list[bytes]]:
    """Lay ``keys`` out as a listing with delimiter "/" would, level by level, through
    plan_level: key -> its path names. Checks every directory's names on the way."""
    paths: dict[str, list[bytes]] = {}

    def level(items: list[Item[Any]], path: list[bytes]) -> None:
        placed = plan_level(items)
        names = [p.name for p in placed]
        assert names == sorted(names) and len(set(names)) == len(names)
        for p in placed:
            assert_valid(p.name)
            if p.continued:
                level(list(p.continued), [*path, p.name])
            elif p.is_dir:
                assert p.payload is not None
                prefix, below = p.payload
                level(listing(prefix, below), [*path, p.name])
            else:
                assert isinstance(p.payload, str)
                paths[p.payload] = [*path, p.name]

    def listing(prefix: str, keys: list[str]) -> list[Item[Any]]:
        files = [k for k in keys if "/" not in k[len(prefix) :]]
        subdirs: dict[str, list[str]] = {}
        for k in keys:
            rest = k[len(prefix) :]
            if "/" in rest:
                subdirs.setdefault(prefix + rest.split("/")[0] + "/", []).append(k)
        return [Item(encode_segment(k[len(prefix) :]), False, k) for k in files] + [
            Item(encode_segment(sub[len(prefix) : -1]), True, (sub, below))
            for sub, below in subdirs.items()
        ]

    level(listing("", keys), [])
    return paths


def assert_valid(name: bytes) -> None:
    assert name not in (b"", b".", b"..")
    assert b"/" not in name and b"\0" not in name
    assert len(name) <= NAME_MAX


def test_hostile_keys_round_trip() -> None:
    paths = tree_of(HOSTILE)
    assert set(paths) == set(HOSTILE)
    for key, names in paths.items():
        assert decode_names(names) == key


def test_exact_names() -> None:
    paths = tree_of(["a//b", "a/./c", "a/../d", "a/", "100%", "dir", "dir/f", "n\0l"])
    assert paths["a//b"] == [b"a", b"%", b"b"]
    assert paths["a/./c"] == [b"a", b"%2E", b"c"]
    assert paths["a/../d"] == [b"a", b"%2E%2E", b"d"]
    assert paths["a/"] == [b"a", b"%%="]  # "a/" beside the directory "a//"
    assert tree_of(["a/"])["a/"] == [b"a", b"%"]
    assert paths["100%"] == [b"100%25"]
    assert paths["dir"] == [b"dir%="]  # a file beside the directory of the same name
    assert paths["dir/f"] == [b"dir", b"f"]
    assert paths["n\0l"] == [b"n%00l"]
    assert encode_key("a//b") == [b"a", b"%", b"b"]


def test_long_names_continue_in_directories() -> None:
    key = "x" * 600
    names = tree_of([key])[key]
    assert [len(n) for n in names] == [255, 255, 600 - 2 * 253]
    assert names[0] == b"x" * 253 + b"%+"
    assert decode_names(names) == key
    # cuts fall between characters and escapes, and never leave "." or ".." behind
    for key in ("é" * 400, "%" * 300, "y" * 253 + ".", "y" * 253 + ".."):
        names = tree_of([key])[key]
        for name in names:
            name.decode("utf-8")
        assert decode_names(names) == key


def test_long_file_beside_long_directory() -> None:
    long = "L" * 300
    paths = tree_of([long, long + "/inside"])
    assert paths[long][-1].endswith(b"%=")
    assert paths[long][:-1] == paths[long + "/inside"][:-2]
    assert decode_names(paths[long]) == long


@pytest.mark.parametrize(
    "name", [b"%", b"%2", b"%41", b"%2e", b"a%2Eb", b".", b"%25%", b"\xff", b"x%+"]
)
def test_decoding_refuses_names_the_mapping_never_makes(name: bytes) -> None:
    if name == b"x%+":
        with pytest.raises(ValueError, match="inside a continued name"):
            decode_names([name])
        return
    if name == b"%":
        assert decode_segment(name) == ""  # the empty segment
        return
    with pytest.raises(ValueError):
        decode_segment(name)


def test_random_keys_round_trip() -> None:
    """Property-style: keys drawn from an alphabet heavy in '/', '.', '%', NUL and
    multi-byte characters, some very long; every set lays out validly and decodes back."""
    rng = random.Random(17)
    alphabet = ["/", "/", "/", ".", ".", "%", "+", "=", "\0", "a", "b", "é", "日", "\U0001f600"]
    for _ in range(300):
        keys = set()
        for _ in range(rng.randint(1, 30)):
            length = rng.choice([1, 2, 3, 5, 8, 20, 260, 700])
            keys.add("".join(rng.choice(alphabet) for _ in range(length)))
        paths = tree_of(sorted(keys))
        assert set(paths) == keys
        for key, names in paths.items():
            assert decode_names(names) == key
        # every segment on its own decodes to itself
        for key in keys:
            for segment in key.split("/"):
                assert decode_segment(encode_segment(segment)) == segment
