"""``snapfs key``: passwords are added, changed and removed without touching the data, the
key in use is never removed, and new keys use Argon2id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapfs.kdf import ScryptParams
from snapfs.repository import Repository
from snapfs.store.local import LocalBackend
from tests.conftest import BACKENDS, PASSWORD, Cli

both_backends = pytest.mark.parametrize("backend_kind", BACKENDS)

NEW = "a new password for the ops team"


def _keys(cli: Cli, password: str = PASSWORD) -> list[dict[str, object]]:
    out = cli.run("key", "list", "--json", check=True, env={"SNAPFS_PASSWORD": password})
    keys: list[dict[str, object]] = json.loads(out.stdout)
    return keys


def _new_password_file(tmp_path: Path) -> str:
    path = tmp_path / "new-pass"
    path.write_text(NEW + "\n")
    return str(path)


def _snapshot_ids(cli: Cli, password: str) -> list[str]:
    out = cli.run("snapshots", "--json", check=True, env={"SNAPFS_PASSWORD": password})
    return [s["id"] for s in json.loads(out.stdout)]


@both_backends
def test_an_added_password_opens_the_same_snapshots(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_text("id,value\n1,2\n")
    cli.run("backup", str(tmp_path / "src"), check=True)
    result = cli.run("key", "add", "--new-password-file", _new_password_file(tmp_path))
    assert result.returncode == 0, result.stderr
    first, second = _keys(cli)
    assert result.stdout.decode() == f"added key {second['short_id']}\n"
    assert (first["current"], second["current"], second["kdf"]) == (True, False, "argon2id")
    assert [k["current"] for k in _keys(cli, NEW)] == [False, True]
    assert _snapshot_ids(cli, NEW) == _snapshot_ids(cli, PASSWORD) != []


@both_backends
def test_passwd_replaces_the_key_in_use(cli: Cli, tmp_path: Path) -> None:
    (old,) = _keys(cli)
    result = cli.run("key", "passwd", "--new-password-file", _new_password_file(tmp_path))
    assert result.returncode == 0, result.stderr
    (new,) = _keys(cli, NEW)
    assert result.stdout.decode() == (
        f"changed the password: added key {new['short_id']}, removed key {old['short_id']}\n"
    )
    refused = cli.run("snapshots")
    assert refused.returncode == 12
    assert refused.stderr.decode() == "snapfs: wrong password or no key found for it\n"


@both_backends
def test_the_key_in_use_is_never_removed(cli: Cli, tmp_path: Path) -> None:
    cli.run("key", "add", "--new-password-file", _new_password_file(tmp_path), check=True)
    mine, other = _keys(cli)
    refused = cli.run("key", "remove", str(mine["short_id"]))
    assert refused.returncode == 1
    assert refused.stderr.decode() == (
        "snapfs: refusing to remove the key in use: open with another password\n"
    )
    unknown = cli.run("key", "remove", "zz")
    assert (unknown.returncode, unknown.stderr.decode()) == (1, "snapfs: no key matches 'zz'\n")
    removed = cli.run("key", "remove", str(other["id"])[:6], check=True)
    assert removed.stdout.decode() == f"removed key {other['short_id']}\n"
    assert [k["id"] for k in _keys(cli)] == [mine["id"]]
    assert cli.run("snapshots", env={"SNAPFS_PASSWORD": NEW}).returncode == 12


@both_backends
def test_an_empty_password_is_refused(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = cli.run("key", "add", "--new-password-file", str(empty))
    assert (result.returncode, result.stderr.decode()) == (
        1, "snapfs: an empty password is not a password: choose another\n"
    )  # fmt: skip
    cli.repo = tmp_path / "new-repo"
    result = cli.run("init", env={"SNAPFS_PASSWORD": ""})
    assert (result.returncode, result.stderr.decode()) == (
        1, "snapfs: an empty password is not a password: choose another\n"
    )  # fmt: skip
    assert not cli.repo.exists()


@both_backends
def test_a_new_password_is_never_taken_from_a_pipe(cli: Cli) -> None:
    result = cli.run("key", "add", input=b"piped\npiped\n")
    assert result.returncode == 2
    assert "no new password: use --new-password-file FILE" in result.stderr.decode()
    assert len(_keys(cli)) == 1


def test_passwd_moves_a_scrypt_repository_to_argon2id(cli: Cli, tmp_path: Path) -> None:
    cli.repo = tmp_path / "scrypt-repo"
    Repository.init(LocalBackend(cli.repo), PASSWORD, kdf=ScryptParams(n=2**10)).close()
    assert [k["kdf"] for k in _keys(cli)] == ["scrypt"]
    cli.run("key", "passwd", "--new-password-file", _new_password_file(tmp_path), check=True)
    (key_file,) = (cli.repo / "keys").iterdir()
    assert json.loads(key_file.read_bytes())["kdf"] == "argon2id"
    assert [k["kdf"] for k in _keys(cli, NEW)] == ["argon2id"]


def test_a_damaged_key_file_locks_no_one_out_and_check_names_it(cli: Cli, tmp_path: Path) -> None:
    cli.run("key", "add", "--new-password-file", _new_password_file(tmp_path), check=True)
    mine, other = _keys(cli)
    damaged = Path(cli.repo) / "keys" / str(other["id"])
    damaged.write_bytes(damaged.read_bytes()[:40])
    assert [k["id"] for k in _keys(cli)] == [mine["id"]]
    assert cli.run("snapshots", env={"SNAPFS_PASSWORD": NEW}).returncode == 12
    result = cli.run("check", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"] == [
        f"key file {other['short_id']}: unreadable",
        f"key file {other['short_id']}: does not hash to its name",
    ]
