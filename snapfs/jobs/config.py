"""The config file (TOML) as typed records. Every mistake is one ConfigError line naming the
file, the key (``jobs.lake.every``) and what is wrong; nothing is half-loaded.

Relative paths in the file (password-file, a repository's url, a job's paths, state-dir,
metrics-file) are taken relative to the file's directory, so a job means the same whatever
directory it starts from.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from snapfs.errors import ConfigError, SnapfsError
from snapfs.jobs.schedule import Schedule, parse_duration
from snapfs.sources.stream import DEFAULT_NAME, check_name

KEEP_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
NOTIFY_EVENTS = ("failure", "recovery", "success", "missed")
DEFAULT_NOTIFY_ON = frozenset({"failure", "recovery", "missed"})
DEFAULT_DRILL_FILES = 20


@dataclass(frozen=True)
class RepositoryConfig:
    name: str
    url: str  # a path (absolute once loaded) or s3://bucket/prefix
    password_file: str | None = None
    password_command: tuple[str, ...] | None = None
    s3_endpoint: str | None = None


@dataclass(frozen=True)
class NotifyConfig:
    webhook: str | None = None
    command: tuple[str, ...] = ()
    on: frozenset[str] = DEFAULT_NOTIFY_ON


@dataclass(frozen=True)
class JobConfig:
    name: str
    repository: str  # a key of Config.repositories
    paths: tuple[str, ...]  # local paths, or s3:// prefixes; () for a command's output
    schedule: Schedule | None = None  # None: only `snapfs jobs run` runs it
    command: tuple[str, ...] = ()  # backed up instead of paths: its standard output
    filename: str = DEFAULT_NAME  # the command's output in the snapshot: /FILENAME
    source_endpoint: str | None = None  # for s3:// paths: another S3 than the default
    source_profile: str | None = None
    tags: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    keep: dict[str, int] = field(default_factory=dict)  # forget's counts: last, daily, ...
    prune_every: float | None = None  # seconds
    copy_to: tuple[str, ...] = ()  # keys of Config.repositories
    check_every: float | None = None
    check_subset: str | None = None  # check's read-data-subset: "5%" or "n/t"
    drill_every: float | None = None
    drill_files: int = DEFAULT_DRILL_FILES
    before: tuple[str, ...] = ()  # a command and its arguments
    after: tuple[str, ...] = ()
    notify: NotifyConfig | None = None
    alert_after: float | None = None  # seconds without a success before "missed"

    @property
    def snapshot_paths(self) -> tuple[str, ...]:
        """The paths its snapshots record: the command's output is the file /FILENAME."""
        return self.paths or ("/" + self.filename,)


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: Path
    metrics_file: Path | None = None
    metrics_listen: str | None = None  # "HOST:PORT"


@dataclass(frozen=True)
class Config:
    path: Path
    repositories: dict[str, RepositoryConfig]
    jobs: dict[str, JobConfig]
    daemon: DaemonConfig


def config_path(path: str | None) -> Path:
    """The file to read: ``path`` (--config), else $SNAPFS_CONFIG, else the first of
    ~/.config/snapfs/snapfs.toml and /etc/snapfs/snapfs.toml that exists."""
    given = path or os.environ.get("SNAPFS_CONFIG")
    if given:
        return Path(given).expanduser()
    candidates = [
        Path("~/.config/snapfs/snapfs.toml").expanduser(),
        Path("/etc/snapfs/snapfs.toml"),
    ]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise ConfigError(
        "no config file: give --config FILE or set SNAPFS_CONFIG "
        f"(looked for {candidates[0]} and {candidates[1]})"
    )


