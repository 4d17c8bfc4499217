"""Restore never leaves its target: crafted snapshots (written through the project's own API,
as a compromised client could) and a target with a symlink planted by another local user.
Each test lists every entry around the target (modes, owners, sizes, mtimes, link targets)
before and after, and restores through the CLI as root does."""

from __future__ import annotations

import os
import pwd
import resource
import stat
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from snapfs.backup import backup
from snapfs.errors import IntegrityError, SnapfsError
from snapfs.events import BytesDone, FileDone, FileWarning
from snapfs.pack import BlobKind
from snapfs.repository import Repository, Writer
from snapfs.restore import DamagedFile, Limits, RestoreSource, remove_tree, restore
from snapfs.snapshot import Snapshot
from snapfs.store.url import open_backend
from snapfs.tree import DIR, FILE, SYMLINK, Node
from snapfs.walk import MAX_DEPTH, walk
from tests.conftest import PASSWORD, SNAPFS, Cli
from tests.helpers import assert_same_tree

T = 1_700_000_000_000_000_000


def _node(name: bytes, kind: str, **fields: object) -> Node:
    values: dict[str, object] = {
        "name": name, "type": kind, "mode": 0o755 if kind == DIR else 0o644, "uid": 0,
        "gid": 0, "user": "root", "group": "root", "mtime_ns": T, "ctime_ns": T,
    }  # fmt: skip
    values.update(fields)
    return Node(**values)  # type: ignore[arg-type]


def _file(w: Writer, name: bytes, data: bytes, **fields: object) -> Node:
    blob = w.add_blob(BlobKind.DATA, data)[0]
    return _node(name, FILE, size=len(data), content=[blob], **fields)


def _dir(w: Writer, name: bytes, nodes: list[Node], **fields: object) -> Node:
    return _node(name, DIR, subtree=w.save_tree(nodes), **fields)


def _snapshot(location: str, build: Callable[[Writer], list[Node]]) -> str:
    """A snapshot whose root holds the nodes ``build`` makes; returns its id."""
    with Repository.open(open_backend(location), PASSWORD) as repo, repo.writer() as w:
        root = w.save_tree(build(w))
        snap = Snapshot(time="2024-05-01T02:00:00+00:00", host="h", user="u",
                        paths=["/crafted"], tree=root.hex())  # fmt: skip
        return w.save_snapshot(snap).id


