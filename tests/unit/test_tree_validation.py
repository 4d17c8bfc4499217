"""Tree validation as a pure function: what a crafted tree blob may hold, and what a reader
is given instead."""

from __future__ import annotations

import msgspec
import pytest

from snapfs.errors import IntegrityError
from snapfs.tree import (
    DIR,
    MAX_TREE_ENTRIES,
    SYMLINK,
    Tree,
    TreeProblem,
    decode_tree,
    encode_tree,
    validate,
)
from tests.crafted import node

SUBTREE = bytes(32)


def test_a_clean_tree_passes_as_it_is_and_encodes_as_before() -> None:
    nodes = [node(b"a"), node(b"b", DIR, subtree=SUBTREE), node(b"c", SYMLINK, target=b"a")]
    tree = decode_tree(encode_tree(nodes))
    assert validate(tree) is tree
    # The stored form is exactly the nodes array inside an array, as before validation:
    # tree ids of existing repositories stay the same.
    assert encode_tree(nodes) == msgspec.msgpack.encode([nodes])


@pytest.mark.parametrize(
    "name", [b"", b".", b"..", b"../x", b"a/../../x", b"a/b", b"a\0b", b"a" * 256]
)
def test_a_name_no_file_system_allows_is_refused(name: bytes) -> None:
    tree = validate(Tree([node(name), node(b"kept")]))
    assert [n.name for n in tree.nodes] == [b"kept"]
    assert tree.problems == (TreeProblem(name, "a name no file system allows"),)


def test_a_name_of_255_bytes_passes() -> None:
    tree = Tree([node(b"x" * 255)])
    assert validate(tree) is tree


def test_a_name_met_twice_keeps_the_first() -> None:
    first, second = node(b"twice", size=1), node(b"twice", size=2)
    tree = validate(Tree([first, second]))
    assert tree.nodes == [first]
    assert tree.problems == (TreeProblem(b"twice", "a name that appears twice"),)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (node(b"x", "whiteout"), "an unknown type 'whiteout'"),
        (node(b"x", DIR), "a directory without a subtree"),
        (node(b"x", subtree=SUBTREE), "a file with a subtree"),
        (node(b"x", SYMLINK, target=b"a\0b"), "a symlink target or xattr name holding NUL, "
         "or a device number past 64 bits"),
        (node(b"x", xattrs=[(b"user.\0", b"v")]), "a symlink target or xattr name holding "
         "NUL, or a device number past 64 bits"),
    ],
)  # fmt: skip
def test_an_entry_of_no_real_shape_is_refused(entry: object, message: str) -> None:
    tree = validate(Tree([entry, node(b"y")]))  # type: ignore[list-item]
    assert [n.name for n in tree.nodes] == [b"y"]
    assert tree.problems == (TreeProblem(b"x", message),)


def test_entries_out_of_order_are_sorted_and_the_directory_named() -> None:
    """``find`` bisects: unsorted, it would miss entries that a listing shows."""
    tree = validate(Tree([node(b"b"), node(b"a")]))
    assert [n.name for n in tree.nodes] == [b"a", b"b"]
    assert tree.find(b"a") is not None
    assert tree.problems == (TreeProblem(None, "entries out of name order"),)


def test_bytes_that_are_no_tree_are_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match=r"^not a valid tree \("):
        decode_tree(b"\x93\x01\x02\x03")


@pytest.mark.parametrize(
    ("field", "value"),
    [("uid", 2**32), ("mode", 0o17777), ("size", -1), ("mtime_ns", 2**63), ("links", -1)],
)
def test_a_number_no_file_system_holds_fails_the_tree(field: str, value: int) -> None:
    data = msgspec.msgpack.encode([[node(b"x", "file", **{field: value})]])
    with pytest.raises(IntegrityError, match=r"^not a valid tree \(Expected `int`"):
        decode_tree(data)


def test_a_tree_claiming_more_entries_than_allowed_is_refused_before_decoding() -> None:
    header = b"\x91\xdd" + (MAX_TREE_ENTRIES + 1).to_bytes(4, "big")
    with pytest.raises(IntegrityError, match=f"^tree of more than {MAX_TREE_ENTRIES} entries$"):
        decode_tree(header + b"\xc0" * 16)
