"""The jobs' config file: what a good one gives, and the exact line a bad one gets (the file,
the key, what is wrong); durations; cron's next times in local time; catch-up."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from snapfs.errors import ConfigError, SnapfsError
from snapfs.jobs.config import DEFAULT_NOTIFY_ON, NotifyConfig, load_config
from snapfs.jobs.schedule import Schedule, due, next_run, parse_duration

GOOD = """
[repositories.main]
url = "repo"
password-file = "main.pass"

[repositories.offsite]
url = "s3://bucket/lake"
password-command = ["pass", "show", "snapfs"]
s3-endpoint = "http://127.0.0.1:8333"

[jobs.lake]
repository = "main"
paths = ["/data/lake", "rel"]
every = "6h"
tags = ["nightly"]
exclude = ["*.tmp"]
keep = { last = 7, daily = 14, weekly = 8, monthly = 12 }
prune = { every = "7d" }
copy-to = ["offsite"]
check = { every = "1d", read-data-subset = "5%" }
drill = { every = "1d", files = 20 }
before = ["cmd", "arg"]
after = ["cmd"]
notify = { webhook = "https://hooks.example/x", command = ["cmd"], on = ["failure", "recovery"] }
alert-after = "26h"

[jobs.db]
repository = "main"
paths = ["/srv/db"]
schedule = "0 2 * * *"
notify = { command = ["logger"] }

