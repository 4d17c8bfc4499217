"""Repositories crafted by someone who holds a password (another host backing up into the
same repository, the owner of a repository someone copies from), written through the
project's own API, then met by the real command line and a real mount: nothing crafted
takes a process down, check calls each one damaged, copy refuses to carry it."""

from __future__ import annotations

import base64
import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import msgspec
import pytest

from snapfs.crypto import content_id
from snapfs.kdf import KeyFile
from snapfs.pack import BlobKind
from snapfs.repository import Repository
from snapfs.store.url import open_backend
from snapfs.walk import MAX_DEPTH
from tests.conftest import CHEAP_KDF, SNAPFS, Cli
from tests.crafted import (
    directory,
    file,
    nested,
    node,
    raw_tree,
    seal_as_is,
    shared_levels,
    snapshot,
    store_pack,
    zeros_frame,
)
from tests.integration.test_mount import Mount, mount

__all__ = ["mount"]  # the fixture, shared with the mount tests

LIMIT = ["prlimit", f"--as={3 << 29}", "--"]  # 1.5 GiB of address space


def _run(
    cli: Cli, *args: str, limited: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*(LIMIT if limited else []), *SNAPFS, "-r", str(cli.repo), *args],
        capture_output=True, env=cli.env, timeout=timeout,
    )  # fmt: skip