def _listing(root: Path, *, skip: Path | None = None) -> dict[str, tuple[object, ...]]:
    """Every entry below ``root`` (but ``skip``), followed nowhere: type, mode, owner, size,
    mtime, link target, and the contents of files."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            extra: object = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                extra = p.read_bytes()
            out[str(p.relative_to(root))] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_size,
                st.st_mtime_ns,
                st.st_nlink,
                extra,
            )
    st = root.stat()
    out["."] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    return out


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """A canary tree with the target three levels down: every escape lands in it."""
    world = tmp_path / "world"
    outside = world / "outside"
    (outside / "private").mkdir(parents=True)
    os.chmod(outside / "private", 0o700)
    (outside / "victim.txt").write_bytes(b"precious\n")
    os.chmod(outside / "victim.txt", 0o600)
    (outside / "private" / "key").write_bytes(b"secret\n")
    target = world / "a" / "b" / "target"
    target.mkdir(parents=True)
    (target / "keep.txt").write_bytes(b"not in the snapshot, so left alone\n")
    for p in (world / "a" / "b", world / "a", world, outside):
        os.utime(p, ns=(T, T))
    return world, target


def _warned(stderr: bytes, names: Iterable[str]) -> None:
    lines = [line for line in stderr.decode().splitlines() if line.startswith("warning: ")]
    for name in names:
        assert any(name in line for line in lines), (name, lines)


def _crafted_escapes(w: Writer, outside: Path) -> list[Node]:
    evil = b"evil\n"
    victim, private = os.fsencode(outside / "victim.txt"), os.fsencode(outside / "private")
    return [
        _file(w, b"../x", evil, mode=0o4755),
        _file(w, b"a/../../../../x", evil),
        _dir(w, b"..", [_file(w, b"dotdot-file", evil)], mode=0o1777),
        _file(w, b"", evil),
        _file(w, b".", evil),
        # a symlink "lnk" out of the target, then a directory "lnk" with a file inside
        _node(b"lnk", SYMLINK, target=private),
        _dir(w, b"lnk", [_file(w, b"planted", evil)], mode=0o1777),
        # a symlink out, then a file whose name goes through it
        _node(b"lnk2", SYMLINK, target=private),
        _file(w, b"lnk2/x", evil),
        # a file "x", then a symlink "x" to a file outside, with a set-uid mode on the node
        _file(w, b"x", b"inside\n"),
        _node(b"x", SYMLINK, target=victim, mode=0o4777),
        # a lone symlink to a file outside whose node asks for mode 4777: no chmod through it
        _node(b"s", SYMLINK, target=victim, mode=0o4777),
        # a symlink named ".." one level down
        _dir(w, b"sub", [_node(b"..", SYMLINK, target=b"/"), _file(w, b"ok", b"ok\n")]),
    ]


def test_crafted_names_and_symlinks_never_leave_the_target(
    cli: Cli, repo_location: str, world: tuple[Path, Path]
) -> None:
    root, target = world
    snap = _snapshot(repo_location, lambda w: _crafted_escapes(w, root / "outside"))
    before = _listing(root, skip=target)

    result = cli.run("restore", snap, "--target", str(target))

    assert _listing(root, skip=target) == before
    assert result.returncode == 3, result.stderr.decode()
    assert (target / "keep.txt").read_bytes() == b"not in the snapshot, so left alone\n"
    assert (target / "x").read_bytes() == b"inside\n"  # the first "x" won
    assert os.readlink(target / "lnk") == str(root / "outside" / "private")
    assert (target / "sub" / "ok").read_bytes() == b"ok\n"
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt", "lnk", "lnk2", "s", "sub", "x"]
    _warned(result.stderr, ["/../x", "/a/../../../../x", "/..", "/.", "/lnk", "/lnk2/x", "/x",
                            "/sub/.."])  # fmt: skip


def test_include_cannot_let_a_crafted_name_through(
    cli: Cli, repo_location: str, world: tuple[Path, Path]
) -> None:
    root, target = world
    snap = _snapshot(
        repo_location,
        lambda w: [_dir(w, b"safe", [_file(w, b"../../x", b"evil\n"), _file(w, b"y", b"y\n")])],
    )
    before = _listing(root, skip=target)

    result = cli.run("restore", snap, "--target", str(target), "--include", "/safe/*")

    assert _listing(root, skip=target) == before
    assert result.returncode == 3, result.stderr.decode()
    assert (target / "safe" / "y").read_bytes() == b"y\n"
    assert not (target / "x").exists()
    _warned(result.stderr, ["/safe/../../x"])


def test_what_stands_in_the_way_is_replaced_inside_the_target_only(
    cli: Cli, repo_location: str, world: tuple[Path, Path]
) -> None:
    """Symlinks already in the target (to a directory and to a file outside, and one inside
    a directory that a file replaces) are removed, not followed; a FIFO is not opened."""
    root, target = world
    outside = root / "outside"
    (target / "d").symlink_to(outside / "private")  # where the snapshot has a directory
    (target / "f").symlink_to(outside / "victim.txt")  # where it has a file
    (target / "tree").mkdir()  # where it has a file: a directory holding a way out
    (target / "tree" / "out").symlink_to(outside)
    (target / "tree" / "deeper").mkdir()
    (target / "tree" / "deeper" / "out").symlink_to(outside / "private")
    os.mkfifo(target / "fifo")  # where it has a directory
    snap = _snapshot(
        repo_location,
        lambda w: [
            _dir(w, b"d", [_file(w, b"key", b"restored\n", mode=0o4777)], mode=0o1777),
            _file(w, b"f", b"restored\n", mode=0o4777),
            _file(w, b"tree", b"now a file\n"),
            _dir(w, b"fifo", [], mode=0o700),
        ],
    )
    before = _listing(root, skip=target)

    result = cli.run("restore", snap, "--target", str(target))

    assert _listing(root, skip=target) == before
    assert result.returncode == 0, result.stderr.decode()
    assert (target / "d").is_dir() and not (target / "d").is_symlink()
    assert (target / "d" / "key").read_bytes() == b"restored\n"
    assert stat.S_IMODE((target / "d").lstat().st_mode) == 0o1777
    assert (target / "f").lstat().st_mode == stat.S_IFREG | 0o4777
    assert (target / "tree").read_bytes() == b"now a file\n"
    assert (target / "fifo").is_dir()


def test_a_symlink_planted_by_another_user_is_replaced_not_followed(
    cli: Cli, repo_location: str, tmp_path: Path
) -> None:
    """A user makes the target and a link in it (TARGET/tmp -> a victim's directory); root's
    restore of a snapshot holding tmp/evil makes TARGET/tmp a directory of its own."""
    # Failures, not skips: CI runs as root on Debian (which has 'nobody') and must test this.
    if os.geteuid() != 0:
        pytest.fail("this test needs root: another user plants the link")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.fail("this test needs a user 'nobody' to plant the link")
    victim = tmp_path / "home" / "victim"
    victim.mkdir(parents=True)
    (victim / "notes").write_bytes(b"mine\n")
    os.chmod(victim, 0o700)
    target = tmp_path / "shared" / "target"
    target.mkdir(parents=True)
    os.chown(target, nobody.pw_uid, nobody.pw_gid)
    _as_user(nobody, target, lambda fd: os.symlink(victim, "tmp", dir_fd=fd))
    assert (target / "tmp").lstat().st_uid == nobody.pw_uid
    snap = _snapshot(
        repo_location,
        lambda w: [_dir(w, b"tmp", [_file(w, b"evil", b"evil\n", mode=0o4755)], mode=0o1777)],
    )
    before = _listing(tmp_path / "home")

    result = cli.run("restore", snap, "--target", str(target))

    assert _listing(tmp_path / "home") == before
    assert result.returncode == 0, result.stderr.decode()
    assert (target / "tmp").is_dir() and not (target / "tmp").is_symlink()
    assert (target / "tmp" / "evil").lstat().st_mode == stat.S_IFREG | 0o4755
    assert stat.S_IMODE(victim.stat().st_mode) == 0o700


def _as_user(user: pwd.struct_passwd, directory: Path, act: Callable[[int], None]) -> None:
    """Run ``act(fd of directory)`` in a child process with ``user``'s ids."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
                act(fd)
            except BaseException:
                os._exit(1)
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        os.close(fd)


def test_hardlinks_go_only_to_files_this_restore_made(
    cli: Cli, repo_location: str, world: tuple[Path, Path]
) -> None:
    """A hardlink group whose first name is refused is not linked to what that name would
    have reached; a file already in the target that has another name (here: outside), with
    the snapshot's size and mtime, is not kept as a group's first name either."""
    root, target = world
    victim = root / "outside" / "victim.txt"
    os.link(victim, target / "one")  # planted: looks like an earlier run's "one"
    os.utime(victim, ns=(T, T))
    group = {"links": 2, "device": 1}
    snap = _snapshot(
        repo_location,
        lambda w: [
            _file(w, b"../outside/victim.txt", b"evil\n", inode=77, **group),
            _file(w, b"second", b"evil\n", inode=77, **group),
            _file(w, b"one", b"precious\n", mode=0o600, inode=78, **group),
            _dir(w, b"sub", [_file(w, b"two", b"precious\n", mode=0o600, inode=78, **group)]),
        ],
    )
    os.unlink(target / "one")  # the listing before: the victim with its own name only
    before = _listing(root, skip=target)
    os.link(victim, target / "one")
    os.utime(victim, ns=(T, T))

    result = cli.run("restore", snap, "--target", str(target))

    assert _listing(root, skip=target) == before
    assert result.returncode == 3, result.stderr.decode()
    assert (target / "second").read_bytes() == b"evil\n"
    assert (target / "second").stat().st_nlink == 1
    assert (target / "one").stat().st_ino == (target / "sub" / "two").stat().st_ino
    assert (target / "one").stat().st_ino != victim.stat().st_ino
    _warned(result.stderr, ["/../outside/victim.txt"])


class _Recording:
    """A RestoreSource that records the blob ids of each window's read."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.key = repo.key
        self.reads: list[int] = []
        self.lock, self.load_tree, self.blob_entry = repo.lock, repo.load_tree, repo.blob_entry

    def read_blob_ranges(self, ids: Iterable[bytes], *rest: Any, **named: Any) -> None:
        wanted = list(ids)
        self.reads.append(len(wanted))
        self.repo.read_blob_ranges(wanted, *rest, **named)


def test_windows_are_bounded_and_the_tree_comes_back_whole(
    repo: Repository, tmp_path: Path
) -> None:
    """Small windows (files, blobs, open directories) still restore contents, modes, times
    of directories completed in any window, and hardlinks whose first name is windows back."""
    src = tmp_path / "src"
    for d in range(6):
        (src / f"d{d}" / "inner").mkdir(parents=True)
        for i in range(9):
            (src / f"d{d}" / f"f{i}.txt").write_bytes(f"{d}-{i}\n".encode() * (i + 1))
        (src / f"d{d}" / "inner" / "leaf").write_bytes(b"leaf %d\n" % d)
        os.utime(src / f"d{d}" / "inner", ns=(T + d, T + d))
        os.chmod(src / f"d{d}", 0o750)
        os.utime(src / f"d{d}", ns=(T - d, T - d))
    os.link(src / "d0" / "f1.txt", src / "d5" / "inner" / "link-to-d0")
    snap = backup(repo, [str(src)])
    recording = _Recording(repo)
    source: RestoreSource = recording
    out = tmp_path / "out"

    summary = restore(source, snap, str(out), limits=Limits(files=7, blobs=1000, dirs=3),
                      verify=True)  # fmt: skip

    assert summary.warnings == 0 and summary.verify_errors == []
    assert max(recording.reads) <= 7
    assert len(recording.reads) >= 60 // 7
    assert_same_tree(src, out / str(src).lstrip("/"))


def test_too_deep_and_unknown_entries_are_skipped_with_warnings(
    repo: Repository, tmp_path: Path
) -> None:
    events: list[object] = []

    def build(w: Writer) -> list[Node]:
        deep = [_file(w, b"bottom", b"deep\n")]
        for level in range(5, 0, -1):
            deep = [_dir(w, b"l%d" % level, deep)]
        return [*deep, _node(b"odd", "whiteout"), _file(w, b"fine", b"fine\n")]

    with repo.writer() as w:
        root = w.save_tree(build(w))
        snap = w.save_snapshot(Snapshot(time="2024-05-01T02:00:00+00:00", host="h", user="u",
                                        paths=["/crafted"], tree=root.hex()))  # fmt: skip
    out = tmp_path / "out"

    summary = restore(repo, snap, str(out), limits=Limits(depth=3), on_event=events.append)

    assert summary.warnings == 2
    assert [e for e in events if isinstance(e, FileWarning)] == [
        FileWarning("/odd", "an unknown type 'whiteout': skipped"),
        FileWarning("/l1/l2/l3", "directories nested deeper than 3 levels: entries skipped"),
    ]
    assert os.listdir(out / "l1" / "l2" / "l3") == []
    assert (out / "fine").read_bytes() == b"fine\n"


def test_restore_enters_as_many_levels_as_the_snapshot_walker(
    repo: Repository, tmp_path: Path
) -> None:
    """A chain of 2100 directories: restore, like ls, enters trees down to walk.MAX_DEPTH
    (2048) and no further; its one warning names the directory whose entries it skips."""
    with repo.writer() as w:
        deep = [_file(w, b"bottom", b"deep\n")]
        for _level in range(2100):
            deep = [_dir(w, b"d", deep)]
        root = w.save_tree(deep)
        snap = w.save_snapshot(Snapshot(time="2024-05-01T02:00:00+00:00", host="h", user="u",
                                        paths=["/crafted"], tree=root.hex()))  # fmt: skip
    listed = _walk_problems(repo, root)
    events: list[object] = []

    try:
        summary = restore(repo, snap, str(tmp_path / "out"), on_event=events.append)
        _assert_deep(tmp_path / "out", listed, events, summary.dirs, summary.warnings)
    finally:  # deeper than shutil.rmtree recurses
        fd = os.open(tmp_path, os.O_RDONLY)
        remove_tree(fd, b"out")
        os.close(fd)


def _assert_deep(
    out: Path, listed: list[tuple[bytes, str]], events: list[object], dirs: int, warnings: int
) -> None:
    last = "/".join(["d"] * MAX_DEPTH)
    assert listed == [(last.encode(), f"directories nested deeper than {MAX_DEPTH} levels")]
    too_deep = f"directories nested deeper than {MAX_DEPTH} levels: entries skipped"
    assert [e for e in events if isinstance(e, FileWarning)] == [FileWarning("/" + last, too_deep)]
    assert (dirs, warnings) == (MAX_DEPTH, 1)
    fd = os.open(out, os.O_RDONLY)
    try:
        for _level in range(MAX_DEPTH):
            sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        assert os.listdir(fd) == []
    finally:
        os.close(fd)


def _walk_problems(repo: Repository, root: bytes) -> list[tuple[bytes, str]]:
    problems: list[tuple[bytes, str]] = []
    for _ in walk(repo, root, on_problem=lambda p, m: problems.append((p, m))):
        pass
    return problems


def test_an_ordinary_tree_restores_whole_without_a_warning(
    cli: Cli, lake_tree: Path, tmp_path: Path
) -> None:
    """Every kind of entry (FIFO and symlink metadata too) through descriptors: exit 0."""
    cli.run("backup", str(lake_tree), check=True)
    out = tmp_path / "out"

    result = cli.run("restore", "latest", "--target", str(out), "--verify")

    assert (result.returncode, result.stderr) == (0, b"")
    assert_same_tree(lake_tree, out / str(lake_tree).lstrip("/"))


class _OneReader(_Recording):
    """Reads on one thread, so the ranges of a file are written one after another."""

    def read_blob_ranges(self, ids: Iterable[bytes], consume: Any, *_: Any, **named: Any) -> None:
        self.repo.read_blob_ranges(ids, consume, 1, **named)


def test_a_file_swapped_for_a_link_to_another_during_the_restore_is_not_written(
    repo: Repository, tmp_path: Path
) -> None:
    """A file of several ranges: once its first range is written, its name is made a
    hardlink to a file outside the target. The next range reopens it by name, meets another
    inode, and stops the restore instead of writing into that file."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(12 << 20))  # three ranges of at most 4 MiB
    snap = backup(repo, [str(src)])
    out = tmp_path / "out"
    big = out / str(src).lstrip("/") / "big"
    victims: list[Path] = []

    def swap(event: object) -> None:
        if not isinstance(event, BytesDone) or victims:
            return
        made = big.stat().st_ino
        for n in range(1000):  # one numbered above big's too: not just "an older inode"
            victims.append(tmp_path / f"victim{n}")
            victims[-1].write_bytes(b"not yours\n")
            if victims[-1].stat().st_ino > made:
                break
        big.unlink()
        os.link(victims[-1], big)

    with pytest.raises(SnapfsError, match=r"/big: replaced by something else during the restore"):
        restore(_OneReader(repo), snap, str(out), on_event=swap)
    assert victims and all(v.read_bytes() == b"not yours\n" for v in victims)


def _two_files(repo: Repository, tmp_path: Path) -> tuple[Path, Snapshot]:
    """A backup of ``src`` holding a.txt ("first\\n") and b.txt ("second\\n")."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"first\n")
    (src / "b.txt").write_bytes(b"second\n")
    return src, backup(repo, [str(src)])


def test_verify_finds_a_restored_file_changed_before_it_rereads_it(
    repo: Repository, tmp_path: Path
) -> None:
    src, snap = _two_files(repo, tmp_path)
    out = tmp_path / "out"

    def tamper(out: Path) -> Callable[[object], None]:
        """Once restored, a.txt is removed and b.txt rewritten, before verification."""

        def on_event(event: object) -> None:
            if isinstance(event, FileDone) and event.path.endswith("/a.txt"):
                (out / str(src).lstrip("/") / "a.txt").unlink()
            if isinstance(event, FileDone) and event.path.endswith("/b.txt"):
                (out / str(src).lstrip("/") / "b.txt").write_bytes(b"as tampered\n")

        return on_event

    summary = restore(repo, snap, str(out), verify=True, on_event=tamper(out))

    assert summary.verify_errors == [
        f"{out}{src}/a.txt: No such file or directory",
        f"{out}{src}/b.txt: content differs",
    ]
    plain = tmp_path / "plain"
    assert restore(repo, snap, str(plain), on_event=tamper(plain)).verify_errors == []


class _DamagedFirst(_OneReader):
    """Reports the blob of the first file (a.txt) damaged, and reads the rest."""

    def read_blob_ranges(self, ids: Iterable[bytes], consume: Any, *_: Any, **named: Any) -> None:
        wanted = list(ids)
        named["on_damaged"](wanted[0], IntegrityError("a damaged blob"))
        self.repo.read_blob_ranges(wanted[1:], consume, 1, **named)


def test_verify_goes_on_past_a_damaged_file(repo: Repository, tmp_path: Path) -> None:
    """a.txt's blob is damaged (warned about, never verified); b.txt, rewritten once
    restored, is still reread and found changed."""
    src, snap = _two_files(repo, tmp_path)
    out = tmp_path / "out"

    events: list[object] = []

    def tamper(event: object) -> None:
        events.append(event)
        if isinstance(event, FileDone) and event.path.endswith("/b.txt"):
            (out / str(src).lstrip("/") / "b.txt").write_bytes(b"as tampered\n")

    summary = restore(_DamagedFirst(repo), snap, str(out), verify=True, on_event=tamper)

    assert [e.path for e in events if isinstance(e, FileWarning)] == [f"{out}{src}/a.txt"]
    assert summary.verify_errors == [f"{out}{src}/b.txt: content differs"]


def test_verify_rereads_the_files_a_resumed_restore_keeps(repo: Repository, tmp_path: Path) -> None:
    """A second restore keeps both files (size and mtime match), but a.txt's bytes were
    changed in place since: --verify rereads kept files too and names it."""
    src, snap = _two_files(repo, tmp_path)
    out = tmp_path / "out"
    restore(repo, snap, str(out))
    a = out / str(src).lstrip("/") / "a.txt"
    mtime = a.stat().st_mtime_ns
    a.write_bytes(b"FIRST\n")
    os.utime(a, ns=(mtime, mtime))

    summary = restore(repo, snap, str(out), verify=True)

    assert (summary.skipped, summary.verify_errors) == (2, [f"{a}: content differs"])


def test_a_restore_holds_a_bounded_number_of_descriptors(repo: Repository, tmp_path: Path) -> None:
    """300 directories restore under a limit of 128 open files: a directory's descriptor is
    closed once its window completes (the window holds at most ``Limits.dirs`` of them)."""
    src = tmp_path / "src"
    for d in range(300):
        (src / f"d{d:03}").mkdir(parents=True)
        (src / f"d{d:03}" / "f").write_bytes(b"%d\n" % d)
    snap = backup(repo, [str(src)])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    try:
        summary = restore(repo, snap, str(tmp_path / "out"), limits=Limits(dirs=16, depth=32))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert summary.warnings == 0
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))


def test_a_symlink_planted_where_a_file_is_about_to_be_made_is_not_followed(
    repo: Repository, tmp_path: Path
) -> None:
    """Two files are planned (nothing stands there); once the first is finished, a link to
    a file outside the target is planted where the second goes: the second replaces the
    link, which is not followed."""
    src, snap = _two_files(repo, tmp_path)
    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.write_bytes(b"not yours\n")
    planted: list[Path] = []
    modes: list[int] = []  # of the directory (private until its metadata) and the first file

    def plant(event: object) -> None:
        if isinstance(event, FileDone) and not planted:
            here = out / str(src).lstrip("/")
            planted.extend(p for p in (here / "a.txt", here / "b.txt") if not os.path.lexists(p))
            os.symlink(victim, planted[0])
            made = [p for p in here.iterdir() if not p.is_symlink()]
            modes.extend(stat.S_IMODE(p.stat().st_mode) for p in (here, *made))

    summary = restore(_OneReader(repo), snap, str(out), on_event=plant)

    assert planted and summary.warnings == 0
    assert modes == [0o700, stat.S_IMODE((src / "a.txt").stat().st_mode)]
    dirs = len(src.parts) - 1  # those on the way to src, and src
    assert (summary.files, summary.dirs, summary.bytes) == (2, dirs, 13)
    assert victim.read_bytes() == b"not yours\n"
    assert [p.is_symlink() for p in planted] == [False]
    assert_same_tree(src, out / str(src).lstrip("/"))


def test_a_directory_swapped_for_a_symlink_between_mkdir_and_open_is_not_entered(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instant between making a directory and opening it: a hook on mkdir puts a symlink
    to a directory outside the target in its place right then, every time. The open does not
    follow it: that directory is one warning, nothing lands outside, the rest restores."""
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "secret.txt").write_bytes(b"inner\n")
    (src / "fine.txt").write_bytes(b"fine\n")
    snap = backup(repo, [str(src)])
    outside = tmp_path / "outside"
    outside.mkdir()
    real_mkdir = os.mkdir
    swapped: list[bytes] = []

    def mkdir_then_swap(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        real_mkdir(path, mode, dir_fd=dir_fd)
        if path == b"inner":
            os.rmdir(path, dir_fd=dir_fd)
            os.symlink(outside, path, dir_fd=dir_fd)
            swapped.append(path)

    monkeypatch.setattr(os, "mkdir", mkdir_then_swap)
    events: list[object] = []
    summary = restore(repo, snap, str(tmp_path / "out"), on_event=events.append)
    monkeypatch.undo()

    here = tmp_path / "out" / str(src).lstrip("/")
    assert swapped == [b"inner"]
    assert list(outside.iterdir()) == []
    warnings = [(e.path, e.error) for e in events if isinstance(e, FileWarning)]
    assert warnings == [(str(here / "inner"), "Not a directory")]  # O_NOFOLLOW on a link
    assert (here / "fine.txt").read_bytes() == b"fine\n"
    assert (summary.files, summary.warnings) == (1, 1)


def test_specials_restore_as_their_type_and_their_metadata_never_follows_a_swapped_link(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO and a character device restore as themselves. A hook on mkfifo replaces the
    new FIFO by a symlink to a FIFO outside the target right after it is made: its metadata
    (mode 0644) is not applied through that link, the outside FIFO keeps its 0600."""
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe", 0o644)
    os.mknod(src / "null", stat.S_IFCHR | 0o644, os.makedev(1, 3))
    os.chmod(src / "pipe", 0o644)
    snap = backup(repo, [str(src)])
    outside = tmp_path / "outside-pipe"
    os.mkfifo(outside, 0o600)
    os.chmod(outside, 0o600)
    real_mkfifo = os.mkfifo

    def mkfifo_then_swap(path: Any, mode: int = 0o666, *, dir_fd: int | None = None) -> None:
        real_mkfifo(path, mode, dir_fd=dir_fd)
        os.unlink(path, dir_fd=dir_fd)
        os.symlink(outside, path, dir_fd=dir_fd)

    out = tmp_path / "out"
    restore(repo, snap, str(out))
    here = out / str(src).lstrip("/")
    null = os.lstat(here / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(here / "pipe").st_mode)

    monkeypatch.setattr(os, "mkfifo", mkfifo_then_swap)
    events: list[object] = []
    restore(repo, snap, str(tmp_path / "swapped"), on_event=events.append)
    monkeypatch.undo()

    assert stat.S_IMODE(os.lstat(outside).st_mode) == 0o600
    warnings = [e.error for e in events if isinstance(e, FileWarning)]
    assert warnings == ["replaced by something else during the restore"]  # the link itself


def test_a_directory_no_file_system_could_make_is_one_warning_and_the_rest_restores(
    cli: Cli, repo_location: str, tmp_path: Path
) -> None:
    long = b"d" * 300  # longer than any file system takes: refused before mkdir is tried
    snap = _snapshot(
        repo_location,
        lambda w: [
            _dir(w, long, [_file(w, b"one", b"1\n"), _file(w, b"two", b"2\n")]),
            _file(w, b"fine", b"fine\n"),
        ],
    )
    target = tmp_path / "target"

    result = cli.run("restore", snap, "--target", str(target))

    assert result.returncode == 3, result.stderr.decode()
    assert result.stderr.decode().splitlines() == [
        f"warning: /{long.decode()}: a name no file system allows: skipped"
    ]
    assert sorted(os.listdir(target)) == ["fine"]
    assert (target / "fine").read_bytes() == b"fine\n"


def test_a_file_and_its_directory_stay_private_while_the_file_is_written(
    repo: Repository, tmp_path: Path
) -> None:
    """A file of several ranges: after its first range, it is 0600 and its new directory
    0700, so nobody else can open it or plant entries beside it; both get their own modes
    at the end."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(12 << 20))  # three ranges of at most 4 MiB
    (src / "big").chmod(0o644)
    src.chmod(0o755)
    snap = backup(repo, [str(src)])
    out = tmp_path / "out"
    here = out / str(src).lstrip("/")
    modes: list[int] = []

    def look(event: object) -> None:
        if isinstance(event, BytesDone) and not modes:
            modes.extend(stat.S_IMODE(p.stat().st_mode) for p in (here, here / "big"))

    restore(_OneReader(repo), snap, str(out), on_event=look)

    assert modes == [0o700, 0o600]
    assert [stat.S_IMODE(p.stat().st_mode) for p in (here, here / "big")] == [0o755, 0o644]


@pytest.fixture
def few_inodes(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with room for one entry beside its root (nr_inodes=2): a real file system on
    which a second entry cannot be made, for root (the test machines run as root)."""
    point = tmp_path / "few-inodes"
    point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=2", "tmpfs", str(point)],
        capture_output=True,
    )
    if mounted.returncode != 0:  # a failure, not a skip: CI runs as root and must test this
        pytest.fail(f"cannot mount a tmpfs (this test needs root): {mounted.stderr.decode()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_directory_that_cannot_be_made_is_one_warning_and_the_rest_restores(
    repo_location: str, few_inodes: Path
) -> None:
    """The walk makes "b", then mkdir of "c" finds the file system out of inodes (both on
    the walking thread, so in that order). That is one warning, the files of "c" are not
    tried, and the restore ends with what it made."""
    snap = _snapshot(
        repo_location,
        lambda w: [
            _dir(w, b"b", [], mode=0o750),
            _dir(w, b"c", [_file(w, b"one", b"3\n"), _file(w, b"two", b"4\n")]),
        ],
    )
    warnings: list[str] = []

    def note(event: object) -> None:
        if isinstance(event, FileWarning):
            warnings.append(f"{event.path}: {event.error}")

    with Repository.open(open_backend(repo_location), PASSWORD) as repo:
        chosen = next(s for s in repo.snapshots() if s.id == snap)
        summary = restore(repo, chosen, str(few_inodes), on_event=note)

    assert warnings == [f"{few_inodes}/c: No space left on device"]
    assert (summary.files, summary.warnings) == (0, 1)
    assert sorted(os.listdir(few_inodes)) == ["b"]
    assert stat.S_IMODE((few_inodes / "b").stat().st_mode) == 0o750  # its metadata was set


def test_a_window_ends_once_it_holds_enough_blobs(repo: Repository, tmp_path: Path) -> None:
    """Files of several blobs each: a window ends at the first file that takes it to
    ``Limits.blobs`` or past, whatever count it lands on."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(8):
        (src / f"f{i}.bin").write_bytes(os.urandom(1 << 20))
    snap = backup(repo, [str(src)])
    root = repo.load_tree(bytes.fromhex(snap.tree))
    while root.nodes[0].type == DIR:  # down the path to src
        assert root.nodes[0].subtree is not None
        root = repo.load_tree(root.nodes[0].subtree)
    per_file = [len(n.content) for n in root.nodes]
    assert min(per_file) >= 2  # so a window's count steps past the limit
    recording = _Recording(repo)

    restore(recording, snap, str(tmp_path / "out"), limits=Limits(blobs=5))

    assert max(recording.reads) <= 5 - 1 + max(per_file)
    assert len(recording.reads) >= sum(per_file) // (5 - 1 + max(per_file))
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))


# Root without the two capabilities that let it pass permission checks: a directory without
# search permission then refuses it as it refuses anyone (the test machines run as root).
_NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
           "--inh-caps", "-dac_override,-dac_read_search"]  # fmt: skip


