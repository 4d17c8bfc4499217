"""The options a user reaches for, each shown to change what it says it changes: backup
--exclude, --password-file and SNAPFS_PASSWORD_FILE, check --read-data-subset, forget
--dry-run and --group-by, ls -l and --json."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.conftest import PASSWORD, Cli, small_packs


def _backup(cli: Cli, *args: str) -> str:
    out = cli.run("backup", *args, "--json", check=True).stdout.splitlines()[-1]
    return str(json.loads(out)["snapshot_id"])


def _listing(cli: Cli, snapshot: str, below: Path) -> list[str]:
    out = cli.run("ls", snapshot, str(below), check=True).stdout.decode()
    return [line.removeprefix(str(below)) for line in out.splitlines()]


def test_backup_exclude_leaves_out_what_matches(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "scratch" / "deep").mkdir(parents=True)
    (src / "keep").mkdir()
    for name in ("a.txt", "b.tmp", "keep/c.txt", "keep/d.tmp", "scratch/e.txt", "scratch/deep/f"):
        (src / name).write_text(name)
    sid = _backup(cli, str(src), "--exclude", "*.tmp", "--exclude", f"{src}/scratch")
    assert _listing(cli, sid, src) == ["/a.txt", "/keep", "/keep/c.txt"]
    everything = _backup(cli, str(src))
    assert len(_listing(cli, everything, src)) == 9  # the same tree, nothing left out


def _no_password_env(cli: Cli) -> dict[str, str]:
    return {k: v for k, v in cli.env.items() if not k.startswith("SNAPFS_PASSWORD")}


def test_password_file_and_its_environment_variable(cli: Cli, tmp_path: Path) -> None:
    cli.env = _no_password_env(cli)
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text(f"{PASSWORD}\r\nthe second line is not the password\n")
    wrong.write_text("not it\n")
    none = cli.run("snapshots")
    assert (none.returncode, none.stderr) == (
        1, b"snapfs: no password for the repository: set SNAPFS_PASSWORD or SNAPFS_PASSWORD_FILE\n"
    )  # fmt: skip
    cli.run("--password-file", str(right), "snapshots", check=True)
    cli.run("snapshots", env={"SNAPFS_PASSWORD_FILE": str(right)}, check=True)
    for refused in (
        cli.run("--password-file", str(wrong), "snapshots"),
        cli.run("snapshots", env={"SNAPFS_PASSWORD_FILE": str(wrong)}),
    ):
        assert (refused.returncode, refused.stderr) == (
            12, b"snapfs: wrong password or no key found for it\n"
        )  # fmt: skip
    absent = cli.run("--password-file", str(tmp_path / "absent"), "snapshots")
    assert (absent.returncode, absent.stderr.decode()) == (
        1, f"snapfs: cannot read password file {tmp_path / 'absent'}: No such file or directory\n"
    )  # fmt: skip


def test_init_takes_its_password_from_the_file(cli: Cli, tmp_path: Path) -> None:
    cli.env = _no_password_env(cli)
    cli.repo = tmp_path / "fresh"
    secret = tmp_path / "secret"
    secret.write_text("from a file\n")
    cli.run("init", env={"SNAPFS_PASSWORD_FILE": str(secret)}, check=True)
    cli.run("snapshots", env={"SNAPFS_PASSWORD": "from a file"}, check=True)
    assert cli.run("snapshots", env={"SNAPFS_PASSWORD": "from a file\n"}).returncode == 12


def _check(cli: Cli, *args: str) -> dict[str, object]:
    result = cli.run("check", "--json", *args)
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 1)
    return dict(report)


def test_check_read_data_subset_reads_the_packs_it_names(cli: Cli, tmp_path: Path) -> None:
    cli.repo, src = small_packs(tmp_path, files=12)
    _backup(cli, str(src))
    packs = sorted(p for p in (cli.repo / "data").rglob("*") if p.is_file())
    assert len(packs) >= 6
    assert _check(cli)["packs_read"] == 0  # structure only
    whole = _check(cli, "--read-data-subset", "100%")
    assert (whole["ok"], whole["packs_read"]) == (True, len(packs))
    victim = max(packs, key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 3] ^= 0x01
    victim.chmod(0o644)
    victim.write_bytes(bytes(raw))
    assert _check(cli)["ok"] is True  # the damage is in the bytes, which only a read sees
    slices = [_check(cli, "--read-data-subset", f"{n}/3") for n in (1, 2, 3)]
    assert sum(int(str(s["packs_read"])) for s in slices) == len(packs)
    assert [s["damaged_packs"] for s in slices if not s["ok"]] == [[victim.name]]
    assert _check(cli, "--read-data-subset", "100%")["damaged_packs"] == [victim.name]


def _ids(cli: Cli) -> list[str]:
    return sorted(s["id"] for s in json.loads(cli.run("snapshots", "--json", check=True).stdout))


def test_forget_dry_run_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    made = []
    for i in range(3):
        (src / f"f{i}").write_text(str(i))
        made.append(_backup(cli, str(src)))
    before = _ids(cli)
    plan = json.loads(
        cli.run("forget", "--keep-last", "1", "--dry-run", "--json", check=True).stdout
    )
    assert [[s["id"] for s in g["remove"]] for g in plan] == [made[1::-1]]
    shown = cli.run("forget", "--keep-last", "1", "--dry-run", check=True).stdout.decode()
    assert shown.count("would remove") == 2 and "1 kept, 2 to remove" in shown
    by_id = cli.run("forget", made[0][:8], "--dry-run", check=True).stdout.decode()
    assert by_id == f"would remove snapshot {made[0][:8]}\n"
    assert _ids(cli) == before
    assert cli.run("undelete", made[0][:8]).returncode == 1  # nothing was set aside either
    cli.run("forget", "--keep-last", "1", check=True)
    assert _ids(cli) == [made[2]]


def test_forget_group_by_applies_the_policy_per_group(cli: Cli, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    newest: dict[str, str] = {}
    for i in range(2):
        for src, tag in ((a, "x"), (b, "y")):
            (src / "f").write_text(str(i))
            newest[f"{src.name}{tag}"] = _backup(cli, str(src), "--tag", tag)
    (a / "f").write_text("tagged y")
    newest["ay"] = _backup(cli, str(a), "--tag", "y")

    def kept(*group_by: str) -> list[tuple[dict[str, object], list[str]]]:
        out = cli.run("forget", "--keep-last", "1", "--dry-run", "--json", *group_by, check=True)
        return [(g["group"], sorted(s["id"] for s in g["keep"])) for g in json.loads(out.stdout)]

    host = os.uname().nodename
    by_default = kept()
    assert sorted(ids[0] for _g, ids in by_default) == sorted([newest["ay"], newest["by"]])
    assert sorted(str(g["paths"]) for g, _ids in by_default) == [f"['{a}']", f"['{b}']"]
    assert all(g["host"] == host for g, _ids in by_default)
    assert kept("--group-by", "") == [({}, [newest["ay"]])]
    assert kept("--group-by", "host") == [({"host": host}, [newest["ay"]])]
    by_tags = kept("--group-by", "tags")
    assert sorted(ids[0] for _g, ids in by_tags) == sorted([newest["ax"], newest["ay"]])
    by_paths_tags = kept("--group-by", "paths,tags")
    assert sorted(ids[0] for _g, ids in by_paths_tags) == sorted(newest.values())
    cli.run("forget", "--keep-last", "1", check=True)
    assert _ids(cli) == sorted([newest["ay"], newest["by"]])


def test_ls_long_and_json_show_each_entry_exactly(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "data.csv").write_text("a,b\n1,2\n")
    os.chmod(src / "dir" / "data.csv", 0o640)
    os.chown(src / "dir" / "data.csv", 1234, 5678)  # ids with no names here
    os.symlink("dir/data.csv", src / "link")
    os.utime(src / "dir" / "data.csv", ns=(1_600_000_000_000_000_000, 1_700_000_000_123_456_789))
    os.utime(src / "link", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000),
             follow_symlinks=False)  # fmt: skip
    os.utime(src / "dir", ns=(1_400_000_000_000_000_000, 1_400_000_000_000_000_000))
    sid = _backup(cli, str(src))
    utc = {"TZ": "UTC"}
    long = cli.run("ls", sid, str(src), "-l", env=utc, check=True).stdout.decode().splitlines()
    dir_mode = stat.filemode(os.stat(src / "dir").st_mode)
    link_mode = stat.filemode(os.lstat(src / "link").st_mode)
    assert long == [
        f"{dir_mode}     root     root {0:>12} 2014-05-13 16:53:20 {src}/dir",
        f"-rw-r-----     1234     5678 {8:>12} 2023-11-14 22:13:20 {src}/dir/data.csv",
        f"{link_mode}     root     root {0:>12} 2017-07-14 02:40:00 {src}/link -> dir/data.csv",
    ]
    out = cli.run("ls", sid, f"{src}/dir", "--json", check=True).stdout.decode().splitlines()
    assert [json.loads(line) for line in out] == [
        {"path": f"{src}/dir/data.csv", "name": "data.csv", "type": "file", "mode": 0o640,
         "uid": 1234, "gid": 5678, "user": "", "group": "", "size": 8,
         "mtime_ns": 1_700_000_000_123_456_789, "links": 1, "target": None},
    ]  # fmt: skip
    one = cli.run("ls", sid, f"{src}/link", "--json", check=True).stdout.decode()
    assert json.loads(one) == {
        "path": f"{src}/link", "name": "link", "type": "symlink",
        "mode": stat.S_IMODE(os.lstat(src / "link").st_mode), "uid": 0, "gid": 0,
        "user": "root", "group": "root", "size": 0, "mtime_ns": 1_500_000_000_000_000_000,
        "links": 1, "target": "dir/data.csv",
    }  # fmt: skip
    doubled = cli.run("ls", sid, f"/{src}//dir/", check=True).stdout.decode().splitlines()
    assert doubled == [f"{src}/dir/data.csv"]  # the path as the snapshot spells it
