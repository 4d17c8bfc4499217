"""A re-backup against its parent snapshot: what it reuses, and a parent it cannot read."""

from __future__ import annotations

from pathlib import Path

from snapfs.repository import Repository
from snapfs.store.url import open_backend
from snapfs.walk import resolve
from tests.conftest import PASSWORD, Cli
from tests.helpers import assert_same_tree


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for d in ("kept", "hurt"):
        (src / d).mkdir(parents=True)
        for i in range(5):
            (src / d / f"f{i}.csv").write_text(f"{d},{i}\n" * (i + 1))
    return src


def _damage_tree_of(repo_path: Path, path: Path) -> None:
    """Flip a byte inside the stored tree blob of the directory ``path`` (latest snapshot)."""
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        snap = repo.find_snapshot("latest")
        node = resolve(repo, bytes.fromhex(snap.tree), str(path))
        assert node is not None and node.subtree is not None
        entry = repo.blob_entry(node.subtree)
    pack = repo_path / "data" / entry.pack_id[:2] / entry.pack_id
    with pack.open("r+b") as f:
        f.seek(entry.offset + entry.length // 2)
        byte = f.read(1)
        f.seek(entry.offset + entry.length // 2)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_a_damaged_parent_tree_is_warned_about_and_its_directory_backed_up_anew(
    cli: Cli, repo_path: Path, tmp_path: Path
) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src), check=True)
    _damage_tree_of(repo_path, src / "hurt")
    (src / "hurt" / "f0.csv").write_text("changed after the first backup\n")

    result = cli.run("backup", str(src))

    assert result.returncode == 3, result.stderr.decode()
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"warning: {src / 'hurt'}: the parent snapshot's tree is unreadable, backed up anew: "
    )
    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), check=True)
    assert_same_tree(src, out / src.relative_to("/"))


def test_a_directory_is_reused_only_when_every_entry_equals_the_parents(
    cli: Cli, tmp_path: Path
) -> None:
    src = _source(tmp_path)
    cli.run("backup", str(src), check=True)
    (src / "kept").chmod(0o701)  # its entries are unchanged, its own node is not
    (src / "hurt" / "f1.csv").rename(src / "hurt" / "g1.csv")  # as many entries, one renamed

    cli.run("backup", str(src), check=True)

    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), check=True)
    assert_same_tree(src, out / src.relative_to("/"))
    assert (out / src.relative_to("/") / "kept").stat().st_mode & 0o777 == 0o701