[daemon]
state-dir = "/var/lib/snapfs"
metrics-file = "/var/lib/node_exporter/snapfs.prom"
metrics-listen = "127.0.0.1:9150"
"""


@pytest.fixture
def conf(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "snapfs.toml"


def test_a_good_file_gives_typed_records(conf: Path) -> None:
    conf.write_text(GOOD)
    c = load_config(str(conf))
    main, offsite = c.repositories["main"], c.repositories["offsite"]
    assert main.url == str(conf.parent / "repo")  # relative to the file, not the cwd
    assert main.password_file == str(conf.parent / "main.pass")
    assert offsite.url == "s3://bucket/lake" and offsite.password_file is None
    assert offsite.password_command == ("pass", "show", "snapfs")
    assert offsite.s3_endpoint == "http://127.0.0.1:8333"
    lake = c.jobs["lake"]
    assert lake.paths == ("/data/lake", str(conf.parent / "rel"))
    assert lake.schedule == Schedule("every 6h", every=6 * 3600.0)
    assert (lake.tags, lake.exclude) == (("nightly",), ("*.tmp",))
    assert lake.keep == {"last": 7, "daily": 14, "weekly": 8, "monthly": 12}
    assert (lake.prune_every, lake.check_every, lake.drill_every) == (7 * 86400, 86400, 86400)
    assert (lake.copy_to, lake.check_subset, lake.drill_files) == (("offsite",), "5%", 20)
    assert (lake.before, lake.after, lake.alert_after) == (("cmd", "arg"), ("cmd",), 26 * 3600)
    assert lake.notify == NotifyConfig(
        "https://hooks.example/x", ("cmd",), frozenset({"failure", "recovery"})
    )
    db = c.jobs["db"]
    assert db.schedule == Schedule("0 2 * * *", cron="0 2 * * *")
    assert db.notify == NotifyConfig(None, ("logger",), DEFAULT_NOTIFY_ON)
    assert {"failure", "recovery", "missed"} == DEFAULT_NOTIFY_ON
    assert (db.keep, db.copy_to, db.prune_every, db.before) == ({}, (), None, ())
    assert c.daemon.state_dir == Path("/var/lib/snapfs")
    assert c.daemon.metrics_file == Path("/var/lib/node_exporter/snapfs.prom")
    assert c.daemon.metrics_listen == "127.0.0.1:9150"
    assert c.path == conf


def test_defaults_state_dir_and_no_schedule(conf: Path) -> None:
    conf.write_text('[repositories.r]\nurl="/r"\npassword-file="/p"\n'
                    '[jobs.j]\nrepository="r"\npaths=["/d"]\n')  # fmt: skip
    c = load_config(str(conf))
    assert c.daemon.state_dir == Path("~/.local/state/snapfs").expanduser()
    assert c.daemon.metrics_file is None and c.daemon.metrics_listen is None
    assert c.jobs["j"].schedule is None  # run only by `snapfs jobs run`


def test_the_path_comes_from_the_environment_then_the_home(
    conf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf.write_text("")
    monkeypatch.setenv("SNAPFS_CONFIG", str(conf))
    assert load_config(None).path == conf
    monkeypatch.delenv("SNAPFS_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    home = tmp_path / ".config/snapfs/snapfs.toml"
    if not Path("/etc/snapfs/snapfs.toml").exists():
        with pytest.raises(ConfigError) as e:
            load_config(None)
        assert str(e.value) == (
            "no config file: give --config FILE or set SNAPFS_CONFIG "
            f"(looked for {home} and /etc/snapfs/snapfs.toml)"
        )
    home.parent.mkdir(parents=True)
    home.write_text("")
    assert load_config(None).path == home


REPO = '[repositories.main]\nurl = "/r"\npassword-file = "/p"\n'
JOB = '[jobs.lake]\nrepository = "main"\npaths = ["/d"]\n'
CMD = '[jobs.lake]\nrepository = "main"\ncommand = ["pg_dump", "shop"]\n'


def test_a_job_backs_up_a_command_or_s3_prefixes(conf: Path) -> None:
    conf.write_text(REPO + CMD + "filename = 'shop.sql'\n"
                    '[jobs.bucket]\nrepository = "main"\npaths = ["s3://lake/raw"]\n'
                    "source-endpoint = 'http://127.0.0.1:8333'\n")  # fmt: skip
    jobs = load_config(str(conf)).jobs
    dump, bucket = jobs["lake"], jobs["bucket"]
    assert (dump.paths, dump.command, dump.filename) == ((), ("pg_dump", "shop"), "shop.sql")
    assert dump.snapshot_paths == ("/shop.sql",)
    assert (bucket.paths, bucket.source_endpoint) == (("s3://lake/raw",), "http://127.0.0.1:8333")
    assert bucket.snapshot_paths == ("s3://lake/raw",)
    conf.write_text(REPO + CMD)
    assert load_config(str(conf)).jobs["lake"].snapshot_paths == ("/stdin",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\n", "x: unknown key (expected one of: repositories, jobs, daemon)"),
        (REPO + JOB + "evry = '6h'\n",
         "jobs.lake.evry: unknown key (expected one of: repository, paths, command, filename, "
         "source-endpoint, source-profile, every, schedule, tags, exclude, keep, prune, "
         "copy-to, check, drill, before, after, notify, alert-after)"),
        (REPO + JOB + "command = ['pg_dump', 'shop']\n",
         "jobs.lake.command: a job backs up paths or a command's output, not both"),
        (REPO + JOB + "filename = 'shop.sql'\n", "jobs.lake.filename: is for command"),
        (REPO + CMD + "exclude = ['*.tmp']\n",
         "jobs.lake.exclude: is for paths, not a command's output"),
        (REPO + '[jobs.lake]\nrepository = "main"\ncommand = []\n',
         "jobs.lake.command: must not be empty"),
        (REPO + CMD + "filename = 'dumps/shop.sql'\n",
         "jobs.lake.filename: must be one file name (1-255 bytes, no '/', not . or ..)"),
        (REPO + CMD + "source-endpoint = 'http://s3'\n",
         "jobs.lake.source-endpoint: is for s3:// paths"),
        (REPO + '[jobs.lake]\nrepository = "main"\npaths = ["s3://b/x", "/d"]\n',
         "jobs.lake.paths: S3 prefixes or local paths, not both"),
        (REPO + '[jobs.lake]\nrepository = "other"\npaths = ["/d"]\n',
         "jobs.lake.repository: no repository 'other' in [repositories]"),
        (REPO + JOB + "copy-to = ['offsite']\n",
         "jobs.lake.copy-to: no repository 'offsite' in [repositories]"),
        (REPO + JOB + "copy-to = ['main']\n",
         "jobs.lake.copy-to: 'main' is the job's own repository"),
        (REPO + '[jobs.lake]\npaths = ["/d"]\n', "jobs.lake.repository: missing"),
        (REPO + '[jobs.lake]\nrepository = "main"\n', "jobs.lake.paths: missing"),
        (REPO + JOB + "every = '6x'\n",
         "jobs.lake.every: cannot parse duration '6x': use e.g. 30s, 15m, 6h, 1d, 1h30m"),
        (REPO + JOB + "every = '0s'\n",
         "jobs.lake.every: duration '0s' is not longer than nothing"),
        (REPO + JOB + "every = 6\n", "jobs.lake.every: must be a string, not an integer"),
        (REPO + JOB + "schedule = '0 2 * *'\n",
         "jobs.lake.schedule: cannot parse cron schedule '0 2 * *': five fields, e.g. '0 2 * * *'"),
        (REPO + JOB + "schedule = '61 2 * * *'\n",
         "jobs.lake.schedule: cannot parse cron schedule '61 2 * * *': Bad minute"),
        (REPO + JOB + "every = '1h'\nschedule = '0 2 * * *'\n",
         "jobs.lake: give every or schedule, not both"),
        (REPO + JOB + "paths = []\n", None),  # TOML itself refuses a key given twice
        (REPO + '[jobs.lake]\nrepository = "main"\npaths = []\n',
         "jobs.lake.paths: must not be empty"),
        (REPO + '[jobs.lake]\nrepository = "main"\npaths = "/d"\n',
         "jobs.lake.paths: must be a list, not a string"),
        (REPO + '[jobs.lake]\nrepository = "main"\npaths = [1]\n',
         "jobs.lake.paths: must be a list of strings"),
        (REPO + JOB + "keep = { last = 7, dayly = 3 }\n",
         "jobs.lake.keep.dayly: unknown key (expected one of: last, hourly, daily, weekly, "
         "monthly, yearly)"),
        (REPO + JOB + "keep = { last = '7' }\n",
         "jobs.lake.keep.last: must be an integer, not a string"),
        (REPO + JOB + "keep = { last = true }\n",
         "jobs.lake.keep.last: must be an integer, not a boolean"),
        (REPO + JOB + "prune = '7d'\n", "jobs.lake.prune: must be a table"),
        (REPO + JOB + "prune = { every = '7 days' }\n",
         "jobs.lake.prune.every: cannot parse duration '7 days': use e.g. 30s, 15m, 6h, 1d, 1h30m"),
        (REPO + JOB + "check = { read-data-subset = 'half' }\n",
         "jobs.lake.check.read-data-subset: cannot parse 'half': use n/t or a "
         "percentage such as 5%"),
        (REPO + JOB + "check = { read-data-subset = '3/2' }\n",
         "jobs.lake.check.read-data-subset: '3/2': n/t needs 1 <= n <= t"),
        (REPO + JOB + "drill = { files = 0 }\n", "jobs.lake.drill.files: must be at least 1"),
        (REPO + JOB + "notify = { on = ['failure', 'sometimes'] }\n",
         "jobs.lake.notify.on: unknown event 'sometimes' (expected: failure, recovery, success, "
         "missed)"),
        (REPO + JOB + "notify = { webhook = 'ftp://x' }\n",
         "jobs.lake.notify.webhook: not an http(s) URL: 'ftp://x'"),
        (REPO + JOB + "alert-after = '26'\n",
         "jobs.lake.alert-after: cannot parse duration '26': use e.g. 30s, 15m, 6h, 1d, 1h30m"),
        ('[repositories.main]\nurl = "/r"\n',
         "repositories.main: needs one of password-file and password-command"),
        ('[repositories.main]\nurl = "/r"\npassword-file = "/p"\npassword-command = ["x"]\n',
         "repositories.main: needs one of password-file and password-command"),
        ('[repositories.main]\npassword-file = "/p"\n', "repositories.main.url: missing"),
        ('[repositories.main]\nurl = "/r"\npassword-file = "/p"\npasword = "x"\n',
         "repositories.main.pasword: unknown key (expected one of: url, password-file, "
         "password-command, s3-endpoint)"),
        ("[repositories]\nmain = '/r'\n", "repositories.main: must be a table, not a string"),
        ("[daemon]\nstate_dir = '/x'\n",
         "daemon.state_dir: unknown key (expected one of: state-dir, metrics-file, "
         "metrics-listen)"),
        ("[daemon]\nmetrics-listen = '9150'\n", "daemon.metrics-listen: not HOST:PORT: '9150'"),
    ],
)  # fmt: skip
def test_a_bad_file_is_named_with_its_key(conf: Path, text: str, message: str | None) -> None:
    conf.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(conf))
    assert isinstance(e.value, SnapfsError)
    if message is None:
        assert str(e.value).startswith(f"{conf}: not valid TOML: ")
    else:
        assert str(e.value) == f"{conf}: {message}"
    assert "\n" not in str(e.value)


def test_an_unreadable_file_is_named(conf: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(str(conf))
    assert str(e.value) == f"{conf}: cannot read: No such file or directory"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("6h", 21600), ("1d", 86400), ("7d", 604800), ("1w", 604800),
     ("1h30m", 5400), ("1.5s", 1.5)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "6", "h", "6 h", "-1h", "1y", "6hh"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="cannot parse duration"):
        parse_duration(text)


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time with a summer and a winter offset, so "local" is tested, not assumed."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _local(*fields: int) -> float:
    return datetime(*fields).astimezone().timestamp()  # type: ignore[arg-type]


def test_cron_next_times_are_local(berlin: None) -> None:
    nightly = Schedule.cron_("0 2 * * *")
    assert nightly.next_after(_local(2026, 12, 6, 1, 59)) == _local(2026, 12, 6, 2, 0)
    assert nightly.next_after(_local(2026, 12, 6, 2, 0)) == _local(2026, 12, 7, 2, 0)  # after
    # Winter (UTC+1) is 01:00 UTC, summer (UTC+2) 00:00 UTC: the same local hour.
    assert nightly.next_after(_local(2026, 12, 6, 3, 0)) % 86400 == 3600
    assert nightly.next_after(_local(2026, 7, 6, 3, 0)) % 86400 == 0
    quarter = Schedule.cron_("*/15 * * * 1-5")  # weekdays; 2026-12-05 is a Saturday
    assert quarter.next_after(_local(2026, 12, 5, 10, 7)) == _local(2026, 12, 7, 0, 0)
    assert os.environ["TZ"] == "Europe/Berlin"


def test_every_counts_from_the_last_run() -> None:
    s = Schedule.every_("6h")
    assert s.next_after(1000.0) == 1000.0 + 6 * 3600
    assert str(s) == "every 6h" and str(Schedule.cron_("0 2 * * *")) == "0 2 * * *"


def test_an_overdue_job_runs_once_not_once_per_missed_slot() -> None:
    s = Schedule.every_("1h")
    assert due(s, None, 5000.0)  # never run: at once
    assert not due(s, 5000.0, 5000.0 + 3599)
    assert due(s, 5000.0, 5000.0 + 3600)
    now = 5000.0 + 10 * 3600  # ten slots missed
    assert due(s, 5000.0, now)
    assert not due(s, now, now + 1)  # one run at `now` and it is no longer due
    assert next_run(s, now, now + 1) == now + 3600
    assert next_run(s, 5000.0, now) == now
    nightly = Schedule.cron_("0 2 * * *")
    last = _local(2026, 12, 1, 2, 0)
    later = _local(2026, 12, 6, 12, 0)  # five nights missed
    assert due(nightly, last, later) and not due(nightly, later, later + 60)
    assert next_run(nightly, later, later + 60) == _local(2026, 12, 7, 2, 0)
