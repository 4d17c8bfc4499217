"""``snapfs jobs`` as a user runs it: real subprocesses over a config file naming a local
repository and a replica. Two runs keep ``keep.last`` and fill the replica; history shows
both; a failing hook, a drill over a damaged pack, a broken config and a job running
elsewhere each fail with their exact line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from snapfs.jobs.summary import read_summaries
from snapfs.repository import Repository
from snapfs.snapshot import Snapshot
from snapfs.store.url import open_backend
from snapfs.walk import resolve
from tests.conftest import CHEAP_KDF, PASSWORD, SNAPFS, reopened
from tests.s3.seaweed import BUCKET, SeaweedFS


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.src = tmp_path / "src"
        self.src.mkdir()
        for i in range(4):
            (self.src / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
        (self.src / "sub").mkdir()
        (self.src / "sub" / "big.bin").write_bytes(os.urandom(300_000))
        (tmp_path / "pass").write_text(PASSWORD + "\n")
        self.repo, self.replica = tmp_path / "repo", tmp_path / "replica"
        for location in (self.repo, self.replica):
            Repository.init(open_backend(str(location)), PASSWORD, kdf=CHEAP_KDF).close()
        self.conf = tmp_path / "snapfs.toml"
        self.write()

    def write(self, job: str = "", **extra: str) -> None:
        """The config: the job ``lake`` (with ``job``'s lines too) over repo and replica."""
        self.conf.write_text(
            '[repositories.main]\nurl = "repo"\npassword-file = "pass"\n'
            '[repositories.offsite]\nurl = "replica"\npassword-command = ["cat", "pass"]\n'
            '[jobs.lake]\nrepository = "main"\npaths = ["src"]\nevery = "1h"\n'
            'tags = ["nightly"]\n' + job + '[daemon]\nstate-dir = "state"\n'
        )

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in (env or os.environ).items() if not k.startswith("SNAPFS_")}
        return subprocess.run([*SNAPFS, "--config", str(self.conf), *args], capture_output=True,
                              text=True, env=env, timeout=120)  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


FULL = (
    "keep = { last = 1 }\nprune = { every = '1d' }\ncopy-to = ['offsite']\n"
    "check = { every = '1d', read-data-subset = '1/1' }\ndrill = { every = '1d', files = 3 }\n"
)


def _snapshots(location: Path) -> list[Snapshot]:
    with reopened(str(location)) as repo:
        return sorted(repo.snapshots(), key=lambda s: s.time)