def test_a_file_that_cannot_be_looked_up_is_one_warning_and_the_rest_restores(
    cli: Cli, tmp_path: Path
) -> None:
    """A second restore meets a directory of the first that it may open but not search
    (mode 0600): looking up "a/x" there fails with EACCES. That is one warning, exit 3, and
    the rest ("b/y", removed since the first restore) comes back."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "a" / "x").write_bytes(b"x\n")
    (src / "b" / "y").write_bytes(b"y\n")
    cli.run("backup", str(src), check=True)
    out = tmp_path / "out"
    cli.run("restore", "latest", "--target", str(out), check=True)
    here = out / str(src).lstrip("/")
    (here / "b" / "y").unlink()
    os.chmod(here / "a", 0o600)

    result = subprocess.run(
        [*_NO_DAC, *SNAPFS, "-r", str(cli.repo), "restore", "latest", "--target", str(out)],
        capture_output=True, env=cli.env, timeout=240,
    )  # fmt: skip

    assert (result.returncode, result.stderr.decode()) == (
        3,
        f"warning: {here}/a/x: Permission denied\n",
    )
    assert (here / "b" / "y").read_bytes() == b"y\n"


def test_a_restore_raises_the_soft_limit_of_open_files_to_what_its_walk_may_hold(
    repo: Repository, tmp_path: Path
) -> None:
    """A soft limit of 64 open files, below what a walk of ``Limits.depth`` levels and two
    windows of directories may hold: restore raises it to that (within the hard limit),
    whatever limit the machine running the tests starts with."""
    src, snap = _two_files(repo, tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        restore(repo, snap, str(tmp_path / "out"))
        raised = resource.getrlimit(resource.RLIMIT_NOFILE)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wanted = MAX_DEPTH + 2 * Limits().dirs + 64
    assert raised == (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
    assert_same_tree(src, tmp_path / "out" / str(src).lstrip("/"))


def test_a_file_whose_blob_the_index_lacks_is_left_out_naming_why(
    repo: Repository, tmp_path: Path
) -> None:
    """A file of two blobs whose first the index does not have: where the second goes is
    not known, so all of the file is lost. It is one warning giving the index's reason and
    one DamagedFile of all its bytes; the file beside it restores."""
    lost = b"\x01" * 32
    with repo.writer() as w:
        second = w.add_blob(BlobKind.DATA, b"second half\n")[0]
        torn = _node(b"torn", FILE, size=100, content=[lost, second])
        root = w.save_tree([torn, _file(w, b"whole", b"fine\n")])
        snap = w.save_snapshot(Snapshot(time="2024-05-01T02:00:00+00:00", host="h", user="u",
                                        paths=["/crafted"], tree=root.hex()))  # fmt: skip
    out = tmp_path / "out"
    events: list[object] = []

    summary = restore(repo, snap, str(out), on_event=events.append)

    error = f"blob {lost.hex()[:16]} is not in the index"
    assert summary.damaged == [DamagedFile(f"{out}/torn", error, ((0, 100),), False)]
    warnings = [(e.path, e.error) for e in events if isinstance(e, FileWarning)]
    assert warnings == [(f"{out}/torn", f"{error}: not restored")]
    assert sorted(os.listdir(out)) == ["whole"]
    assert (out / "whole").read_bytes() == b"fine\n"


def test_a_special_file_gone_before_its_metadata_is_one_warning_and_the_rest_restores(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook on mkfifo removes the new FIFO right after making it, so opening it to set
    its metadata finds nothing: that is one warning naming it, and the restore goes on."""
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe")
    (src / "zz.txt").write_bytes(b"after the pipe\n")
    snap = backup(repo, [str(src)])
    real_mkfifo = os.mkfifo

    def mkfifo_then_remove(path: Any, mode: int = 0o666, *, dir_fd: int | None = None) -> None:
        real_mkfifo(path, mode, dir_fd=dir_fd)
        os.unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkfifo", mkfifo_then_remove)
    events: list[object] = []
    summary = restore(repo, snap, str(tmp_path / "out"), on_event=events.append)
    monkeypatch.undo()

    here = tmp_path / "out" / str(src).lstrip("/")
    warnings = [(e.path, e.error) for e in events if isinstance(e, FileWarning)]
    assert warnings == [(str(here / "pipe"), "No such file or directory")]
    assert (summary.files, summary.warnings) == (1, 1)
    assert os.listdir(here) == ["zz.txt"]
    assert (here / "zz.txt").read_bytes() == b"after the pipe\n"