def load_config(path: str | None) -> Config:
    """The config at ``path`` (or where config_path finds it), checked whole."""
    file = config_path(path)
    try:
        with open(file, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{file}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{file}: not valid TOML: {e}") from None
    return _Reader(file).config(data)


def parse_subset(text: str) -> tuple[int, int] | float:
    """check's read-data-subset: ``n/t`` (the n-th of t slices of packs) or ``P%``."""
    if m := re.fullmatch(r"(\d+)/(\d+)", text):
        n, t = int(m[1]), int(m[2])
        if not 1 <= n <= t:
            raise ValueError(f"{text!r}: n/t needs 1 <= n <= t")
        return n, t
    if (m := re.fullmatch(r"(\d+(?:\.\d+)?)%", text)) and 0 < float(m[1]) <= 100:
        return float(m[1]) / 100
    raise ValueError(f"cannot parse {text!r}: use n/t or a percentage such as 5%")


T = TypeVar("T")
_TYPE_NAMES = {str: "a string", int: "an integer", dict: "a table", list: "a list"}


class _Reader:
    """Walks the parsed TOML; ``fail`` names the file and the dotted key."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.base = file.parent.absolute()

    def fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.file}: {key}: {what}")

    def table(self, value: object, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        for k in value:
            if k not in allowed:
                where = f"{key}.{k}" if key else k
                raise self.fail(where, f"unknown key (expected one of: {', '.join(allowed)})")
        return value

    def typed(self, value: object, key: str, kind: type[T]) -> T:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"must be {_TYPE_NAMES[kind]}, not {_toml_type(value)}")
        return value

    def strings(self, value: object, key: str, *, nonempty: bool = False) -> tuple[str, ...]:
        items = self.typed(value, key, list)
        if not all(isinstance(v, str) for v in items):
            raise self.fail(key, "must be a list of strings")
        if nonempty and not items:
            raise self.fail(key, "must not be empty")
        return tuple(items)

    def parsed(self, value: object, key: str, parse: Callable[[str], T]) -> T:
        text = self.typed(value, key, str)
        try:
            return parse(text)
        except ValueError as e:
            raise self.fail(key, str(e)) from None

    def local(self, text: str) -> str:
        """A path from the file: ~ expanded, relative to the file's directory."""
        return str(self.base / Path(text).expanduser())

    def config(self, data: dict[str, Any]) -> Config:
        self.table(data, "", ("repositories", "jobs", "daemon"))
        repos = self.repositories(data.get("repositories", {}))
        jobs = {
            name: self.job(name, value, repos)
            for name, value in self.named(data.get("jobs", {}), "jobs").items()
        }
        return Config(self.file, repos, jobs, self.daemon(data.get("daemon", {})))

    def named(self, value: object, key: str) -> dict[str, Any]:
        """A table of tables keyed by any name (repositories.NAME, jobs.NAME)."""
        tables = self.typed(value, key, dict)
        for name, inner in tables.items():
            if not isinstance(inner, dict):
                raise self.fail(f"{key}.{name}", f"must be a table, not {_toml_type(inner)}")
        return tables

    def repositories(self, value: object) -> dict[str, RepositoryConfig]:
        return {
            name: self.repository(name, inner)
            for name, inner in self.named(value, "repositories").items()
        }

    def repository(self, name: str, value: object) -> RepositoryConfig:
        key = f"repositories.{name}"
        t = self.table(value, key, ("url", "password-file", "password-command", "s3-endpoint"))
        if "url" not in t:
            raise self.fail(f"{key}.url", "missing")
        url = self.typed(t["url"], f"{key}.url", str)
        if not url:
            raise self.fail(f"{key}.url", "must not be empty")
        if not url.startswith("s3://"):
            url = self.local(url)
        if ("password-file" in t) == ("password-command" in t):
            raise self.fail(key, "needs one of password-file and password-command")
        pw_file = t.get("password-file")
        if pw_file is not None:
            pw_file = self.local(self.typed(pw_file, f"{key}.password-file", str))
        pw_cmd = t.get("password-command")
        if pw_cmd is not None:
            pw_cmd = self.strings(pw_cmd, f"{key}.password-command", nonempty=True)
        endpoint = t.get("s3-endpoint")
        if endpoint is not None:
            endpoint = self.typed(endpoint, f"{key}.s3-endpoint", str)
        return RepositoryConfig(name, url, pw_file, pw_cmd, endpoint)

    def job(self, name: str, value: object, repos: dict[str, RepositoryConfig]) -> JobConfig:
        key = f"jobs.{name}"
        t = self.table(value, key, _JOB_KEYS)
        for required in ("repository", "paths"):
            if required not in t and not (required == "paths" and "command" in t):
                raise self.fail(f"{key}.{required}", "missing")
        repo = self.typed(t["repository"], f"{key}.repository", str)
        if repo not in repos:
            raise self.fail(f"{key}.repository", f"no repository {repo!r} in [repositories]")
        paths = self.paths(t, key)
        command, filename = self.command(t, key)
        copy_to = self.strings(t.get("copy-to", []), f"{key}.copy-to")
        for other in copy_to:
            if other not in repos:
                raise self.fail(f"{key}.copy-to", f"no repository {other!r} in [repositories]")
            if other == repo:
                raise self.fail(f"{key}.copy-to", f"{other!r} is the job's own repository")
        check = self.table(t.get("check", {}), f"{key}.check", ("every", "read-data-subset"))
        subset = check.get("read-data-subset")
        if subset is not None:
            self.parsed(subset, f"{key}.check.read-data-subset", parse_subset)
        drill = self.table(t.get("drill", {}), f"{key}.drill", ("every", "files"))
        files = self.typed(drill.get("files", DEFAULT_DRILL_FILES), f"{key}.drill.files", int)
        if files < 1:
            raise self.fail(f"{key}.drill.files", "must be at least 1")
        return JobConfig(
            name=name,
            repository=repo,
            paths=paths,
            schedule=self.schedule(t, key),
            command=command,
            filename=filename,
            source_endpoint=self.optional(t, f"{key}.source-endpoint"),
            source_profile=self.optional(t, f"{key}.source-profile"),
            tags=self.strings(t.get("tags", []), f"{key}.tags"),
            exclude=self.strings(t.get("exclude", []), f"{key}.exclude"),
            keep=self.keep(t.get("keep", {}), f"{key}.keep"),
            prune_every=self.every(t.get("prune", {}), f"{key}.prune", ("every",)),
            copy_to=copy_to,
            check_every=self.duration(check.get("every"), f"{key}.check.every"),
            check_subset=subset,
            drill_every=self.duration(drill.get("every"), f"{key}.drill.every"),
            drill_files=files,
            before=self.strings(t.get("before", []), f"{key}.before"),
            after=self.strings(t.get("after", []), f"{key}.after"),
            notify=self.notify(t["notify"], f"{key}.notify") if "notify" in t else None,
            alert_after=self.duration(t.get("alert-after"), f"{key}.alert-after"),
        )

    def paths(self, t: dict[str, Any], key: str) -> tuple[str, ...]:
        """Local paths (made absolute) or s3:// prefixes, never both; none for a command."""
        if "paths" in t and "command" in t:
            raise self.fail(f"{key}.command", "a job backs up paths or a command's output, "
                            "not both")  # fmt: skip
        paths = self.strings(t["paths"], f"{key}.paths", nonempty=True) if "paths" in t else ()
        remote = [p.startswith("s3://") for p in paths]
        if any(remote) and not all(remote):
            raise self.fail(f"{key}.paths", "S3 prefixes or local paths, not both")
        for option in ("source-endpoint", "source-profile"):
            if option in t and not any(remote):
                raise self.fail(f"{key}.{option}", "is for s3:// paths")
        return paths if any(remote) else tuple(self.local(p) for p in paths)

    def command(self, t: dict[str, Any], key: str) -> tuple[tuple[str, ...], str]:
        """The command whose standard output is backed up, and the file it becomes."""
        if "command" not in t:
            if "filename" in t:
                raise self.fail(f"{key}.filename", "is for command")
            return (), DEFAULT_NAME
        if "exclude" in t:
            raise self.fail(f"{key}.exclude", "is for paths, not a command's output")
        command = self.strings(t["command"], f"{key}.command", nonempty=True)
        filename = self.typed(t.get("filename", DEFAULT_NAME), f"{key}.filename", str)
        return command, self.parsed(filename, f"{key}.filename", _file_name)

    def optional(self, t: dict[str, Any], key: str) -> str | None:
        name = key.rsplit(".", 1)[-1]
        return self.typed(t[name], key, str) if name in t else None

    def schedule(self, t: dict[str, Any], key: str) -> Schedule | None:
        if "every" in t and "schedule" in t:
            raise self.fail(key, "give every or schedule, not both")
        if "every" in t:
            return self.parsed(t["every"], f"{key}.every", Schedule.every_)
        if "schedule" in t:
            return self.parsed(t["schedule"], f"{key}.schedule", Schedule.cron_)
        return None

    def duration(self, value: object, key: str) -> float | None:
        return None if value is None else self.parsed(value, key, parse_duration)

    def every(self, value: object, key: str, allowed: tuple[str, ...]) -> float | None:
        return self.duration(self.table(value, key, allowed).get("every"), f"{key}.every")

    def keep(self, value: object, key: str) -> dict[str, int]:
        rules = self.table(value, key, KEEP_RULES)
        for rule, n in rules.items():
            if self.typed(n, f"{key}.{rule}", int) < -1:
                raise self.fail(f"{key}.{rule}", "must be a count (or -1: all)")
        return dict(rules)

    def notify(self, value: object, key: str) -> NotifyConfig:
        t = self.table(value, key, ("webhook", "command", "on"))
        webhook = t.get("webhook")
        if webhook is not None:
            webhook = self.typed(webhook, f"{key}.webhook", str)
            if not webhook.startswith(("http://", "https://")):
                raise self.fail(f"{key}.webhook", f"not an http(s) URL: {webhook!r}")
        on = self.strings(t.get("on", sorted(DEFAULT_NOTIFY_ON)), f"{key}.on")
        for event in on:
            if event not in NOTIFY_EVENTS:
                raise self.fail(
                    f"{key}.on", f"unknown event {event!r} (expected: {', '.join(NOTIFY_EVENTS)})"
                )
        return NotifyConfig(webhook, self.strings(t.get("command", []), f"{key}.command"),
                            frozenset(on))  # fmt: skip

    def daemon(self, value: object) -> DaemonConfig:
        t = self.table(value, "daemon", ("state-dir", "metrics-file", "metrics-listen"))
        state = t.get("state-dir")
        state_dir = (
            Path(self.local(self.typed(state, "daemon.state-dir", str)))
            if state is not None
            else Path("~/.local/state/snapfs").expanduser()
        )
        metrics = t.get("metrics-file")
        metrics_file = (
            Path(self.local(self.typed(metrics, "daemon.metrics-file", str))) if metrics else None
        )
        listen = t.get("metrics-listen")
        if listen is not None:
            listen = self.typed(listen, "daemon.metrics-listen", str)
            if not re.fullmatch(r"[^\s:]*:\d{1,5}", listen):
                raise self.fail("daemon.metrics-listen", f"not HOST:PORT: {listen!r}")
        return DaemonConfig(state_dir, metrics_file, listen)


_JOB_KEYS = (
    "repository", "paths", "command", "filename", "source-endpoint", "source-profile", "every",
    "schedule", "tags", "exclude", "keep", "prune", "copy-to", "check", "drill", "before",
    "after", "notify", "alert-after",
)  # fmt: skip


def _file_name(text: str) -> str:
    try:
        return check_name(text)
    except SnapfsError:
        raise ValueError("must be one file name (1-255 bytes, no '/', not . or ..)") from None


def _toml_type(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "a list", dict: "a table"}  # fmt: skip
    return names.get(type(value), type(value).__name__)