def test_two_runs_keep_last_fill_the_replica_and_are_in_the_history(setup: Setup) -> None:
    setup.write(FULL)
    other = setup.root / "other"
    other.mkdir()
    (other / "x").write_text("not the job's\n")
    env = {**os.environ, "SNAPFS_PASSWORD": PASSWORD}
    for args in ([str(other)], [str(setup.src), "--tag", "manual"]):  # not the job's snapshots
        subprocess.run([*SNAPFS, "-r", str(setup.repo), "backup", *args], env=env, check=True,
                       capture_output=True)  # fmt: skip
    manual = _snapshots(setup.repo)
    first = setup.run("jobs", "run", "lake", "--json")
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert [line.split(" ")[1] for line in lines] == [
        "backup", "forget", "prune", "copy", "check", "drill"
    ]  # fmt: skip
    assert lines[1].endswith(": 0 snapshots removed")
    assert lines[3].endswith("to offsite: 1 snapshots copied; 0 snapshots removed")
    assert lines[5].endswith(": 3 files restored and checked")
    (setup.src / "f0.txt").write_text("changed\n")
    second = setup.run("jobs", "run", "lake", "--json")
    assert second.returncode == 0, second.stderr
    run1, run2 = json.loads(first.stdout), json.loads(second.stdout)
    # prune, check and drill are not due again within their day
    assert [s["step"] for s in run2["steps"]] == ["backup", "forget", "copy"]
    assert [s["ok"] for s in run2["steps"]] == [True, True, True]

    kept = _snapshots(setup.repo)
    # keep.last = 1 of the job's own: this host, its paths, its tags; the others untouched
    assert [s.id for s in kept] == [*(s.id for s in manual), run2["snapshot"]]
    copies = _snapshots(setup.replica)
    assert [s.original for s in copies] == [run2["snapshot"]]

    history = json.loads(setup.run("jobs", "history", "lake", "--json").stdout)
    assert [(r["status"], r["snapshot"], r["step"], r["error"]) for r in history] == [
        ("success", run2["snapshot"], None, None), ("success", run1["snapshot"], None, None)
    ]  # fmt: skip
    assert history[0] == run2
    assert set(history[0]) == {"job", "status", "started", "finished", "snapshot",
                               "bytes_added", "step", "error", "steps"}  # fmt: skip
    listed = json.loads(setup.run("jobs", "list", "--json").stdout)
    assert [(j["job"], j["schedule"], j["result"], j["last_run"]) for j in listed] == [
        ("lake", "every 1h", "success", run2["started"])
    ]
    for location in (setup.repo, setup.replica):  # both pass check, the summary object too
        done = subprocess.run([*SNAPFS, "-r", str(location), "check", "--read-data"],
                              env={**os.environ, "SNAPFS_PASSWORD": PASSWORD},
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
    with reopened(str(setup.repo)) as repo:  # what another machine sees of the job
        (summary,) = read_summaries(repo)
    assert (summary.job, summary.status, summary.snapshot) == ("lake", "success", run2["snapshot"])
    assert summary.last_success is not None and summary.last_success.snapshot == run2["snapshot"]


def test_summaries_show_the_last_run_and_the_last_good_backup_without_a_config(
    setup: Setup,
) -> None:
    good = json.loads(setup.run("jobs", "run", "lake", "--json").stdout)
    setup.write("after = ['sh', '-c', 'exit 4']\n")  # the backup is saved; the run fails
    bad = json.loads(setup.run("jobs", "run", "lake", "--json").stdout)
    assert (bad["status"], bad["step"], bad["error"]) == (
        "failure", "after", "sh -c exit 4 exited with status 4"
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPFS_")}
    env["SNAPFS_PASSWORD_FILE"] = str(setup.root / "pass")
    args = [*SNAPFS, "-r", str(setup.repo), "jobs", "summaries"]
    done = subprocess.run([*args, "--json"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    (summary,) = json.loads(done.stdout)
    assert summary == {
        "host": os.uname().nodename, "job": "lake", "status": "failure",
        "started": bad["started"], "finished": bad["finished"], "snapshot": bad["snapshot"],
        "step": "after", "error": bad["error"],
        "last_success": {"started": good["started"], "finished": good["finished"],
                         "snapshot": good["snapshot"]},
    }  # fmt: skip
    header, row = subprocess.run(args, capture_output=True, text=True, env=env).stdout.splitlines()
    assert header.split() == ["Host", "Job", "Last", "run", "Result", "Failed", "step", "Last",
                              "good", "backup", "Snapshot"]  # fmt: skip
    assert row.split()[:2] + row.split()[4:6] + row.split()[-1:] == [
        os.uname().nodename,
        "lake",
        "failure",
        "after",
        good["snapshot"][:8],
    ]


DUMP = (
    '[jobs.shop]\nrepository = "main"\nfilename = "shop.sql"\nkeep = { last = 1 }\n'
    "drill = { every = '1d', files = 1 }\ncopy-to = ['offsite']\n"
)


def test_a_command_job_keeps_its_output_as_one_file(setup: Setup) -> None:
    """A database dump's job: the command's standard output is /FILENAME, forget keeps the
    job's own snapshots by that path, the drill restores it; a failing dump saves nothing
    and its run names the command, its status and its last line on stderr."""
    script = setup.root / "dump.sh"
    script.write_text('echo "CREATE TABLE orders (id int);"\ncat "$1"\n')
    setup.write(DUMP + f"command = ['sh', '{script}', 'src/f3.txt']\n")
    env = {**os.environ, "SNAPFS_PASSWORD": PASSWORD}
    subprocess.run([*SNAPFS, "-r", str(setup.repo), "backup", str(setup.src)], check=True,
                   env=env, capture_output=True)  # fmt: skip
    (other,) = _snapshots(setup.repo)  # not the job's: forget leaves it, copy takes it not
    for _ in range(2):
        done = setup.run("jobs", "run", "shop", "--json")
        assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert [s["step"] for s in run["steps"]] == ["backup", "forget", "copy"]
    kept, snap = _snapshots(setup.repo)  # keep.last = 1 among /shop.sql's snapshots
    assert kept.id == other.id
    assert [s.original for s in _snapshots(setup.replica)] == [snap.id]
    assert (snap.id, snap.paths, snap.source) == (run["snapshot"], ["/shop.sql"], "stdin")
    dumped = subprocess.run([*SNAPFS, "-r", str(setup.repo), "dump", "latest", "/shop.sql"],
                            env=env, capture_output=True, check=True)  # fmt: skip
    assert dumped.stdout == b"CREATE TABLE orders (id int);\n" + b"file 3\n" * 4

    setup.write(
        DUMP + "command = ['sh', '-c', 'echo partial; echo no such database >&2; exit 2']\n"
    )
    failed = setup.run("jobs", "run", "shop", "--json")
    assert failed.returncode == 1
    run = json.loads(failed.stdout)
    error = "sh exited with status 2: no snapshot saved: no such database"  # no arguments shown
    assert (run["status"], run["step"], run["error"], run["snapshot"]) == (
        "failure", "backup", error, None
    )  # fmt: skip
    assert [s.id for s in _snapshots(setup.repo)] == [other.id, snap.id]


def test_a_failing_before_hook_fails_the_run_naming_the_step(setup: Setup) -> None:
    setup.write(
        "before = ['sh', '-c', 'echo no dump today >&2; exit 3']\n"
        "after = ['sh', '-c', 'echo $SNAPFS_JOB_STATUS $SNAPFS_JOB_STEP > after.out']\n"
    )
    done = setup.run("jobs", "run", "lake")
    error = "sh -c echo no dump today >&2; exit 3 exited with status 3: no dump today"
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == f"lake: failed at before: {error}"
    assert _snapshots(setup.repo) == []  # no backup after a failed before hook
    assert (setup.root / "after.out").read_text() == "failure before\n"  # after ran anyway
    (run,) = json.loads(setup.run("jobs", "history", "--json").stdout)
    assert (run["status"], run["step"], run["error"], run["snapshot"]) == (
        "failure", "before", error, None
    )  # fmt: skip
    assert [(s["step"], s["ok"]) for s in run["steps"]] == [("before", False), ("after", True)]
    with reopened(str(setup.repo)) as repo:
        assert read_summaries(repo) == []  # the repository was never opened


def test_a_drill_over_a_damaged_pack_fails_the_run(setup: Setup) -> None:
    assert setup.run("jobs", "run", "lake").returncode == 0  # no drill yet
    with reopened(str(setup.repo)) as repo:
        (snap,) = repo.snapshots()
        big = setup.src / "sub" / "big.bin"
        node = resolve(repo, bytes.fromhex(snap.tree), str(big))
        assert node is not None
        entry = repo.blob_entry(node.content[0])
    pack = setup.repo / "data" / entry.pack_id[:2] / entry.pack_id
    pack.chmod(0o644)
    raw = bytearray(pack.read_bytes())
    raw[entry.offset + entry.length // 2] ^= 0x01
    pack.write_bytes(bytes(raw))

    setup.write("drill = { every = '1d', files = 50 }\n")  # every file: big.bin too
    done = setup.run("jobs", "run", "lake")  # the backup reuses big.bin's chunks unread
    blob, pack_id = node.content[0].hex()[:16], entry.pack_id[:16]
    error = f"{big}: cannot be restored: blob {blob} in pack {pack_id} is damaged"
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == f"lake: failed at drill: {error}"
    last = json.loads(setup.run("jobs", "history", "--json").stdout)[0]
    assert (last["status"], last["step"], last["error"]) == ("failure", "drill", error)
    assert not list(setup.root.glob("**/snapfs-drill-*"))


def test_a_broken_config_is_named_with_exit_2(setup: Setup) -> None:
    setup.conf.write_text(setup.conf.read_text().replace('every = "1h"', 'every = "6x"'))
    for args in (("jobs", "run", "lake"), ("jobs", "list"), ("jobs", "history")):
        done = setup.run(*args)
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == (
            f"snapfs: {setup.conf}: jobs.lake.every: cannot parse duration '6x': "
            "use e.g. 30s, 15m, 6h, 1d, 1h30m\n"
        )


def test_a_job_running_elsewhere_is_not_run_again(setup: Setup) -> None:
    hold = (
        "import sys; from pathlib import Path; from snapfs.jobs.runner import job_lock\n"
        "with job_lock(Path(sys.argv[1]), 'lake'):\n"
        "    print('held', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(setup.root / "state")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        done = setup.run("jobs", "run", "lake")
        assert (done.returncode, done.stderr) == (
            1, f"snapfs: job lake is already running (pid {holder.pid})\n"
        )  # fmt: skip
        assert _snapshots(setup.repo) == []
        assert json.loads(setup.run("jobs", "history", "--json").stdout) == []
    finally:
        holder.communicate("", timeout=30)
    assert setup.run("jobs", "run", "lake").returncode == 0  # the lock went with its holder


def test_an_unknown_job_is_named(setup: Setup) -> None:
    done = setup.run("jobs", "run", "lak")
    assert (done.returncode, done.stderr) == (
        1, f"snapfs: no job 'lak' in {setup.conf} (jobs: lake)\n"
    )  # fmt: skip


def test_a_failing_after_hook_fails_a_run_that_backed_up(setup: Setup) -> None:
    setup.write("after = ['sh', '-c', 'exit 5']\n")
    done = setup.run("jobs", "run", "lake", "--json")
    run = json.loads(done.stdout)
    assert done.returncode == 1
    assert (run["status"], run["step"], run["error"]) == (
        "failure", "after", "sh -c exit 5 exited with status 5"
    )  # fmt: skip
    assert [s.id for s in _snapshots(setup.repo)] == [run["snapshot"]]  # the backup stands


def test_a_replica_on_s3_is_reached_through_its_s3_endpoint(
    setup: Setup, seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/replica"
    for name, value in seaweedfs.env().items():
        monkeypatch.setenv(name, value)
    Repository.init(open_backend(url), PASSWORD, kdf=CHEAP_KDF).close()
    setup.conf.write_text(
        setup.conf.read_text().replace('url = "replica"', f'url = "{url}"\n'
                                       f's3-endpoint = "{seaweedfs.endpoint}"')
        .replace('[daemon]', "copy-to = ['offsite']\n[daemon]")
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}  # the config's only
    done = setup.run("jobs", "run", "lake", "--json", env={**env, "AWS_MAX_ATTEMPTS": "1"})
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    with Repository.open(open_backend(url), PASSWORD) as replica:
        assert [s.original for s in replica.snapshots()] == [run["snapshot"]]


def test_a_replica_that_refuses_the_password_is_named(setup: Setup) -> None:
    (setup.root / "other.pass").write_text("not the password\n")
    setup.write("copy-to = ['offsite']\n")
    text = setup.conf.read_text()
    setup.conf.write_text(text.replace('["cat", "pass"]', '["cat", "other.pass"]'))
    run = json.loads(setup.run("jobs", "run", "lake", "--json").stdout)
    assert (run["status"], run["step"]) == ("failure", "copy")
    assert run["error"] == "repository offsite: wrong password or no key found for it"