def _stderr_lines(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return result.stderr.decode().splitlines()


def _evil_snapshot(repo: Repository) -> str:
    """One directory ``evil`` holding every entry validation refuses, beside good ones."""
    with repo.writer() as w:
        data_blob, _ = w.add_blob(BlobKind.DATA, msgspec.msgpack.encode([[node(b"x")]]))
        broken, _ = w.add_blob(BlobKind.TREE, b"\x92\x01\x02")
        inner = w.save_tree([file(w, b"inner.txt", b"inside\n")])
        evil = raw_tree(w, [
            node(b""), directory(b".", inner), node(b"..", "symlink", target=b"/etc"),
            node(b"../x"), directory(b"broken", broken), file(w, b"kept.txt", b"kept\n"),
            directory(b"notatree", data_blob), file(w, b"twice", b"first\n"),
            file(w, b"twice", b"second\n"), node(b"whiteout", "whiteout"),
        ])  # fmt: skip
        root = w.save_tree([directory(b"evil", evil)])
        return snapshot(w, root).short_id


EVIL_PROBLEMS = [
    "/evil/: a name no file system allows",
    "/evil/.: a name no file system allows",
    "/evil/..: a name no file system allows",
    "/evil/../x: a name no file system allows",
    "/evil/notatree: a subtree that is not a tree",
    "/evil/twice: a name that appears twice",
    "/evil/whiteout: an unknown type 'whiteout'",
]


def test_check_calls_every_refused_entry_damage_naming_snapshot_and_path(
    cli: Cli, repo: Repository
) -> None:
    sid = _evil_snapshot(repo)
    result = _run(cli, "check")
    assert result.returncode == 1
    errors = _stderr_lines(result)
    assert sorted(errors[:7]) == sorted(f"error: snapshot {sid}: {p}" for p in EVIL_PROBLEMS)
    assert len(errors) == 8
    assert errors[7].startswith(f"error: snapshot {sid}: /evil/broken: tree ")
    assert errors[7].endswith(
        "is damaged: not a valid tree (Expected `array`, got `int` - at `$[0]`)"
    )
    assert result.stdout.decode() == "checked 1 snapshots, 2 packs (0 read): 8 errors found\n"


def test_ls_leaves_refused_entries_out_warns_and_exits_3(cli: Cli, repo: Repository) -> None:
    _evil_snapshot(repo)
    result = _run(cli, "ls", "latest")
    assert result.returncode == 3
    assert result.stdout.decode().splitlines() == [
        "/evil", "/evil/broken", "/evil/kept.txt", "/evil/twice",
    ]  # fmt: skip
    warnings = _stderr_lines(result)
    assert sorted(warnings[:7]) == sorted(f"warning: {p}" for p in EVIL_PROBLEMS)
    assert warnings[7].startswith("warning: /evil/broken: tree ")


def _listing(root: Path, *leave_out: Path) -> list[tuple[str, int, int]]:
    """Every path below ``root`` with its mode and size, but those below ``leave_out``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if not any(path.is_relative_to(p) for p in leave_out):
                st = path.lstat()
                out.append((str(path), st.st_mode, st.st_size))
    return sorted(out)


def test_restore_skips_refused_entries_warns_and_writes_nothing_outside_the_target(
    cli: Cli, repo: Repository, tmp_path: Path
) -> None:
    _evil_snapshot(repo)
    (tmp_path / "canary").write_text("still here\n")
    target = tmp_path / "target"
    before = _listing(tmp_path, target, Path(cli.repo))
    result = _run(cli, "restore", "latest", "--target", str(target))
    assert result.returncode == 3
    warnings = _stderr_lines(result)
    assert sorted(warnings[:7]) == sorted(f"warning: {p}: skipped" for p in EVIL_PROBLEMS)
    assert len(warnings) == 8
    assert warnings[7].startswith("warning: /evil/broken: tree ")
    assert warnings[7].endswith("its entries are skipped")
    assert _listing(tmp_path, target, Path(cli.repo)) == before
    assert (tmp_path / "canary").read_text() == "still here\n"
    assert (target / "evil" / "kept.txt").exists()


def test_copy_refuses_to_carry_a_snapshot_with_refused_entries(
    cli: Cli, repo: Repository, tmp_path: Path
) -> None:
    sid = _evil_snapshot(repo)
    dest = tmp_path / "dest"
    Repository.init(open_backend(str(dest)), "dest password", kdf=CHEAP_KDF).close()
    env = {
        **cli.env,
        "SNAPFS_PASSWORD": "dest password",
        "SNAPFS_FROM_PASSWORD": cli.env["SNAPFS_PASSWORD"],
    }
    result = subprocess.run(
        [*SNAPFS, "-r", str(dest), "copy", "--from-repo", str(cli.repo)],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 3
    assert _stderr_lines(result) == [
        f"warning: snapshot {sid} is not copied: /evil/: a name no file system allows"
    ]
    listed = subprocess.run([*SNAPFS, "-r", str(dest), "snapshots", "--json"],
                            capture_output=True, env=env, check=True)  # fmt: skip
    assert json.loads(listed.stdout) == []


def test_diff_warns_about_refused_entries_and_exits_3(cli: Cli, repo: Repository) -> None:
    with repo.writer() as w:
        clean = snapshot(w, w.save_tree([directory(b"evil", w.save_tree([]))]))
    result = _run(cli, "diff", clean.short_id, _evil_snapshot(repo))
    assert result.returncode == 3
    changes = [line for line in result.stdout.decode().splitlines() if line[:1] in {*"+-MU"}]
    assert changes == ["+    /evil/broken/", "+    /evil/kept.txt", "+    /evil/twice"]
    assert sorted(_stderr_lines(result)[:7]) == sorted(f"warning: {p}" for p in EVIL_PROBLEMS)


def _bomb_snapshot(repo: Repository) -> tuple[str, str]:
    """A file whose one chunk is 64 KiB stored, 2 GiB of zeros decompressed, recorded as
    100,000 bytes; beside a file that is fine. The bomb's pack id, and the snapshot's."""
    blob_id = repo.key.blob_id(bytes(100_000))
    pack_id = store_pack(
        repo, [(blob_id, BlobKind.DATA, seal_as_is(repo, zeros_frame(2 << 30)), 100_000)]
    )
    with repo.writer() as w:
        bomb = node(b"bomb.bin", size=100_000, content=[blob_id])
        root = w.save_tree([bomb, file(w, b"fine.txt", b"fine\n")])
        return pack_id, snapshot(w, root).short_id


def test_a_zstd_bomb_is_damage_not_a_process_killed_by_memory(
    cli: Cli, repo: Repository, tmp_path: Path
) -> None:
    pack_id, _sid = _bomb_snapshot(repo)
    restored = _run(cli, "restore", "latest", "--target", str(tmp_path / "out"), limited=True)
    assert _stderr_lines(restored) == [
        f"warning: {tmp_path / 'out' / 'bomb.bin'}: blob "
        f"{repo.key.blob_id(bytes(100_000)).hex()[:16]} in pack "
        f"{pack_id[:16]} is damaged: not restored"
    ]
    assert restored.returncode == 3
    assert (tmp_path / "out" / "fine.txt").read_bytes() == b"fine\n"
    dumped = _run(cli, "dump", "latest", "/bomb.bin", limited=True)
    assert dumped.returncode == 1
    assert dumped.stderr.decode().endswith("is damaged; 0 bytes written before it\n")
    assert dumped.stderr.decode().startswith("snapfs: /bomb.bin: blob ")
    assert _run(cli, "dump", "latest", "/fine.txt", limited=True).stdout == b"fine\n"
    checked = _run(cli, "check", "--read-data", limited=True)
    assert checked.returncode == 1
    assert f"error: blob {repo.key.blob_id(bytes(100_000)).hex()[:16]} in pack " \
           f"{pack_id[:16]} is damaged" in _stderr_lines(checked)  # fmt: skip


def test_check_finishes_on_2_to_the_48_paths_and_ls_streams_them_in_flat_memory(
    cli: Cli, repo: Repository
) -> None:
    with repo.writer() as w:
        snapshot(w, shared_levels(w, 48))
    checked = _run(cli, "check", timeout=60)
    assert checked.returncode == 0, checked.stderr
    listing = subprocess.Popen(
        [*LIMIT, *SNAPFS, "-r", str(cli.repo), "ls", "latest"], stdout=subprocess.PIPE, env=cli.env
    )
    assert listing.stdout is not None
    try:
        first = [listing.stdout.readline() for _ in range(200_000)]
        with open(f"/proc/{listing.pid}/status", encoding="ascii") as f:
            peak_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    finally:
        listing.send_signal(signal.SIGKILL)
        listing.wait()
        listing.stdout.close()
    assert first[0] == b"/a\n" and first[47] == b"/" + b"/".join([b"a"] * 48) + b"\n"
    assert first[48] == b"/" + b"/".join([b"a"] * 48) + b"/leaf\n"
    assert peak_kib < 150 * 1024


def test_nesting_past_any_real_path_is_damage_and_listing_stops_there(
    cli: Cli, repo: Repository
) -> None:
    with repo.writer() as w:
        sid = snapshot(w, nested(w, MAX_DEPTH + 10, [file(w, b"bottom", b"b")])).short_id
    deepest = "/" + "/".join(["d"] * MAX_DEPTH)
    checked = _run(cli, "check")
    assert checked.returncode == 1
    assert _stderr_lines(checked)[0] == (
        f"error: snapshot {sid}: {deepest}: directories nested deeper than {MAX_DEPTH} levels"
    )
    listed = _run(cli, "ls", "latest")
    assert listed.returncode == 3
    assert len(listed.stdout.splitlines()) == MAX_DEPTH
    assert _stderr_lines(listed) == [
        f"warning: {deepest}: directories nested deeper than {MAX_DEPTH} levels"
    ]


def test_ls_escapes_terminal_codes_and_json_carries_names_exactly(
    cli: Cli, repo: Repository
) -> None:
    names = [b"\x1b[31mred", b"caf\xe9", b"tab\there"]
    with repo.writer() as w:
        snapshot(w, w.save_tree([file(w, n, b"x") for n in names]))
    listed = _run(cli, "ls", "latest")
    assert listed.returncode == 0
    assert listed.stdout.decode().splitlines() == ["/\\033[31mred", "/caf\\351", "/tab\\there"]
    as_json = _run(cli, "ls", "latest", "--json")
    got = [json.loads(line)["name"].encode("utf-8", "surrogateescape")
           for line in as_json.stdout.decode().splitlines()]  # fmt: skip
    assert got == sorted(names)


def test_a_planted_key_file_with_a_huge_cost_is_refused_and_the_password_still_opens(
    cli: Cli, repo: Repository, repo_path: Path
) -> None:
    """Listed before the real key file, with 16 GiB of Argon2 memory."""
    record = json.loads(msgspec.json.encode(KeyFile(
        kdf="argon2id", memory=16 * 1024 * 1024, iterations=1, lanes=1, salt="",
        wrapped=base64.b64encode(bytes(92)).decode(), created="2026-11-30T10:00:00+00:00",
        host="attacker", user="mallory",
    )))  # fmt: skip
    for i in range(1000):  # other salts until the store lists it first
        data = json.dumps({**record, "salt": base64.b64encode(i.to_bytes(16)).decode()}).encode()
        planted = repo_path / "keys" / content_id(data)
        planted.write_bytes(data)
        if next(iter(repo.backend.list("keys/"))).key == f"keys/{planted.name}":
            break
        planted.unlink()
    opened = _run(cli, "snapshots", limited=True)
    assert opened.returncode == 0, opened.stderr
    start = time.monotonic()
    wrong = subprocess.run([*LIMIT, *SNAPFS, "-r", str(cli.repo), "snapshots"], capture_output=True,
                           env={**cli.env, "SNAPFS_PASSWORD": "wrong"}, timeout=60)  # fmt: skip
    assert (wrong.returncode, wrong.stderr) == (
        12,
        b"snapfs: wrong password or no key found for it\n",
    )
    assert time.monotonic() - start < 30
    checked = _run(cli, "check")
    assert f"error: key file {content_id(data)[:8]}: unsupported key file: argon2id with " \
           "16777216 KiB of memory and 1 iterations" in _stderr_lines(checked)  # fmt: skip


def test_the_mount_serves_on_past_directories_that_are_not_trees(
    cli: Cli, repo: Repository, mount: Mount
) -> None:
    _evil_snapshot(repo)
    with mount("latest") as mnt:
        evil = mnt / "evil"
        assert sorted(os.listdir(evil)) == ["broken", "kept.txt", "twice"]
        with pytest.raises(OSError) as info:
            os.listdir(evil / "broken")
        assert info.value.errno == errno.EIO
        assert not (evil / "notatree").exists() and not (evil / "whiteout").exists()
        assert (evil / "twice").read_bytes() == b"first\n"
        assert (evil / "kept.txt").read_bytes() == b"kept\n"
        with pytest.raises(OSError):
            os.listdir(evil / "broken")
        assert (evil / "kept.txt").stat().st_size == 5


def _copy_into_new(cli: Cli, tmp_path: Path) -> tuple[Cli, subprocess.CompletedProcess[bytes]]:
    """``snapfs copy`` of every snapshot of ``cli``'s repository into a new one."""
    dest = Cli(tmp_path / "dest", {**cli.env, "SNAPFS_PASSWORD": "dest password",
                                   "SNAPFS_FROM_PASSWORD": cli.env["SNAPFS_PASSWORD"]})  # fmt: skip
    Repository.init(open_backend(str(dest.repo)), "dest password", kdf=CHEAP_KDF).close()
    return dest, _run(dest, "copy", "--from-repo", str(cli.repo), timeout=60)


def test_copy_carries_2_to_the_48_paths_entering_each_tree_once(
    cli: Cli, repo: Repository, tmp_path: Path
) -> None:
    with repo.writer() as w:
        snapshot(w, shared_levels(w, 48))
    dest, copied = _copy_into_new(cli, tmp_path)
    assert copied.returncode == 0, copied.stderr
    checked = _run(dest, "check", "--read-data", timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_copy_refuses_nesting_past_any_real_path(
    cli: Cli, repo: Repository, tmp_path: Path
) -> None:
    with repo.writer() as w:
        sid = snapshot(w, nested(w, MAX_DEPTH + 10, [file(w, b"bottom", b"b")])).short_id
    deepest = "/" + "/".join(["d"] * (MAX_DEPTH + 1))
    dest, copied = _copy_into_new(cli, tmp_path)
    assert copied.returncode == 3
    assert _stderr_lines(copied) == [
        f"warning: snapshot {sid} is not copied: {deepest}: nested deeper than {MAX_DEPTH} levels"
    ]
    assert json.loads(_run(dest, "snapshots", "--json").stdout) == []


def test_prune_marks_2_to_the_48_paths_entering_each_tree_once(cli: Cli, repo: Repository) -> None:
    with repo.writer() as w:
        snapshot(w, shared_levels(w, 48))
    pruned = _run(cli, "prune", "--json", timeout=60)
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["condemned_packs"] == 0
